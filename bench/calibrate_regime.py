"""Fit the confidence model of the no-logs regime jointly, on pooled suites, with held-out suites beside it.

Issue #15 asks that interacting constants be fitted jointly on pooled suites with held-out validation. Worlds
read without one log line (feature ``no_logs``) get their own coefficients (``calibration.NO_LOGS_COEFFICIENTS``);
this script fits every one of them at once — the bias and each feature, except the hand-set priors no pool
holds enough of (``--hand``) — by L2-penalised logistic regression (Platt scaling) on the top answer's features
against its top-1 hit, wrong answers weighted (``--wrong-weight`` w: a fitted 50 means odds of w:1 of being
right). Worlds with logs are not touched: their coefficients stay as shipped.

A suite is named ``<writer><seed>`` (own101, hard808, field2020, alt12) or ``nezha-odd`` / ``nezha-even``, with
its regime after a dash: ``nl`` (logs left out) or ``nlt5`` (logs left out, request-level samples halved,
bench/variants.py). Example:

  .venv/bin/python bench/calibrate_regime.py --fit own101-nl,alt12-nl,nezha-odd-nl --held own202-nl,nezha-even-nl \\
      --worlds /tmp/pm-calib --cache /tmp/pm-calib/rows --wrong-weight 9

``--cache DIR`` keeps each suite's scored rows (top answer's features, top-1 hit) in ``DIR/<suite>.json``: valid
while the ranking features do not change (confidences are recomputed from them). ``--folds K`` also prints a
K-fold cross-validation over the fitting suites (whole suites held out per fold).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.evidence import calibration  # noqa: E402
from bench import calibrate_pool, rca, rca_alt  # noqa: E402
from bench.variants import derive_all  # noqa: E402

NEZHA = Path(__file__).resolve().parents[2] / "shared" / "eval" / "nezha-tt"
WRITERS = ("own", "hard", "field", "alt")


def _worlds(name: str, root: Path, nezha: Path) -> list[Path]:
    """The worlds of suite ``name`` (without its regime), generated under ``root`` when not there yet."""
    if name.startswith("nezha-"):
        parity = 1 if name == "nezha-odd" else 0
        return [p for p in sorted(nezha.glob("tt-*")) if int(p.name.split("-")[-1]) % 2 == parity]
    writer = next((w for w in WRITERS if name.startswith(w) and name[len(w):].isdigit()), None)
    if writer is None:
        raise SystemExit(f"unknown suite {name!r}: use own<seed>, hard<seed>, field<seed>, alt<seed>, nezha-odd or "
                         f"nezha-even")
    seed = int(name[len(writer):])
    folder = root / "worlds" / name
    folder.mkdir(parents=True, exist_ok=True)
    if writer == "alt":
        return rca_alt.suite(folder, 60, seed)
    return rca.suite(folder, 60, seed, hard=writer == "hard", field=writer == "field")


def suite_rows(spec: str, root: Path, cache: Path | None, nezha: Path) -> list[dict[str, Any]]:
    """The scored rows of one suite in one regime (``<suite>-nl`` or ``<suite>-nlt5``)."""
    name, _, regime = spec.rpartition("-")
    if regime not in ("nl", "nlt5") or not name:
        raise SystemExit(f"suite {spec!r} needs a regime: <suite>-nl or <suite>-nlt5")
    path = cache / f"{spec}.json" if cache else None
    if path is not None and path.exists():
        return json.loads(path.read_text())
    worlds = derive_all(_worlds(name, root, nezha), root / "variants" / name, no_logs=True,
                        thin=0.5 if regime == "nlt5" else 1.0)
    rows = rca.run_suite(worlds, "direct", service_only=name.startswith("nezha"), quiet=True)
    keep = [{"world": r["world"], "hit1": r["hit1"], "confidence": r["confidence"], "features": r["features"]}
            for r in rows]
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(keep))
    return keep


def fit(rows: list[dict[str, Any]], hand: dict[str, float], *, wrong_weight: float, l2: float,
        steps: int = 4000) -> dict[str, float]:
    """Coefficients (bias and every calibration.FEATURES key) fitted on ``rows``, ``hand`` held as offsets.

    Gradient descent on the weighted, L2-penalised logistic loss, as ``bench/calibrate_pool.fit`` does, in numpy.
    ``no_logs`` is 1 on every row here, so it is folded into the bias (its coefficient is 0).
    """
    free = [k for k in calibration.FEATURES if k not in hand and k != "no_logs"]
    data = [r for r in rows if r.get("features")]
    x = np.array([[1.0, *(float(r["features"].get(k, 0.0)) for k in free)] for r in data])
    y = np.array([1.0 if r["hit1"] else 0.0 for r in data])
    offset = np.array([sum(v * float(r["features"].get(k, 0.0)) for k, v in hand.items()) for r in data])
    share = np.where(y == 0.0, wrong_weight, 1.0)
    weights = np.zeros(x.shape[1])
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(offset + x @ weights, -30, 30)))
        grad = x.T @ (share * (p - y)) / share.sum()
        weights -= 0.1 * (grad + l2 * weights)
    fitted = {"bias": round(float(weights[0]), 3), **{k: round(float(w), 3) for k, w in zip(free, weights[1:],
                                                                                              strict=True)}}
    return {**dict.fromkeys(("bias", *calibration.FEATURES), 0.0), **hand, **fitted}


def rescore(rows: list[dict[str, Any]], coefficients: dict[str, float] | None) -> list[dict[str, Any]]:
    """Rows with confidences recomputed: under ``coefficients`` for the no-logs regime, or as shipped (None)."""
    if coefficients is None:
        return [{**r, "confidence": calibration.confidence(r["features"] or {})} for r in rows]
    return calibrate_pool._rescore(rows, coefficients, calibration.NO_LOGS_COEFFICIENTS)


def summary(label: str, rows: list[dict[str, Any]]) -> str:
    """One line: worlds, wrong, AUROC, ECE, wrong answers above 50 / 80, right answers at or below 50."""
    if not rows:
        return f"   {label:<30} no worlds"
    wrong = sorted((r["confidence"] for r in rows if not r["hit1"]), reverse=True)
    right = [r["confidence"] for r in rows if r["hit1"]]
    roc = rca.auroc([r["confidence"] for r in rows], [r["hit1"] for r in rows])
    _, ece = rca.reliability(rows)
    return (f"   {label:<30}{len(rows):>5} worlds {len(wrong):>4} wrong  AUROC "
            f"{'n/a  ' if roc is None else f'{roc:.3f}'}  ECE {ece:.3f}  wrong >50 {sum(c > 50 for c in wrong):>3} "
            f">80 {sum(c > 80 for c in wrong):>2} (top {wrong[:4]})  right <=50 {sum(c <= 50 for c in right):>4}"
            f"  right mean {sum(right) / max(1, len(right)):.0f}")


def report(title: str, pool: dict[str, list[dict[str, Any]]], fitted: dict[str, float]) -> None:
    """Shipped against fitted, per writer and regime and for the whole pool."""
    print(f"-- {title}")
    groups: dict[str, list[str]] = {"all": list(pool)}
    for spec in pool:
        name, _, regime = spec.rpartition("-")
        writer = "nezha" if name.startswith("nezha") else next(w for w in WRITERS if name.startswith(w))
        groups.setdefault(f"{writer} {regime}", []).append(spec)
    for group, specs in groups.items():
        rows = [r for s in specs for r in pool[s]]
        print(summary(f"{group}, shipped", rescore(rows, None)))
        print(summary(f"{group}, fitted", rescore(rows, fitted)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", required=True, help="suites to fit on, comma-separated (<suite>-nl / -nlt5)")
    parser.add_argument("--held", default="", help="suites held out, comma-separated")
    parser.add_argument("--worlds", default="/tmp/pm-calib", type=Path, help="where suites and variants are written")
    parser.add_argument("--cache", default=None, type=Path, help="keep / reuse each suite's scored rows here")
    parser.add_argument("--nezha", default=str(NEZHA), type=Path, help="the nezha-tt folder")
    parser.add_argument("--hand", default="degraded,blames_failing,names_silent",
                        help="coefficients kept at their shipped values (no pool holds enough of them)")
    parser.add_argument("--wrong-weight", type=float, default=9.0)
    parser.add_argument("--l2", type=float, default=0.01)
    parser.add_argument("--folds", type=int, default=0, help="also cross-validate with K folds of whole suites")
    args = parser.parse_args(argv)
    specs = [s for s in args.fit.split(",") if s.strip()]
    held_specs = [s for s in args.held.split(",") if s.strip()]
    fitting = {s: suite_rows(s, args.worlds, args.cache, args.nezha) for s in specs}
    held = {s: suite_rows(s, args.worlds, args.cache, args.nezha) for s in held_specs}
    hand = {k: calibration.NO_LOGS_COEFFICIENTS.get(k, 0.0) for k in args.hand.split(",") if k.strip()}
    fitted = fit([r for rows in fitting.values() for r in rows], hand, wrong_weight=args.wrong_weight, l2=args.l2)
    print("shipped (no logs):", calibration.NO_LOGS_COEFFICIENTS)
    print("fitted (no logs): ", fitted)
    report("fitting pool", fitting, fitted)
    if held:
        report("held-out pool", held, fitted)
    if args.folds > 1:
        out: list[dict[str, Any]] = []
        for k in range(args.folds):
            test = specs[k::args.folds]
            train = [r for s in specs if s not in test for r in fitting[s]]
            coefficients = fit(train, hand, wrong_weight=args.wrong_weight, l2=args.l2)
            out += rescore([r for s in test for r in fitting[s]], coefficients)
        print(f"-- {args.folds}-fold cross-validation over the fitting suites (each scored by a fit without it)")
        print(summary("all, shipped", rescore([r for rows in fitting.values() for r in rows], None)))
        print(summary("all, cross-validated", out))


if __name__ == "__main__":
    main()
