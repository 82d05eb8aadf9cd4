"""Confidence calibration across world writers: fit on some suites, report on others never fitted on.

The confidence model (agents/evidence/calibration.py) was first fitted on one suite of our own generator.
Unseen worlds come from other writers, so this script pools the scored worlds of several writers: our
generator (``bench/rca.py`` suites), the independent writer (``bench/altworlds.py`` suites) and the Nezha
TrainTicket worlds (service only, odd numbers to fit, even numbers held out). It prints, for the fitting
pool and the held-out pool, AUROC and expected calibration error (Guo et al., ICML 2017) of the shipped
coefficients and of coefficients fitted on the fitting pool (``bench.rca.fit``: L2-penalised logistic
regression, Platt scaling).

Usage:
  .venv/bin/python bench/calibrate_pool.py --own 101 --alt 2,3,7 --nezha /work/shared/eval/nezha-tt \\
      --held-own 202 --held-alt 11,12,13 [--alt-dir /tmp/alt] [--own-dir /tmp/own] [--transport direct]
Alt suites are read from (or written to) ``<alt-dir>/s<seed>``, own suites from ``<own-dir>/s<seed>``.
"""

from __future__ import annotations

import argparse
import glob
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.evidence import calibration  # noqa: E402
from bench import rca, rca_alt  # noqa: E402


def _seeds(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s.strip()]


def _rows(args: argparse.Namespace, own: list[int], alt: list[int], nezha_parity: int | None) -> list[dict]:
    rows: list[dict] = []
    for seed in own:
        worlds = rca.suite(Path(args.own_dir) / f"s{seed}", 60, seed)
        rows += rca.run_suite(worlds, args.transport, quiet=True)
    for seed in alt:
        worlds = rca_alt.suite(Path(args.alt_dir) / f"s{seed}", 60, seed)
        rows += rca.run_suite(worlds, args.transport, quiet=True)
    if args.nezha and nezha_parity is not None:
        nezha = [Path(p) for p in sorted(glob.glob(str(Path(args.nezha) / "tt-*")))
                 if int(Path(p).name.split("-")[-1]) % 2 == nezha_parity]
        rows += rca.run_suite(nezha, args.transport, service_only=True, quiet=True)
    return rows


def _rescore(rows: list[dict], coefficients: dict[str, float]) -> list[dict]:
    """The rows with their confidence recomputed from the top hypothesis' features under ``coefficients``."""
    saved = dict(calibration.COEFFICIENTS)
    try:
        calibration.COEFFICIENTS.clear()
        calibration.COEFFICIENTS.update(coefficients)
        return [{**r, "confidence": calibration.confidence(r["features"] or {})} for r in rows]
    finally:
        calibration.COEFFICIENTS.clear()
        calibration.COEFFICIENTS.update(saved)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--own", default="101", help="own-generator seeds to fit on")
    parser.add_argument("--alt", default="2,3,7", help="alt-writer seeds to fit on")
    parser.add_argument("--held-own", default="202", help="own-generator seeds held out")
    parser.add_argument("--held-alt", default="11", help="alt-writer seeds held out")
    parser.add_argument("--nezha", default=None, help="nezha-tt folder (odd worlds fitted, even held out)")
    parser.add_argument("--own-dir", default="/tmp/own")
    parser.add_argument("--alt-dir", default="/tmp/alt")
    parser.add_argument("--transport", default="direct", choices=["inprocess", "direct"])
    args = parser.parse_args()
    fitting = _rows(args, _seeds(args.own), _seeds(args.alt), 1)
    held = _rows(args, _seeds(args.held_own), _seeds(args.held_alt), 0)
    shipped = dict(calibration.COEFFICIENTS)
    fitted = rca.fit(fitting)
    # Hand-set priors the pools cannot fit (no such worlds, or too few) keep their shipped values.
    for key in ("degraded",):
        fitted[key] = shipped.get(key, fitted.get(key, 0.0))
    print("shipped:", shipped)
    print("fitted: ", fitted)
    for title, rows in (("fitting pool", fitting), ("held-out pool", held)):
        rca.print_reliability(f"{title}, shipped coefficients", rows)
        rca.print_reliability(f"{title}, fitted coefficients", _rescore(rows, fitted))


if __name__ == "__main__":
    main()
