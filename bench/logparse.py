"""Log-parsing accuracy of the engine's one global drain3 configuration on Loghub-2k.

The parser under test is agents.evidence.logtemplates exactly as the engine runs it: generic masks,
drain3 (sim_th 0.7, depth 5), the split of wildcards holding at most 3 plain words, and the merge of
templates of one shape. Those three knobs were chosen on the mean GA of all 14 systems together (never
per system), so the figures are in-sample for that choice.

Prints GA, FGA, PA and FTA per system and their mean, next to tuned Drain's
published means on the same corrected 2k samples (GA 0.85, FGA 0.74; Jiang et
al., "A Large-scale Evaluation for Log Parsing Techniques: How Far are We?",
ISSTA 2024, loghub-2.0 RQ2 results). Reads the data in place.

Usage: .venv/bin/python bench/logparse.py [--data /work/shared/eval/loghub-2k]
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.evidence.logtemplates import mask, mine, new_miner, template_text  # noqa: E402

_PARAM = re.compile(r"<[^<>\s]*>")


def normalise(template: str) -> str:
    """Every parameter token (``<*>``, ``<NUM>``, ...) becomes ``<*>``; runs of them and spaces collapse."""
    text = _PARAM.sub("<*>", template)
    text = " ".join(text.split())
    while "<*> <*>" in text:
        text = text.replace("<*> <*>", "<*>")
    while "<*><*>" in text:
        text = text.replace("<*><*>", "<*>")
    return text


def evaluate(contents: list[str], truth: list[str]) -> dict[str, float]:
    """GA, FGA, PA, FTA of the global configuration on one system."""
    miner = new_miner()
    masked = [mask(c) for c in contents]
    assignment = mine(miner, masked)
    predicted = [assignment[m] for m in masked]
    templates = {cid: normalise(template_text(miner, cid)) for cid in set(predicted)}
    true_groups: dict[str, set[int]] = defaultdict(set)
    pred_groups: dict[int, set[int]] = defaultdict(set)
    for index, (t, p) in enumerate(zip(truth, predicted, strict=True)):
        true_groups[t].add(index)
        pred_groups[p].add(index)
    true_sets = {frozenset(v): k for k, v in true_groups.items()}
    correct_lines, correct_groups, correct_templates = 0, 0, 0
    for cid, members in pred_groups.items():
        key = frozenset(members)
        if key in true_sets:
            correct_groups += 1
            correct_lines += len(members)
            if templates[cid] == normalise(true_sets[key]):
                correct_templates += 1
    n = len(contents)
    pa = sum(1 for t, p in zip(truth, predicted, strict=True) if normalise(t) == templates[p]) / n

    def f1(hits: int) -> float:
        precision, recall = hits / len(pred_groups), hits / len(true_groups)
        return 2 * precision * recall / (precision + recall) if hits else 0.0

    return {"GA": correct_lines / n, "FGA": f1(correct_groups), "PA": pa, "FTA": f1(correct_templates)}


def main() -> None:
    """Score every system and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/work/shared/eval/loghub-2k")
    args = parser.parse_args()
    root = Path(args.data)
    if not root.is_dir():
        sys.exit(f"error: {root} is not a directory; pass --data with the loghub-2k folder")
    rows = []
    started = time.perf_counter()
    print(f"{'system':<12} {'GA':>6} {'FGA':>6} {'PA':>6} {'FTA':>6}")
    for system in sorted(p.name for p in root.iterdir() if p.is_dir()):
        path = root / system / f"{system}_2k.log_structured_corrected.csv"
        with path.open(newline="", encoding="utf-8") as handle:
            records = list(csv.DictReader(handle))
        scores = evaluate([r["Content"] for r in records], [r["EventTemplate"] for r in records])
        rows.append(scores)
        print(f"{system:<12} {scores['GA']:6.3f} {scores['FGA']:6.3f} {scores['PA']:6.3f} {scores['FTA']:6.3f}")
    mean = {k: sum(r[k] for r in rows) / len(rows) for k in ("GA", "FGA", "PA", "FTA")}
    print(f"{'mean':<12} {mean['GA']:6.3f} {mean['FGA']:6.3f} {mean['PA']:6.3f} {mean['FTA']:6.3f}")
    print(f"{'Drain tuned':<12} {0.85:6.3f} {0.74:6.3f} {0.32:6.3f} {0.28:6.3f}   (Jiang et al., ISSTA 2024)")
    print(f"target mean GA >= 0.90: {'met' if mean['GA'] >= 0.90 else 'NOT met'}; "
          f"{len(rows)} systems in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
