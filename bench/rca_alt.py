"""Root-cause accuracy of the evidence engine on independently written worlds (bench/altworlds.py).

Writes a suite with ``bench/altworlds.py`` (not the project's own generator), runs the engine on each
world exactly as ``bench/rca.py`` does (its ``run_suite``: ``engine.run_all`` over a ToolSource) and
prints top-1 / top-3 on (service, change_id), abstain accuracy, confidence AUROC, mean time, and
top-1 / top-3 per family and per variant, read from each world's truth.yaml ``alt`` block.

Usage: .venv/bin/python bench/rca_alt.py [--count 60] [--seed 1] [--keep DIR] [--dump-misses]
       [--transport direct|inprocess] [--only TEXT] [--quiet]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.altworlds import generate_suite  # noqa: E402
from bench.rca import print_reliability, run_suite, summarise  # noqa: E402


def alt_of(world: Path) -> dict:
    """The writer's own notes on a world (family, variant, decoys), from truth.yaml."""
    return yaml.safe_load((world / "truth.yaml").read_text()).get("alt") or {}


def suite(folder: Path, count: int, seed: int) -> list[Path]:
    """The alt suite in ``folder``: reused when a previous run with the same seed and count left it there."""
    marker = folder / f".alt-suite-{seed}-{count}"
    if marker.exists():
        return sorted(p for p in folder.iterdir() if p.is_dir() and (p / "world.yaml").exists())
    worlds = generate_suite(folder, count, seed)
    marker.write_text("written by bench/rca_alt.py\n")
    return worlds


def by_key(rows: list[dict], worlds: dict[str, Path], key: str) -> dict[str, str]:
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(str(alt_of(worlds[r["world"]]).get(key)), []).append(r)
    return {k: f"{sum(r['hit1'] for r in v)}/{sum(r['hit3'] for r in v)}/{len(v)}" for k, v in sorted(groups.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", default=None, help="write into (or reuse worlds already in) this folder")
    parser.add_argument("--transport", default="direct", choices=["inprocess", "direct"])
    parser.add_argument("--dump-misses", action="store_true", help="print every top-3 miss's hypotheses")
    parser.add_argument("--only", default=None, help="score only worlds whose name contains this text")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pm-alt-") as tmp:
        folder = Path(args.keep) if args.keep else Path(tmp)
        started = time.perf_counter()
        worlds = suite(folder, args.count, args.seed)
        if args.only:
            worlds = [w for w in worlds if args.only in w.name]
        print(f"wrote {len(worlds)} alt worlds (seed {args.seed}) in {time.perf_counter() - started:.1f} s")
        rows = run_suite(worlds, args.transport, quiet=args.quiet, dump=args.dump_misses)
        named = {w.name: w for w in worlds}
        summarise(f"alt suite seed {args.seed}", rows)
        print("top-1/top-3/n by family: ", by_key(rows, named, "family"))
        print("top-1/top-3/n by variant:", by_key(rows, named, "variant"))
        print("top-1/top-3/n by trigger:", by_key(rows, named, "trigger"))
        print("top-1/top-3/n by step:   ", by_key(rows, named, "step"))
        misses = [r for r in rows if not r["hit1"]]
        if misses:
            print(f"\n{len(misses)} top-1 misses:")
            for r in misses:
                alt = alt_of(named[r["world"]])
                print(f"  {r['world']}: {alt.get('family')}/{alt.get('variant')} want={r['truth']} got={r['keys'][:3]} "
                      f"conf={r['confidence']} trigger_svc={alt.get('trigger_service')} decoys={alt.get('decoys')}")
        print_reliability(f"alt suite seed {args.seed}", rows)


if __name__ == "__main__":
    main()
