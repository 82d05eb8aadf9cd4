"""Time and peak memory of a whole offline investigation of a large world: engine and CLI.

Generates a world of 20 services, 1 h, 200,000 log lines, then measures, each in a fresh child
process and ``--repeat`` times (the machine is shared and noisy: the figures are the fastest run
and the median, and the ratios compare runs of one invocation):

- the bare parse: a child that ``json.loads`` every line of the world's ``*.jsonl`` files;
- the in-process engine: ``engine.run_all`` through the gateway's in-process MCP transport (wall
  time with and without the world load, the child's peak RSS via getrusage ru_maxrss);
- the CLI as a user runs it: ``pm investigate --world W --json`` (the console script's entry,
  ``bot.cli:main``) in an empty directory, first on a fresh PM_HOME (migrations included) and then
  on the same one again, from process start to exit, wall and CPU (user + sys of the child);
- ``pm --help``.

Targets (issue #13, item 9): the CLI end to end <= 3x the bare parse; ``pm --help`` < 0.3 s; the
engine < 3 s and < 1 GB on 2 cores.

Usage: .venv/bin/python bench/scale.py [--lines 200000] [--services 20] [--minutes 60] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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


_PARSE = r"""
import json, sys
from pathlib import Path
n = 0
for f in sorted(Path(sys.argv[1]).glob("*.jsonl")):
    with f.open("rb") as fh:
        for line in fh:
            if line.strip():
                json.loads(line)
                n += 1
print(n)
"""

# Exactly what the `pm` console script does (pyproject: pm = "bot.cli:main").
_PM = "import sys; from bot.cli import main; sys.exit(main())"


def _timed(cmd: list[str], *, cwd: str | None = None, env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Run ``cmd`` to its end; (wall s, CPU s of the child: user + sys, stdout). Exits on failure."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False, cwd=cwd, env=env)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        sys.exit(f"error: {' '.join(cmd[:4])} ... failed ({out.returncode}):\n{out.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, out.stdout


def _fig(values: list[float]) -> str:
    return f"{min(values):.2f} s (median {statistics.median(values):.2f})"


def main() -> None:
    """Generate the world, run the children, print figures and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--services", type=int, default=20)
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--family", default="deploy")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement (fastest and median shown)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from sandbox.generator import generate_world

    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for var in ("DATABASE_URL", "REDIS_URL", "RABBITMQ_URL", "S3_BUCKET", "CHROMA_HOST", "PM_SOURCES"):
        env.pop(var, None)  # the embedded defaults, as a new user has them
    with tempfile.TemporaryDirectory(prefix="pm-scale-") as tmp:
        started = time.perf_counter()
        world = generate_world(Path(tmp) / "scale", family=args.family, seed=7, services=args.services,
                               duration_min=args.minutes, log_lines=args.lines)
        lines = sum(1 for _ in (world / "logs.jsonl").open())
        print(f"generated {lines} log lines, {args.services} services, {args.minutes} min "
              f"in {time.perf_counter() - started:.1f} s")
        truth = (world / "truth.yaml").read_text().split("notes")[0].strip().replace("\n", " ")

        runs: dict[str, dict[str, list[float]]] = {k: {"wall": [], "cpu": []}
                                                   for k in ("parse", "engine", "cli_first", "cli", "help")}
        engine: list[dict[str, Any]] = []
        cli_answer: dict[str, Any] = {}
        for i in range(args.repeat):
            for key, cmd in (("parse", [sys.executable, "-c", _PARSE, str(world)]),
                             ("help", [sys.executable, "-c", _PM, "--help"])):
                wall, cpu, _ = _timed(cmd, env=env)
                runs[key]["wall"].append(wall)
                runs[key]["cpu"].append(cpu)
            wall, cpu, out = _timed([sys.executable, "-c", _CHILD, str(world), str(ROOT)], env=env)
            runs["engine"]["wall"].append(wall)
            runs["engine"]["cpu"].append(cpu)
            engine.append(json.loads(out.strip().splitlines()[-1]))
            home = Path(tmp) / f"home-{i}"
            home.mkdir()
            for key in ("cli_first", "cli"):  # a fresh PM_HOME (migrations), then the same one again
                wall, cpu, out = _timed([sys.executable, "-c", _PM, "investigate", "--world", str(world), "--json"],
                                        cwd=str(home), env={**env, "PM_HOME": str(home)})
                runs[key]["wall"].append(wall)
                runs[key]["cpu"].append(cpu)
                cli_answer = json.loads(out)

        fig = min(engine, key=lambda f: f["total_s"])
        print(f"bare JSON parse of the world (child process, end to end): {_fig(runs['parse']['wall'])}, "
              f"CPU {_fig(runs['parse']['cpu'])}")
        print(f"in-process engine: whole investigation {fig['total_s']:.2f} s (world load {fig['load_s']:.2f} s, "
              f"engine {fig['engine_s']:.2f} s); child process end to end {_fig(runs['engine']['wall'])}; "
              f"peak RSS {fig['peak_mb']:.0f} MB")
        for key, label in (("cli_first", "pm investigate, fresh PM_HOME"), ("cli", "pm investigate, again")):
            print(f"{label}: {_fig(runs[key]['wall'])}, CPU {_fig(runs[key]['cpu'])}")
        print(f"pm --help: {_fig(runs['help']['wall'])}, CPU {_fig(runs['help']['cpu'])}")
        root = cli_answer.get("root_cause") or {}
        print(f"engine answer ({fig['top']}, {fig['change']}); CLI answer ({root.get('service')}, "
              f"{root.get('change_id')}); {truth}")
        parse_wall, parse_cpu = min(runs["parse"]["wall"]), min(runs["parse"]["cpu"])
        for key in ("cli_first", "cli"):
            ratio_wall = min(runs[key]["wall"]) / parse_wall
            ratio_cpu = min(runs[key]["cpu"]) / parse_cpu
            print(f"ratio {key} / bare parse: wall {ratio_wall:.2f}x, CPU {ratio_cpu:.2f}x "
                  f"(target <= 3x: {'met' if ratio_wall <= 3 else 'NOT met'})")
        print(f"target pm --help < 0.3 s: {'met' if min(runs['help']['wall']) < 0.3 else 'NOT met'}; "
              f"engine < 3 s: {'met' if fig['total_s'] < 3 else 'NOT met'}; "
              f"< 1 GB: {'met' if fig['peak_mb'] < 1024 else 'NOT met'}")


if __name__ == "__main__":
    main()
