"""Root-cause accuracy of the evidence engine, read through the MCP gateway (in-process transport).

Generates a suite (every family, decoys on) into a temp dir, runs the engine on
each world and prints top-1 / top-3 on (service, change_id), abstain accuracy
(worlds whose truth blames no change), confidence AUROC and mean time per
world, next to two naive baselines run in the same loop. Also scores the
shared example worlds. ``--nezha DIR`` scores real TrainTicket incidents on
the service only, next to Nezha's 86.7 / 97.8 / 97.8 (Yu et al., "Nezha:
Interpretable Fine-Grained Root Causes Analysis for Microservices on
Multi-modal Observability Data", ESEC/FSE 2023, Table 3). ``--calibrate``
fits the confidence model's coefficients on the suite and prints them.
``--large N`` also scores N bigger worlds (services 20 and 30, 240 min,
families in turn) made by ``generate_world``. At the end a reliability table
(confidence bins → accuracy, expected calibration error; Guo et al., "On
Calibration of Modern Neural Networks", ICML 2017) and the AUROC over every
world scored, which includes wrong answers (Nezha's).

Metrics-first variants (bench/variants.py): ``--no-logs`` leaves every world's logs out, ``--no-topology`` its
topology.yaml, ``--thin-traces F``
keeps a share F of request-level samples (and of trace-joined log lines); ``--hard`` generates the suite in
the generator's hard mode (sandbox/gen_hard.py: change storms, a second incident, slow onsets, flapping
alerts, partial telemetry, harmless changes on self-failing origins); ``--field`` in the generator's field mode
(sandbox/gen_field.py: the metrics-first shapes of issue #15 — a failing callee whose requests collapse while
the entry's errors rise more, a pre-onset wobble, low-traffic origins, downstream noise) and groups the misses
by the shape that fooled the engine.

Usage: .venv/bin/python bench/rca.py [--count 60] [--seed 202] [--calibrate] [--large 0]
       [--nezha /work/shared/eval/nezha-tt] [--transport inprocess|direct] [--quiet]
       [--no-logs] [--no-topology] [--thin-traces 0.3] [--hard] [--field] [--variant-dir /tmp/pm-variants]
"""

from __future__ import annotations

import argparse
import glob
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents import engine  # noqa: E402
from agents.evidence import calibration  # noqa: E402
from agents.evidence.timeutil import parse_ts  # noqa: E402
from bench.variants import derive_all  # noqa: E402


def open_tools(world: Path, transport: str):
    """A ToolSource over the world: the gateway's in-process MCP transport, or WorldTools directly."""
    if transport == "direct":
        from sandbox.tools import WorldTools

        return WorldTools(world)
    from agents.gateway import open_gateway
    from agents.gateway_config import default_sandbox_config

    return open_gateway(default_sandbox_config(transport="inprocess"),
                        variables={"world": str(world), "python": sys.executable})


def truth_of(world: Path) -> dict[str, Any]:
    """The scorer's truth (read by the bench only, never by the engine)."""
    return yaml.safe_load((world / "truth.yaml").read_text())["root_cause"]


def baselines(tools) -> tuple[tuple, tuple]:
    """(a) last change before the first alert; (b) the hottest service's last change before it."""
    alerts = tools.call("alerts.list").get("alerts") or []
    first = min((parse_ts(a["ts"]) for a in alerts if parse_ts(a.get("ts"))), default=None)
    changes = [c for c in tools.call("changes.list").get("changes") or []
               if first is None or parse_ts(c["ts"]) <= first]
    last = max(changes, key=lambda c: c["ts"], default=None)
    a = (last["service"], last["id"]) if last else (None, None)
    series = tools.call("metrics.series", name="error_rate").get("series") or []
    hottest, rise = None, -math.inf
    for item in series:
        values = [v for _, v in item["points"]]
        if len(values) < 4:
            continue
        head = sorted(values[: len(values) // 2])[len(values) // 4]
        delta = max(values[len(values) // 2:]) - head
        if delta > rise:
            hottest, rise = item["service"], delta
    mine = [c for c in changes if c["service"] == hottest]
    own = max(mine, key=lambda c: c["ts"], default=None)
    return a, (hottest, own["id"] if own else None)


def auroc(scores: list[float], labels: list[bool]) -> float | None:
    """Area under the ROC curve (Mann-Whitney U; ties count half), None without both classes."""
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    if not pos or not neg:
        return None
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def dump_miss(report: dict[str, Any], want: Any) -> None:
    """Print a missed world's ranked hypotheses (key, score, confidence, features) for diagnosis."""
    print(f"       want {want}")
    for h in report["hypotheses"]:
        print(f"       #{h['rank']} {(h['service'], h['change_id'])} score={h.get('score')} conf={h['confidence']} "
              f"cat={h['category']} features={h.get('features')}")
        if h["rank"] == 1:
            for item in h.get("evidence", [])[:3]:
                print(f"          evidence: {item['summary'][:160]}")


def run_suite(worlds: list[Path], transport: str, *, service_only: bool = False, quiet: bool = False,
              dump: bool = False):
    """Run the engine on each world; return per-world rows (``dump`` prints each top-3 miss's hypotheses)."""
    rows = []
    for world in worlds:
        truth = truth_of(world)
        tools = open_tools(world, transport)
        try:
            started = time.perf_counter()
            report = engine.run_all(tools, None, None)
            elapsed = time.perf_counter() - started
            base_a, base_b = baselines(tools) if not service_only else ((None, None), (None, None))
        finally:
            if hasattr(tools, "close"):
                tools.close()
        ranked = report["hypotheses"]
        if service_only:
            keys = []
            for h in ranked:
                if h["service"] not in keys:
                    keys.append(h["service"])
            want = truth["service"]
        else:
            keys = [(h["service"], h["change_id"]) for h in ranked]
            want = (truth["service"], truth["change_id"])
        row = {"world": world.name, "truth": want, "keys": keys, "confidence": report["confidence"],
               "hit1": keys[:1] == [want], "hit3": want in keys[:3], "hit5": want in keys[:5],
               "null_truth": truth.get("change_id") is None, "time": elapsed,
               "base_a": base_a == want, "base_b": base_b == want,
               "features": ranked[0].get("features") if ranked else None,
               "top_change": ranked[0]["change_id"] if ranked else None}
        rows.append(row)
        if not quiet:
            mark = "ok " if row["hit1"] else "MISS"
            print(f"  {mark} {world.name:<28} truth={want} got={keys[:2]} conf={report['confidence']}")
        if dump and not row["hit3"]:
            dump_miss(report, want)
    return rows


def summarise(title: str, rows: list[dict], *, service_only: bool = False) -> None:
    """Print the figures of one run."""
    n = len(rows)
    if not n:
        return
    share = lambda key: sum(r[key] for r in rows) / n  # noqa: E731
    print(f"\n== {title}: {n} worlds")
    if service_only:
        print(f"service top-1 {share('hit1'):.3f}  top-3 {share('hit3'):.3f}  top-5 {share('hit5'):.3f}   "
              f"(Nezha, Yu et al. ESEC/FSE 2023: 0.867 / 0.978 / 0.978)")
    else:
        nulls = [r for r in rows if r["null_truth"]]
        abstain = sum(1 for r in nulls if r["top_change"] is None) / len(nulls) if nulls else float("nan")
        print(f"top-1 {share('hit1'):.3f}  top-3 {share('hit3'):.3f}  abstain {abstain:.3f} "
              f"({len(nulls)} no-change worlds)")
        print(f"baseline 'last change before the first alert'    top-1 {share('base_a'):.3f}")
        print(f"baseline 'hottest service's last change'         top-1 {share('base_b'):.3f}")
    roc = auroc([r["confidence"] for r in rows], [r["hit1"] for r in rows])
    print(f"confidence AUROC {roc:.3f}" if roc is not None else "confidence AUROC n/a (one class only)")
    wrong = sorted((r["confidence"] for r in rows if not r["hit1"]), reverse=True)
    print(f"wrong top-1 answers {len(wrong)}: above 50 {sum(c > 50 for c in wrong)}, above 80 {sum(c > 80 for c in wrong)}"
          f" (highest {wrong[:3]})")
    print(f"mean time per world {sum(r['time'] for r in rows) / n * 1000:.0f} ms (engine only, excl. gateway open)")


def reliability(rows: list[dict], bins: int = 5) -> tuple[list[tuple[int, int, int, float, float]], float]:
    """Reliability table and expected calibration error of the reported confidence (0..100) vs top-1 hit.

    Params: rows — run_suite rows; bins — equal-width confidence bins.
    Returns: ([(lo, hi, n, mean confidence, accuracy) per non-empty bin], ECE as a 0..1 fraction).
    """
    table, ece, n = [], 0.0, len(rows)
    width = 100 / bins
    for index in range(bins):
        lo, hi = index * width, (index + 1) * width
        members = [r for r in rows if lo <= r["confidence"] < hi or (index == bins - 1 and r["confidence"] >= hi)]
        if not members:
            continue
        conf = sum(r["confidence"] for r in members) / len(members) / 100
        acc = sum(r["hit1"] for r in members) / len(members)
        table.append((int(lo), int(hi), len(members), conf, acc))
        ece += len(members) / n * abs(conf - acc)
    return table, ece


def print_reliability(title: str, rows: list[dict]) -> None:
    """Print the reliability table, ECE and AUROC of a set of scored worlds."""
    if not rows:
        return
    table, ece = reliability(rows)
    roc = auroc([r["confidence"] for r in rows], [r["hit1"] for r in rows])
    wrong = sum(1 for r in rows if not r["hit1"])
    print(f"\n== calibration, {title}: {len(rows)} worlds, {wrong} wrong top-1")
    print("confidence   n   mean conf  accuracy")
    for lo, hi, count, conf, acc in table:
        print(f"{lo:>3}-{hi:<3}   {count:>4}   {conf:8.3f}  {acc:8.3f}")
    print(f"ECE {ece:.3f}   AUROC {roc:.3f}" if roc is not None else f"ECE {ece:.3f}   AUROC n/a (one class)")


def suite(folder: Path, count: int, seed: int, hard: bool = False, field: bool = False) -> list[Path]:
    """The generated suite in ``folder``: reused when a previous run with the same seed left it there."""
    from sandbox.generator import generate_suite

    marker = folder / f".suite-{seed}-{count}{'-hard' if hard else ''}{'-field' if field else ''}"
    if marker.exists():
        return sorted(p for p in folder.iterdir() if p.is_dir() and (p / "world.yaml").exists())
    worlds = generate_suite(folder, count=count, seed=seed, decoys=True, hard=hard, field=field)
    marker.write_text("generated by bench/rca.py\n")
    return worlds


def field_pattern(world: Path, row: dict) -> str:
    """Name the field-mode shape a missed world's top answer fell for (from truth.yaml's ``meta.field``)."""
    meta = yaml.safe_load((world / "truth.yaml").read_text()).get("meta") or {}
    shapes = meta.get("field") or {}
    got = row["keys"][0][0] if row["keys"] else None
    want = row["truth"][0]
    callee = shapes.get("callee") or {}
    if got is None:
        return "no answer"
    if got == want:
        return "right service, wrong change"
    if callee and got == callee.get("entry"):
        return "entry blamed for a failing callee"
    if got == (shapes.get("wobble") or {}).get("service"):
        return "pre-onset wobble blamed"
    if got == (shapes.get("downstream") or {}).get("service"):
        return "downstream noise blamed"
    if want in (shapes.get("low_traffic") or {}):
        return "low-traffic origin missed"
    if got in (shapes.get("low_traffic") or {}):
        return "a noisy low-traffic bystander blamed"
    if callee and got in meta.get("affected", []):
        return "another victim of a failing callee blamed"
    if got in meta.get("affected", []):
        return "a victim blamed (no field shape)"
    return "a bystander blamed"


def print_field_patterns(worlds: list[Path], rows: list[dict]) -> None:
    """Print how often each field shape occurs, its top-1 there, and the misses grouped by what fooled the engine."""
    by_name = {w.name: w for w in worlds}
    present: dict[str, list[bool]] = {}
    groups: dict[str, list[str]] = {}
    for row in rows:
        meta = yaml.safe_load((by_name[row["world"]] / "truth.yaml").read_text()).get("meta") or {}
        shapes = meta.get("field") or {}
        tags = [k for k in ("callee", "downstream", "wobble") if k in shapes]
        if row["truth"][0] in (shapes.get("low_traffic") or {}):
            tags.append("low_traffic_origin")
        elif "low_traffic" in shapes:
            tags.append("low_traffic_bystander")
        for tag in tags or ["none"]:
            present.setdefault(tag, []).append(row["hit1"])
        if not row["hit1"]:
            groups.setdefault(field_pattern(by_name[row["world"]], row), []).append(
                f"{row['world']}(conf {row['confidence']})")
    print("field shapes (worlds holding it: top-1):",
          {k: f"{sum(v)}/{len(v)}" for k, v in sorted(present.items())})
    for pattern, names in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        print(f"  misses, {pattern}: {len(names)}  {' '.join(names)}")


def large_worlds(tmp: Path, count: int, seed: int) -> list[Path]:
    """``count`` worlds of 20 or 30 services over 240 minutes, families in turn, decoys on (reused if there)."""
    from sandbox.generator import FAMILIES, generate_world

    worlds = []
    for index in range(count):
        family = FAMILIES[index % len(FAMILIES)]
        services = 20 if index % 2 == 0 else 30
        name = f"large-{index:03d}-{family}"
        if (tmp / name / "truth.yaml").exists():
            worlds.append(tmp / name)  # left by an earlier --keep run
            continue
        worlds.append(generate_world(tmp / name, family=family, seed=seed * 1000 + index, services=services,
                                     duration_min=240, log_lines=20_000, name=name))
    return worlds


def fit(rows: list[dict]) -> dict[str, float]:
    """Fit the logistic confidence model by gradient descent on (features, top-1 hit)."""
    data = [(r["features"], 1.0 if r["hit1"] else 0.0) for r in rows if r["features"]]
    weights = {"bias": 0.0, **{k: 0.0 for k in calibration.FEATURES}}
    for _ in range(4000):
        grad = dict.fromkeys(weights, 0.0)
        for feats, y in data:
            z = weights["bias"] + sum(weights[k] * feats.get(k, 0.0) for k in calibration.FEATURES)
            p = 1.0 / (1.0 + math.exp(-max(-30, min(30, z))))
            grad["bias"] += p - y
            for k in calibration.FEATURES:
                grad[k] += (p - y) * feats.get(k, 0.0)
        for k in weights:
            # A small L2 penalty keeps separable data from driving weights to infinity.
            weights[k] -= 0.1 * (grad[k] / len(data) + 0.01 * weights[k])
    return {k: round(v, 3) for k, v in weights.items()}


def main() -> None:
    """Generate, run, score, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=60)
    parser.add_argument("--seed", type=int, default=202, help="suite seed to score (calibration used 101)")
    parser.add_argument("--calibrate", action="store_true", help="fit confidence coefficients on this suite")
    parser.add_argument("--nezha", default=None, help="also score the Nezha TrainTicket worlds (service only)")
    parser.add_argument("--transport", default="inprocess", choices=["inprocess", "direct"])
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--large", type=int, default=0, help="also score N worlds of 20/30 services, 240 min")
    parser.add_argument("--dump-misses", action="store_true", help="print every top-3 miss's hypotheses")
    parser.add_argument("--keep", default=None, help="generate into (or reuse worlds already in) this folder")
    parser.add_argument("--only", default=None, help="score only worlds whose name contains this text")
    parser.add_argument("--no-logs", action="store_true", help="score every world with its logs left out")
    parser.add_argument("--no-topology", action="store_true", help="score every world with its topology.yaml left out")
    parser.add_argument("--thin-traces", type=float, default=1.0,
                        help="keep this share of request-level samples and of traces' log lines")
    parser.add_argument("--hard", action="store_true", help="generate the suite in the generator's hard mode")
    parser.add_argument("--field", action="store_true",
                        help="generate the suite in the generator's field mode (issue #15's metrics-first shapes)")
    parser.add_argument("--variant-dir", default="/tmp/pm-variants", help="where the variants are written")
    args = parser.parse_args()
    variant_root = Path(args.variant_dir)

    def variant(worlds: list[Path], suite_name: str) -> list[Path]:
        return derive_all(worlds, variant_root / suite_name, no_logs=args.no_logs, thin=args.thin_traces,
                          no_topology=args.no_topology)

    scored: dict[str, list[dict]] = {}

    dump = args.dump_misses
    with tempfile.TemporaryDirectory(prefix="pm-rca-") as tmp:
        started = time.perf_counter()
        folder = Path(args.keep) if args.keep else Path(tmp)
        worlds = suite(folder, args.count, args.seed, args.hard, args.field) if args.count > 0 else []
        if args.only:
            worlds = [w for w in worlds if args.only in w.name]
        mode = ("-hard" if args.hard else "") + ("-field" if args.field else "")
        worlds = variant(worlds, f"own{args.seed}{mode}-{folder.name}")
        print(f"generated {len(worlds)} worlds (seed {args.seed}{', hard' if args.hard else ''}"
              f"{', field' if args.field else ''}"
              f"{', no logs' if args.no_logs else ''}{', no topology' if args.no_topology else ''}"
              f"{f', traces x{args.thin_traces:g}' if args.thin_traces < 1 else ''})"
              f" in {time.perf_counter() - started:.1f} s")
        rows = run_suite(worlds, args.transport, quiet=args.quiet, dump=dump)
        summarise(f"generated suite seed {args.seed}", rows)
        scored["generated"] = rows
        by_family: dict[str, list[bool]] = {}
        for r in rows:
            by_family.setdefault(r["world"].split("-", 2)[-1], []).append(r["hit1"])
        print("top-1 by family:", {k: f"{sum(v)}/{len(v)}" for k, v in sorted(by_family.items())})
        if args.field:
            print_field_patterns(worlds, rows)
        if args.large:
            started = time.perf_counter()
            big = variant(large_worlds(folder / f"large-{args.seed}", args.large, args.seed),
                          f"large{args.seed}-{folder.name}")
            print(f"\ngenerated {len(big)} large worlds in {time.perf_counter() - started:.1f} s")
            scored["large"] = run_suite(big, args.transport, quiet=args.quiet, dump=dump)
            summarise(f"large worlds (20/30 services, 240 min) seed {args.seed}", scored["large"])
    shared = [Path(p) for p in sorted(glob.glob("/work/shared/worlds/*")) if (Path(p) / "truth.yaml").exists()]
    shared = variant(shared, "examples")
    scored["examples"] = run_suite(shared, args.transport, quiet=args.quiet, dump=dump)
    summarise("shared example worlds", scored["examples"])
    if args.nezha:
        nezha = [Path(p) for p in sorted(glob.glob(str(Path(args.nezha) / "tt-*")))]
        if args.only:
            nezha = [w for w in nezha if args.only in w.name]
        nezha = variant(nezha, "nezha")
        scored["nezha"] = run_suite(nezha, args.transport, service_only=True, quiet=args.quiet, dump=dump)
        summarise("nezha-tt (service only)", scored["nezha"], service_only=True)
        # Develop on the odd-numbered worlds, check on the even-numbered ones (held out).
        for half, parity in (("odd, development half", 1), ("even, held-out half", 0)):
            part = [r for r in scored["nezha"] if int(r["world"].split("-")[-1]) % 2 == parity]
            summarise(f"nezha-tt {half} (service only)", part, service_only=True)
    if args.nezha:
        # Calibration protocol: fit on the suite plus the odd-numbered Nezha worlds (tt-001, tt-003, ...);
        # the even-numbered ones are never fitted on, so report them apart.
        fit_half = [r for r in scored["nezha"] if int(r["world"].split("-")[-1]) % 2 == 1]
        held_out = [r for r in scored["nezha"] if int(r["world"].split("-")[-1]) % 2 == 0]
        print_reliability("nezha-tt odd worlds (calibration half)", fit_half)
        print_reliability("nezha-tt even worlds (held out from calibration)", held_out)
    if args.calibrate:
        fitting = scored["generated"] + (fit_half if args.nezha else [])
        print(f"\nfitted coefficients on {len(fitting)} worlds (suite seed {args.seed}"
              f"{' + odd nezha-tt' if args.nezha else ''}):", fit(fitting))
    print_reliability(f"everything scored ({', '.join(scored)})", [r for rows in scored.values() for r in rows])


if __name__ == "__main__":
    main()
