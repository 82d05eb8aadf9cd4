"""Root-cause accuracy of the evidence engine on independently written worlds (bench/altworlds.py).

Writes a suite with ``bench/altworlds.py`` (not the project's own generator), runs the engine on each
world exactly as ``bench/rca.py`` does (its ``run_suite``: ``engine.run_all`` over a ToolSource) and
prints top-1 / top-3 on (service, change_id), abstain accuracy, confidence AUROC, mean time, and
top-1 / top-3 per family and per variant, read from each world's truth.yaml ``alt`` block.

``--why`` re-runs the engine's first phases on every top-1 miss and tags what misled it (heuristics, for
a human to confirm): ``onset-early/late Nmin`` (the engine's onset vs the writer's), ``culprit-ruled-after``
(the culprit change scored as landing after that onset), ``old-change-beats-none`` (no change to blame, but
an older change on the right service won), ``other-change-same-service``, ``victim-above-origin`` (the
answer's service is a caller of the truth and the engine knew it), ``unrelated-service`` (neither),
``declined-by-verify`` (the right pair ranked first, then verification demoted it).

Usage: .venv/bin/python bench/rca_alt.py [--count 60] [--seed 1] [--keep DIR] [--dump-misses] [--why]
       [--transport direct|inprocess] [--only TEXT] [--quiet] [--no-logs] [--no-topology] [--thin-traces F]

``--no-logs`` / ``--no-topology`` / ``--thin-traces F``: score the metrics-first variants of the worlds (bench/variants.py).
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
from bench.variants import derive_all  # noqa: E402


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


def why(world: Path, row: dict) -> list[str]:
    """Heuristic tags for a top-1 miss (see the module docstring); never raises."""
    try:
        from agents import engine
        from agents.evidence.timeutil import parse_ts
        from sandbox.tools import WorldTools

        truth = yaml.safe_load((world / "truth.yaml").read_text())
        want_svc, want_chg = truth["root_cause"]["service"], truth["root_cause"]["change_id"]
        onset = parse_ts(truth["alt"]["onset"])
        tools = WorldTools(world)
        ctx = engine.gather_context(tools, None, None)
        sig = engine.analyse_signals(tools, ctx)
        chg = engine.gather_changes(tools, ctx)
        cor = engine.correlate(ctx, sig, chg)
        hyp = engine.hypothesise(ctx, sig, chg, cor, rejected=[])
    except Exception as exc:  # noqa: BLE001 - a diagnosis aid must not break the bench
        return [f"why-failed: {exc.__class__.__name__}: {exc}"]
    tags = []
    got_svc, got_chg = row["keys"][0] if row["keys"] else (None, None)
    est = parse_ts(sig.get("onset"))
    if est is not None and abs(est - onset) > 90:
        tags.append(f"onset-{'early' if est < onset else 'late'} {abs(est - onset) / 60:.1f}min")
    scored = {c["id"]: c for c in cor.get("changes", [])}
    if want_chg and scored.get(want_chg, {}).get("position") == "after":
        tags.append("culprit-ruled-after")
    if want_chg is None and got_svc == want_svc and got_chg:
        dt = onset - parse_ts(scored.get(got_chg, {}).get("ts") or truth["alt"]["onset"])
        tags.append(f"old-change-beats-none ({dt / 60:.0f} min before)")
    elif want_chg and got_svc == want_svc and got_chg != want_chg:
        tags.append("other-change-same-service" if got_chg else "no-change-attached")
    if got_svc != want_svc:
        origins = {o["service"]: o for o in cor.get("origins", [])}
        if want_svc in (origins.get(got_svc) or {}).get("victim_of", []):
            tags.append("victim-above-origin")
        else:
            tags.append("unrelated-service")
    first = (hyp.get("hypotheses") or [{}])[0]
    if (first.get("service"), first.get("change_id")) == (want_svc, want_chg):
        tags.append("declined-by-verify")
    anchor = ctx.get("anchor")
    if anchor is not None and abs(anchor - onset) > 600:
        tags.append(f"anchor {(anchor - onset) / 60:+.0f}min from {ctx.get('anchor_from')}")
    return tags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", default=None, help="write into (or reuse worlds already in) this folder")
    parser.add_argument("--transport", default="direct", choices=["inprocess", "direct"])
    parser.add_argument("--dump-misses", action="store_true", help="print every top-3 miss's hypotheses")
    parser.add_argument("--only", default=None, help="score only worlds whose name contains this text")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--why", action="store_true", help="tag what misled the engine on every top-1 miss")
    parser.add_argument("--no-logs", action="store_true", help="score every world with its logs left out")
    parser.add_argument("--no-topology", action="store_true", help="score every world with its topology.yaml left out")
    parser.add_argument("--thin-traces", type=float, default=1.0,
                        help="keep this share of request-level samples and of traces' log lines")
    parser.add_argument("--variant-dir", default="/tmp/pm-variants", help="where the variants are written")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pm-alt-") as tmp:
        folder = Path(args.keep) if args.keep else Path(tmp)
        started = time.perf_counter()
        worlds = suite(folder, args.count, args.seed)
        if args.only:
            worlds = [w for w in worlds if args.only in w.name]
        worlds = derive_all(worlds, Path(args.variant_dir) / f"alt{args.seed}-{folder.name}",
                            no_logs=args.no_logs, thin=args.thin_traces, no_topology=args.no_topology)
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
                      f"conf={r['confidence']} trigger={alt.get('trigger')}:{alt.get('trigger_service')} "
                      f"decoys={alt.get('decoys')}")
                if args.why:
                    print(f"      why: {why(named[r['world']], r)}")
        print_reliability(f"alt suite seed {args.seed}", rows)


if __name__ == "__main__":
    main()
