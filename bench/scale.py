"""Time and peak memory of a whole offline investigation of a large world, through the MCP gateway.

Generates a world of 20 services, 1 h, 200,000 log lines, then runs
engine.run_all in a child process through the gateway's in-process MCP
transport, and prints wall time (world load included and excluded) and the
child's peak RSS (getrusage ru_maxrss). Targets: < 3 s and < 1 GB on 2 cores.

Usage: .venv/bin/python bench/scale.py [--lines 200000] [--services 20] [--minutes 60]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[2])
from agents import engine
from agents.gateway import open_gateway
from agents.gateway_config import default_sandbox_config
started = time.perf_counter()
gateway = open_gateway(default_sandbox_config(transport="inprocess"),
                       variables={"world": sys.argv[1], "python": sys.executable})
with gateway:
    gateway.call("world.describe")  # connects and loads the world
    loaded = time.perf_counter()
    report = engine.run_all(gateway, None, None)
done = time.perf_counter()
peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"total_s": done - started, "engine_s": done - loaded, "load_s": loaded - started,
                  "peak_mb": peak_kb / 1024, "top": report["hypotheses"][0]["service"] if report["hypotheses"] else None,
                  "change": report["hypotheses"][0]["change_id"] if report["hypotheses"] else None}))
"""


def main() -> None:
    """Generate the world, run the child, print figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--services", type=int, default=20)
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--family", default="deploy")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from sandbox.generator import generate_world

    with tempfile.TemporaryDirectory(prefix="pm-scale-") as tmp:
        started = time.perf_counter()
        world = generate_world(Path(tmp) / "scale", family=args.family, seed=7, services=args.services,
                               duration_min=args.minutes, log_lines=args.lines)
        lines = sum(1 for _ in (world / "logs.jsonl").open())
        print(f"generated {lines} log lines, {args.services} services, {args.minutes} min "
              f"in {time.perf_counter() - started:.1f} s")
        truth = (world / "truth.yaml").read_text().split("notes")[0].strip().replace("\n", " ")
        out = subprocess.run([sys.executable, "-c", _CHILD, str(world), str(ROOT)], capture_output=True,
                             text=True, timeout=600, check=False)
        if out.returncode != 0:
            sys.exit(f"error: the investigation failed:\n{out.stderr[-2000:]}")
        fig = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"whole investigation {fig['total_s']:.2f} s (world load {fig['load_s']:.2f} s, "
              f"engine {fig['engine_s']:.2f} s); peak RSS {fig['peak_mb']:.0f} MB")
        print(f"answer ({fig['top']}, {fig['change']}); {truth}")
        print(f"target < 3 s: {'met' if fig['total_s'] < 3 else 'NOT met'}; "
              f"< 1 GB: {'met' if fig['peak_mb'] < 1024 else 'NOT met'}")


if __name__ == "__main__":
    main()
