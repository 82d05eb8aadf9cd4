"""Benchmark of the knowledge base (issue #17): does it recognise a recurring incident, and only those?

A generated history of past investigations: recurring incidents (the same origin service and change kind,
each time with other wording, times, victim services, noise templates) and one-off incidents, some of
them decoys (the same change kind on another service, so the text reads alike; or another change kind on
a service that has a recurring pattern). Then new incidents, half recurrences and half one-offs, are
looked up with the production scoring (store.knowledge.KnowledgeBase.similar), and we print:

* precision@3 of "seen before": of the past incidents shown (score >= the display threshold, at most 3),
  the share with the new incident's origin service and change kind (target >= 0.9);
* recall: the share of recurrences with at least one right past incident shown;
* the share of one-offs that wrongly get a "seen before" (target <= 0.05);
* embedding throughput (texts/s, all-MiniLM-L6-v2, onnxruntime or numpy: the backend is printed) and query p95 with 10,000 stored
  incidents (target < 50 ms, the whole lookup: embedding the query, two Chroma queries, re-scoring).

The 10,000 are the history plus filler: real embeddings of ``--fill-base`` (1,000) more generated incidents,
each reused with small Gaussian noise (renormalised), so the run takes minutes, not an hour of embedding; a
query's cost depends on the index size and the records read back, not on the vectors' content.
On a busy 2-core machine run it with ``OPENBLAS_NUM_THREADS=1``: OpenBLAS threads fighting other work for
the two cores made one query's embedding 5x slower here.

    PYTHONPATH=. python bench/knowledge.py [--seed 7] [--history 400] [--queries 200] [--store 10000]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from store.knowledge import (  # noqa: E402
    SEEN_BEFORE,
    Incident,
    KnowledgeBase,
    make_client,
    shared_embedder,
    template_key,
)

SERVICES = [
    "payments-api", "checkout", "orders", "cart", "search", "catalog", "inventory", "shipping", "pricing",
    "accounts", "auth", "notifications", "mailer", "ledger", "billing", "reco", "reviews", "media", "playlists",
    "profile", "gateway", "fraud", "tax", "loyalty", "geo", "booking", "availability", "calendar", "reports",
    "exports", "wallet", "refunds", "payouts", "kyc", "risk", "coupons", "wishlist", "returns", "warehouse",
    "routing", "tracking", "chat", "feed", "ads", "translations", "uploads", "thumbnails", "webhooks", "audit",
    "scheduler",
]
DOMAINS = ["payments", "commerce", "platform", "growth"]

# Per change kind: paraphrased alert titles and the log templates such a fault leaves ({s} the service,
# {c} a class name, {t} a table, {f} a flag, {d} a dependency). A pattern picks one set of names and keeps it.
KINDS = {
    "config": (["{s} p99 latency above {n}s", "High latency on {s}", "{s}: slow responses, SLO burn",
                "Latency SLO burn rate on {s}", "{s} timeouts rising"],
               ["{c}Pool - Connection is not available, request timed out after <*>ms",
                "Timeout waiting for idle object in {c}Pool", "config reload: key {c}.maxConnections changed"]),
    "deploy": (["{s} 5xx ratio above {n}%", "Error rate high on {s}", "{s} returning 500s",
                "{s}: errors after release", "Elevated 5xx on {s}"],
               ["NullPointerException at {c}.handle(<*>)", "<*> Internal Server Error on GET <*>: {c}Exception",
                "unhandled exception in {c}Controller"]),
    "flag": (["{s} error spike on {f} path", "Errors in {s} since {f} rollout", "{s}: failures for {f} users",
              "{s} error budget burn", "Increased errors on {s}"],
             ["flag {f} enabled for <*>% of traffic", "{c}: unsupported variant for flag {f}",
              "IllegalStateException: {f} handler missing"]),
    "migration": (["{s} database errors", "{s}: failed queries after migration", "DB errors on {s}",
                   "{s} write failures", "{s} SQL errors rising"],
                  ["column \"{t}_ref\" of relation \"{t}\" does not exist", "migration <*> applied to {t}",
                   "deadlock detected on relation {t}"]),
    "capacity": (["{s} memory above 95%", "{s} pods OOMKilled", "{s}: CPU saturation", "{s} running out of memory",
                  "Saturation on {s}"],
                 ["java.lang.OutOfMemoryError: Java heap space in {c}", "GC overhead limit exceeded",
                  "container {s} restarted: OOMKilled"]),
    "dependency": (["{s} calls to {d} failing", "{s}: upstream {d} timeouts", "{d} errors seen by {s}",
                    "Third-party {d} degraded for {s}", "{s} dependency errors"],
                   ["POST https://api.{d}.com/v1/<*> failed: 503", "circuit breaker {d} open",
                    "timeout after <*>ms calling {d}"]),
}
NOISE = ["GET /healthz 200", "cache miss ratio <*>", "slow query <*>ms on <*>", "retrying request <*>",
         "user <*> logged in", "scheduled job <*> finished", "kafka consumer lag <*>", "token refresh for <*>"]
CLASSES = ["Hikari", "Dbcp", "Order", "Cart", "Price", "Quote", "Stock", "Ledger", "Invoice", "Session"]
TABLES = ["orders", "payments", "invoices", "carts", "users", "items"]
FLAGS = ["new-checkout", "fast-search", "smart-pricing", "one-click", "dark-mode", "v2-ledger"]
DEPS = ["stripe", "adyen", "twilio", "sendgrid", "maps", "taxjar"]


def make_pattern(rng: random.Random, service: str, kind: str) -> dict:
    """The fixed names one recurring cause keeps from one occurrence to the next."""
    return {"service": service, "kind": kind, "domain": rng.choice(DOMAINS),
            "names": {"s": service, "c": rng.choice(CLASSES), "t": rng.choice(TABLES), "f": rng.choice(FLAGS),
                      "d": rng.choice(DEPS)}}


def occurrence(rng: random.Random, pattern: dict, inv_id: str) -> Incident:
    """One incident of ``pattern``: random wording, threshold, victims, a subset of its templates, noise."""
    titles, templates = KINDS[pattern["kind"]]
    names = {**pattern["names"], "n": rng.choice([1, 2, 3, 5, 10])}
    chosen = rng.sample(templates, rng.randint(1, len(templates)))
    logs = [t.format(**names) for t in chosen] + rng.sample(NOISE, rng.randint(0, 3))
    victims = rng.sample([s for s in SERVICES if s != pattern["service"]], rng.randint(0, 3))
    services = [pattern["service"], *victims]
    rng.shuffle(services)  # the origin is not always named first
    return Incident(
        investigation_id=inv_id, domain=pattern["domain"], services=services,
        alert_titles=[rng.choice(titles).format(**names)] + ([rng.choice(titles).format(**names)]
                                                              if rng.random() < 0.3 else []),
        log_templates=[{"key": template_key(t), "template": t, "count": rng.randint(5, 500)} for t in logs],
        metrics=[f"{pattern['service']}/{rng.choice(['error_rate', 'latency_p99', 'memory', 'cpu'])}"],
        root_cause={"service": pattern["service"], "category": pattern["kind"], "change_kind": pattern["kind"],
                    "summary": f"{pattern['kind']} on {pattern['service']}"},
        fix=f"revert the {pattern['kind']} on {pattern['service']}", verdict="CONFIRMED",
        confidence=rng.randint(60, 99), finished_at=f"2026-{rng.randint(1, 11):02d}-{rng.randint(1, 28):02d}")


def build(seed: int, history: int, queries: int) -> tuple[list[Incident], list[tuple[Incident, bool]]]:
    """A history of ``history`` incidents and ``queries`` new ones (incident, is_recurrence)."""
    rng = random.Random(seed)
    combos = [(s, k) for s in SERVICES for k in KINDS]
    rng.shuffle(combos)
    n_recurring = history // 8  # each recurring cause happened 2-8 times before
    recurring = [make_pattern(rng, s, k) for s, k in combos[:n_recurring]]
    # causes kept for the new one-off incidents: never in the history
    reserved = combos[n_recurring : n_recurring + 60]
    one_off_pool = combos[n_recurring + 60 :]
    past: list[Incident] = []
    for p in recurring:
        for _ in range(rng.randint(2, 8)):
            past.append(occurrence(rng, p, f"inv-{len(past):05d}"))
    # one-offs fill the rest; each is a cause never seen twice (decoys: same kind elsewhere, other kind here)
    one_offs = one_off_pool[: max(0, history - len(past))]
    for s, k in one_offs:
        past.append(occurrence(rng, make_pattern(rng, s, k), f"inv-{len(past):05d}"))
    new: list[tuple[Incident, bool]] = []
    for q in range(queries):
        if q % 2 == 0:
            new.append((occurrence(rng, rng.choice(recurring), f"new-{q:04d}"), True))
        else:
            s, k = reserved[(q // 2) % len(reserved)]
            new.append((occurrence(rng, make_pattern(rng, s, k), f"new-{q:04d}"), False))
    return past, new


def same_cause(a: Incident, b: Incident) -> bool:
    return (a.root_cause["service"], a.root_cause["change_kind"]) == (b.root_cause["service"],
                                                                      b.root_cause["change_kind"])


def lookups(kb: KnowledgeBase, new: list[tuple[Incident, bool]]) -> list[tuple[Incident, bool, list]]:
    """Each new incident with its top 3 past incidents (a new incident has no diagnosis yet)."""
    return [(inc, recurring, kb.similar(replace(inc, root_cause={}), k=3, domain=inc.domain))
            for inc, recurring in new]


def evaluate(looked: list[tuple[Incident, bool, list]], threshold: float) -> dict[str, float]:
    """precision@3, recall and the one-offs' false "seen before" share at ``threshold``."""
    shown = right = found = recurrences = one_offs = false_seen = 0
    for inc, recurring, top in looked:
        matches = [m for m in top if m.score >= threshold]
        if recurring:
            recurrences += 1
            shown += len(matches)
            good = sum(same_cause(m.incident, inc) for m in matches)
            right += good
            found += good > 0
        else:
            one_offs += 1
            false_seen += bool(matches)
    return {"precision@3": right / max(shown, 1), "recall": found / max(recurrences, 1),
            "one_off_false_seen": false_seen / max(one_offs, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--history", type=int, default=400, help="past investigations (>= 300)")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--store", type=int, default=10_000, help="incidents stored for the latency figure (0: skip)")
    ap.add_argument("--fill-base", type=int, default=1000, help="real embeddings behind the filler incidents")
    ap.add_argument("--sweep", action="store_true", help="also print the figures for other thresholds")
    args = ap.parse_args()

    embedder = shared_embedder()
    past, new = build(args.seed, args.history, args.queries)
    with tempfile.TemporaryDirectory() as home:
        kb = KnowledgeBase(make_client(home=Path(home), chroma_host=None), embedder)
        started = time.perf_counter()
        kb.rebuild(past)
        elapsed = time.perf_counter() - started
        print(f"history: {len(past)} incidents ({sum(1 for _, r in new if r)} recurring and "
              f"{sum(1 for _, r in new if not r)} one-off new incidents), seed {args.seed}")
        print(f"stored {len(past)} in {elapsed:.1f} s (embedding + Chroma): {len(past) / elapsed:.1f} incidents/s")
        docs = [i.document() for i in past[:200]]
        t0 = time.perf_counter()
        embedder.embed(docs)
        print(f"embedding throughput: {len(docs) / (time.perf_counter() - t0):.1f} texts/s "
              f"(mean {np.mean([len(d) for d in docs]):.0f} chars; {getattr(embedder, 'backend', '?')} backend)")
        looked = lookups(kb, new)
        figures = evaluate(looked, SEEN_BEFORE)
        print(f"threshold {SEEN_BEFORE}: precision@3 {figures['precision@3']:.3f} (target >= 0.9), "
              f"recall {figures['recall']:.3f}, one-offs shown 'seen before' {figures['one_off_false_seen']:.3f} "
              f"(target <= 0.05)")
        if args.sweep:
            for th in (0.7, 0.75, 0.8, 0.85, 0.9):
                f = evaluate(looked, th)
                print(f"  threshold {th:.2f}: precision@3 {f['precision@3']:.3f} recall {f['recall']:.3f} "
                      f"one-off false {f['one_off_false_seen']:.3f}")
        if args.store:
            fill(kb, args.seed, args.store, args.fill_base)
            rng = random.Random(args.seed + 1)
            times, embed_times, embed_cpu = [], [], []
            clear = getattr(embedder, "clear_cache", lambda: None)
            load_before = os.getloadavg()
            for inc, _ in rng.sample(new, min(200, len(new))):
                query = replace(inc, root_cause={})
                clear()  # every query pays for its embedding, as a new incident's first lookup does
                t0 = time.perf_counter()
                kb.similar(query, k=3, domain=inc.domain)
                t1 = time.perf_counter()
                clear()
                t2, c2 = time.perf_counter(), time.thread_time()
                embedder.embed([query.document()])
                times.append((t1 - t0) * 1000)
                embed_times.append((time.perf_counter() - t2) * 1000)
                embed_cpu.append((time.thread_time() - c2) * 1000)
            load_after = os.getloadavg()
            print(f"query with {kb.count()} stored: p50 {np.percentile(times, 50):.1f} ms, "
                  f"p95 {np.percentile(times, 95):.1f} ms (target < 50 ms), max {max(times):.1f} ms; "
                  f"of which embedding the query alone: p50 {np.percentile(embed_times, 50):.1f} ms, "
                  f"p95 {np.percentile(embed_times, 95):.1f} ms (CPU time p50 {np.percentile(embed_cpu, 50):.1f} ms)")
            print(f"load average (1 min) {load_before[0]:.1f} before the queries, {load_after[0]:.1f} after, "
                  f"on {os.cpu_count()} cores")
    return 0


def fill(kb: KnowledgeBase, seed: int, total: int, base_n: int) -> None:
    """Add filler incidents until ``total`` are stored (see the module docstring for how)."""
    import json
    from dataclasses import asdict

    rng = random.Random(seed + 2)
    need = total - kb.count()
    if need <= 0:
        return
    base = [occurrence(rng, make_pattern(rng, rng.choice(SERVICES), rng.choice(list(KINDS))), f"fill-{i:05d}")
            for i in range(min(base_n, need))]
    vectors = kb.embedder.embed([b.document() for b in base])
    coll = kb._collection()
    nprng = np.random.default_rng(seed)
    ids, embs, metas, docs = [], [], [], []
    for n in range(need):
        inc = replace(base[n % len(base)], investigation_id=f"fill-{n:05d}")
        v = vectors[n % len(base)] + nprng.normal(0, 0.02, vectors.shape[1]).astype(np.float32)
        ids.append(inc.investigation_id)
        embs.append((v / np.linalg.norm(v)).tolist())
        metas.append({"domain": inc.domain or "", "service": inc.root_cause["service"],
                      "record": json.dumps(asdict(inc))})
        docs.append(inc.document())
        if len(ids) == 1000 or n == need - 1:
            coll.upsert(ids=ids, embeddings=embs, metadatas=metas, documents=docs)
            ids, embs, metas, docs = [], [], [], []


if __name__ == "__main__":
    raise SystemExit(main())
