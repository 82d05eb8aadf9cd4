"""Confidence calibration across world writers: fit on some suites, report on others never fitted on.

The confidence model (agents/evidence/calibration.py) was first fitted on one suite of our own generator.
Unseen worlds come from other writers, so this script pools the scored worlds of several writers: our
generator (``bench/rca.py`` suites), the independent writer (``bench/altworlds.py`` suites) and the Nezha
TrainTicket worlds (service only, odd numbers to fit, even numbers held out). It prints, for the fitting
pool and the held-out pool, overall and per writer (own / alt / nezha), AUROC and expected calibration error
(Guo et al., ICML 2017) of the shipped coefficients and of coefficients fitted on the fitting pool
(L2-penalised logistic regression, Platt scaling, as ``bench.rca.fit``, with the hand-set coefficients held
fixed while the others are fitted).

Usage:
  .venv/bin/python bench/calibrate_pool.py --own 101 --alt 2,3,4,7,12 --nezha /work/shared/eval/nezha-tt \\
      --held-own 202 --held-alt 5,6,11,13 [--alt-dir /tmp/alt] [--own-dir /tmp/own] [--transport direct] \\
      [--hand degraded,names_silent] [--cache DIR]
Alt suites are read from (or written to) ``<alt-dir>/s<seed>``, own suites from ``<own-dir>/s<seed>``.
``--cache DIR`` keeps each suite's scored rows (features, top-1 hit) in ``DIR/<writer><seed>.json`` and reuses
them: valid while the engine's ranking features do not change (the confidence is recomputed from them).
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.evidence import calibration  # noqa: E402
from bench import rca, rca_alt  # noqa: E402
from bench.variants import derive_all  # noqa: E402


def _seeds(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s.strip()]


def _cached(args: argparse.Namespace, name: str, run) -> list[dict]:
    """The rows of one suite, from ``--cache`` when there, else ``run()`` (then saved there)."""
    path = Path(args.cache) / f"{name}.json" if args.cache else None
    if path is not None and path.exists():
        return json.loads(path.read_text())
    rows = run()
    for row in rows:
        row["writer"] = name.split("-")[0].rstrip("0123456789")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rows, default=str))
    return rows


def _rows(args: argparse.Namespace, own: list[int], alt: list[int], nezha_parity: int | None,
          hard: list[int] | None = None) -> list[dict]:
    """The scored rows of one pool; with ``--no-logs`` each suite's logs-left-out variant too (``regime``), with
    ``--no-topology`` each regime's topology-left-out variant as well (regime ``<regime>-nomap``)."""
    rows: list[dict] = []
    regimes: tuple[str, ...] = ("logs", "nologs") if args.no_logs else ("logs",)
    if args.only_no_logs:
        regimes = ("nologs",)
    if args.no_topology:
        regimes = (*regimes, *(f"{r}-nomap" for r in regimes))
    variant_root = Path(args.variant_dir)

    def scored(name: str, worlds, *, service_only: bool = False) -> list[dict]:
        out: list[dict] = []
        for regime in regimes:
            def run(regime: str = regime) -> list[dict]:
                found = worlds()
                if regime != "logs":
                    found = derive_all(found, variant_root / f"pool-{name}", no_logs=regime.startswith("nologs"),
                                       no_topology=regime.endswith("-nomap"))
                return rca.run_suite(found, args.transport, service_only=service_only, quiet=True)
            part = _cached(args, name if regime == "logs" else f"{name}-{regime}", run)
            out += [{**r, "regime": regime} for r in part]
        return out

    for seed in own:
        rows += scored(f"own{seed}", lambda seed=seed: rca.suite(Path(args.own_dir) / f"s{seed}", 60, seed))
    for seed in hard or []:
        rows += scored(f"hard{seed}", lambda seed=seed: rca.suite(Path(args.hard_dir) / f"s{seed}", 60, seed, True))
    for seed in alt:
        rows += scored(f"alt{seed}", lambda seed=seed: rca_alt.suite(Path(args.alt_dir) / f"s{seed}", 60, seed))
    if args.nezha and nezha_parity is not None:
        nezha = scored("nezha", lambda: [Path(p) for p in sorted(glob.glob(str(Path(args.nezha) / "tt-*")))],
                       service_only=True)
        rows += [r for r in nezha if int(r["world"].split("-")[-1]) % 2 == nezha_parity]
    return rows


def writer_of(row: dict) -> str:
    """own / hard / alt / nezha: the writer of a scored world (its suite's name, else its folder name)."""
    if row.get("writer"):
        return str(row["writer"])
    name = row["world"]
    return "nezha" if name.startswith("tt-") else "alt" if name.startswith("alt") else "own"


def fit(rows: list[dict], fixed: dict[str, float], *, l2: float = 0.01, steps: int = 4000,
        free: list[str] | None = None, wrong_weight: float = 1.0) -> dict[str, float]:
    """Fit the logistic confidence model on (features, top-1 hit), ``fixed`` coefficients held as they are.

    The same gradient descent and L2 penalty as ``bench.rca.fit``; a hand-set coefficient enters as an offset
    so the fitted ones do not absorb (or double) what it already accounts for. ``free`` — fit only these
    (the bias included only when listed; every other coefficient comes from ``fixed``). ``wrong_weight`` — the
    weight of a wrong top answer in the loss (1: calibrated; w: a fitted 50 means odds of w:1 of being right).
    Returns: rounded coefficients, bias and every calibration.FEATURES key.
    """
    if free is None:
        free_keys = ["bias", *(k for k in calibration.FEATURES if k not in fixed)]
        held = {k: v for k, v in fixed.items() if k != "bias"}
    else:
        free_keys = list(free)
        held = {k: v for k, v in fixed.items() if k not in free_keys}
    data = [(r["features"], 1.0 if r["hit1"] else 0.0) for r in rows if r["features"]]
    offsets = [held.get("bias", 0.0) + sum(v * float(feats.get(k, 0.0)) for k, v in held.items() if k != "bias")
               for feats, _ in data]
    weights = dict.fromkeys(free_keys, 0.0)
    value = lambda feats, k: 1.0 if k == "bias" else float(feats.get(k, 0.0))  # noqa: E731
    total = sum(wrong_weight if y == 0.0 else 1.0 for _, y in data) or 1.0
    for _ in range(steps):
        grad = dict.fromkeys(weights, 0.0)
        for (feats, y), offset in zip(data, offsets, strict=True):
            z = offset + sum(weights[k] * value(feats, k) for k in free_keys)
            p = 1.0 / (1.0 + math.exp(-max(-30, min(30, z))))
            share = wrong_weight if y == 0.0 else 1.0
            for k in free_keys:
                grad[k] += share * (p - y) * value(feats, k)
        for k in weights:
            weights[k] -= 0.1 * (grad[k] / total + l2 * weights[k])
    fitted = {k: round(v, 3) for k, v in weights.items()}
    return {**dict.fromkeys(("bias", *calibration.FEATURES), 0.0), **held, **fitted}


def _rescore(rows: list[dict], coefficients: dict[str, float], table: dict[str, float] | None = None) -> list[dict]:
    """The rows with their confidence recomputed from the top hypothesis' features under ``coefficients``, put in
    place of ``table``'s (calibration.COEFFICIENTS by default; calibration.NO_LOGS_COEFFICIENTS for that regime)."""
    table = calibration.COEFFICIENTS if table is None else table
    saved = dict(table)
    try:
        table.clear()
        table.update(coefficients)
        return [{**r, "confidence": calibration.confidence(r["features"] or {})} for r in rows]
    finally:
        table.clear()
        table.update(saved)


def _summary(title: str, rows: list[dict]) -> None:
    """One line per writer and evidence regime and one for all: worlds, wrong top-1, AUROC, ECE, wrong > 50 / 80."""
    print(f"-- {title}")
    regimes = ("logs", "nologs", "logs-nomap", "nologs-nomap", "all")
    groups = [(w, g) for w in ("own", "hard", "alt", "nezha", "all") for g in regimes]
    for name, regime in groups:
        part = [r for r in rows if (name == "all" or writer_of(r) == name)
                and (regime == "all" or r.get("regime", "logs") == regime)]
        if not part or (regime == "all" and len({r.get("regime", "logs") for r in part}) < 2):
            continue
        _, ece = rca.reliability(part)
        roc = rca.auroc([r["confidence"] for r in part], [r["hit1"] for r in part])
        wrong = sorted((r["confidence"] for r in part if not r["hit1"]), reverse=True)
        right = [r["confidence"] for r in part if r["hit1"]]
        print(f"   {name:<6}{regime:<13}{len(part):>4} worlds {len(wrong):>3} wrong   AUROC "
              f"{'n/a  ' if roc is None else f'{roc:.3f}'}   ECE {ece:.3f}   wrong >50 {sum(c > 50 for c in wrong):>2}"
              f" >80 {sum(c > 80 for c in wrong):>2} (top {wrong[:3]})   right mean {sum(right) / max(1, len(right)):.0f}"
              f" <=50 {sum(c <= 50 for c in right)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--own", default="101", help="own-generator seeds to fit on")
    parser.add_argument("--alt", default="2,3,7", help="alt-writer seeds to fit on")
    parser.add_argument("--held-own", default="202", help="own-generator seeds held out")
    parser.add_argument("--held-alt", default="11", help="alt-writer seeds held out")
    parser.add_argument("--hard", default="", help="hard-mode own-generator seeds to fit on")
    parser.add_argument("--held-hard", default="", help="hard-mode own-generator seeds held out")
    parser.add_argument("--hard-dir", default="/tmp/hard")
    parser.add_argument("--no-logs", action="store_true",
                        help="pool each suite's variant with logs left out too (bench/variants.py)")
    parser.add_argument("--only-no-logs", action="store_true",
                        help="pool only the logs-left-out variants (a feature that is 0 on every world with logs "
                             "is fitted the same without those worlds)")
    parser.add_argument("--no-topology", action="store_true",
                        help="pool each regime's variant with topology.yaml left out too (a team with no service map)")
    parser.add_argument("--variant-dir", default="/tmp/pm-variants", help="where the no-logs variants are written")
    parser.add_argument("--nezha", default=None, help="nezha-tt folder (odd worlds fitted, even held out)")
    parser.add_argument("--own-dir", default="/tmp/own")
    parser.add_argument("--alt-dir", default="/tmp/alt")
    parser.add_argument("--transport", default="direct", choices=["inprocess", "direct"])
    parser.add_argument("--hand", default="degraded,names_silent",
                        help="coefficients kept at their shipped (hand-set) values while the others are fitted")
    parser.add_argument("--l2", type=float, default=0.01, help="L2 penalty of the fit")
    parser.add_argument("--free", default=None,
                        help="fit only these coefficients (comma-separated; 'bias' too only if listed), holding "
                             "every other one at its shipped value (--hand is then ignored)")
    parser.add_argument("--wrong-weight", type=float, default=1.0,
                        help="weight of a wrong top answer in the fit (w: a fitted 50 means odds w:1 of being right)")
    parser.add_argument("--cache", default=None, help="keep / reuse each suite's scored rows in this folder")
    parser.add_argument("--tables", action="store_true", help="also print the reliability tables")
    args = parser.parse_args()
    fitting = _rows(args, _seeds(args.own), _seeds(args.alt), 1, _seeds(args.hard))
    held = _rows(args, _seeds(args.held_own), _seeds(args.held_alt), 0, _seeds(args.held_hard))
    shipped = dict(calibration.COEFFICIENTS)
    # Hand-set priors the pools cannot fit (no such worlds, or too few) keep their shipped values.
    fixed = {k: shipped.get(k, 0.0) for k in args.hand.split(",") if k.strip()}
    if args.free:
        fitted = fit(fitting, shipped, l2=args.l2, free=[k for k in args.free.split(",") if k.strip()],
                     wrong_weight=args.wrong_weight)
    else:
        fitted = fit(fitting, fixed, l2=args.l2, wrong_weight=args.wrong_weight)
    print("shipped:", shipped)
    print("fitted: ", fitted)
    for title, rows in (("fitting pool", fitting), ("held-out pool", held)):
        for label, scored in (("shipped", _rescore(rows, shipped)), ("fitted", _rescore(rows, fitted))):
            _summary(f"{title}, {label} coefficients", scored)
            if args.tables:
                rca.print_reliability(f"{title}, {label} coefficients", scored)


if __name__ == "__main__":
    main()
