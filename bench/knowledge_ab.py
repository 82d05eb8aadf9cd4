"""Knowledge-base lookup at 10,000 stored, embedders compared in one run (interleaved, random order per query).

Embedders: ``numpy`` and ``onnxruntime`` (the two backends of store.embeddings.MiniLM) and, with
``--old FILE``, the MiniLM of an older ``store/embeddings.py`` (e.g. ``git show cb8e0e7:store/embeddings.py >
/tmp/old_embeddings.py``); with ``--old-knowledge FILE`` too (an older ``store/knowledge.py``), that variant
looks up with the older ``KnowledgeBase`` as well: the whole lookup as it was. Every lookup is a new incident's first one (the embedder's memory of recent
texts is cleared before it): embedding the query, the Chroma queries, the re-scoring. Also timed: the
embedding alone (wall and CPU time of the thread). The store is bench/knowledge.py's (a generated history
plus filler up to ``--store``). The load average is printed before and after: on a shared machine the
wall times follow it, the CPU times much less.

    PYTHONPATH=. python bench/knowledge_ab.py [--old /tmp/old_embeddings.py [--old-knowledge /tmp/old_knowledge.py]]
        [--queries 120] [--store 10000]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from knowledge import build, fill  # noqa: E402

from store.embeddings import MiniLM  # noqa: E402
from store.knowledge import KnowledgeBase, make_client  # noqa: E402


def load(path: str, name: str) -> Any:
    """Another version of one of our modules, loaded as its own module."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--old", help="an older store/embeddings.py to compare with")
    ap.add_argument("--old-knowledge", help="with --old: an older store/knowledge.py, whose KnowledgeBase it uses")
    ap.add_argument("--seed", type=int, default=9)
    ap.add_argument("--queries", type=int, default=120)
    ap.add_argument("--store", type=int, default=10_000)
    ap.add_argument("--fill-base", type=int, default=300)
    args = ap.parse_args()

    models: dict[str, Any] = {"numpy": MiniLM(backend="numpy"), "onnxruntime": MiniLM(backend="onnxruntime")}
    kb_class: dict[str, Any] = dict.fromkeys(models, KnowledgeBase)
    if args.old:
        models = {"before": load(args.old, "old_embeddings").MiniLM(), **models}
        kb_class["before"] = load(args.old_knowledge, "old_knowledge").KnowledgeBase if args.old_knowledge \
            else KnowledgeBase
    past, new = build(args.seed, 400, 200)
    with tempfile.TemporaryDirectory() as home:
        client = make_client(home=Path(home), chroma_host=None)
        kb = KnowledgeBase(client, models["onnxruntime"])
        kb.rebuild(past)
        fill(kb, args.seed, args.store, args.fill_base)
        # one KnowledgeBase per variant (the older one's own class) over the same client and collection
        kbs = {name: kb_class[name](client, model) for name, model in models.items()}
        rng = random.Random(args.seed + 1)
        wall: dict[str, list[float]] = {k: [] for k in models}
        embed: dict[str, list[float]] = {k: [] for k in models}
        cpu: dict[str, list[float]] = {k: [] for k in models}
        load_before = os.getloadavg()
        for inc, _ in [rng.choice(new) for _ in range(args.queries)]:
            query = replace(inc, root_cause={})
            order = list(models.items())
            rng.shuffle(order)
            for name, model in order:
                model.clear_cache()
                t0 = time.perf_counter()
                kbs[name].similar(query, k=3, domain=inc.domain)
                wall[name].append((time.perf_counter() - t0) * 1000)
                model.clear_cache()
                t0, c0 = time.perf_counter(), time.thread_time()
                model.embed([query.document()])
                embed[name].append((time.perf_counter() - t0) * 1000)
                cpu[name].append((time.thread_time() - c0) * 1000)
        load_after = os.getloadavg()
        print(f"{kb.count()} stored, {args.queries} lookups per embedder; load average (1 min) {load_before[0]:.1f} "
              f"before, {load_after[0]:.1f} after, on {os.cpu_count()} cores")
    first = next(iter(models))
    for name in models:
        p50, p95 = np.percentile(wall[name], 50), np.percentile(wall[name], 95)
        ratio = (f"; vs {first}: p50 x{p50 / np.percentile(wall[first], 50):.2f}, "
                 f"p95 x{p95 / np.percentile(wall[first], 95):.2f}") if name != first else ""
        print(f"{name:12s} lookup p50 {p50:6.1f} ms  p95 {p95:6.1f} ms (target < 50){ratio}; embedding alone "
              f"p50 {np.percentile(embed[name], 50):.1f} ms, p95 {np.percentile(embed[name], 95):.1f} ms, "
              f"CPU p50 {np.percentile(cpu[name], 50):.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
