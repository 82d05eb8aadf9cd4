"""`pm investigate --world W --json` of two source trees, alternating in one session: wall and CPU per run.

Each round runs the bare parse of the world (as bench/scale.py does) and, for each tree (the order
flipped every round), a fresh PM_HOME and then the same one again. Prints min / median of each and the
ratios of the minimums to the parse's, and whether every run named the same root cause. CPU counts the
CLI and the helper processes it waited for (the knowledge base's, store/knowledge_proc.py); "own" is the
CLI's process alone, the critical path when a second core is free for the helper.

Usage: .venv/bin/python bench/cli_ab.py WORLD ROUNDS BASE_TREE BRANCH_TREE
(a tree is a checkout or a ``git archive`` export; it goes first on PYTHONPATH)
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PM = "import sys; from bot.cli import main; sys.exit(main())"
# The same, reporting the CPU of the CLI's own process (without helper processes it starts and waits for)
# on the pipe PM_OWN_FD names, just before it ends: `pm investigate` ends with os._exit, so the report
# rides on that call.
PM_OWN = ("import os, resource, sys\n"
          "def _own(code, _exit=os._exit):\n"
          "    r = resource.getrusage(resource.RUSAGE_SELF)\n"
          "    os.write(int(os.environ['PM_OWN_FD']), f'{r.ru_utime + r.ru_stime}'.encode())\n"
          "    _exit(code)\n"
          "os._exit = _own\n"
          "from bot.cli import main; sys.exit(main())")
PARSE = r"""
import json, sys
from pathlib import Path
for f in sorted(Path(sys.argv[1]).glob("*.jsonl")):
    with f.open("rb") as fh:
        for line in fh:
            if line.strip():
                json.loads(line)
"""


def timed(cmd: list[str], env: dict[str, str], cwd: str | None = None) -> tuple[float, float, str]:
    """(wall s, CPU s of the child and the helpers it waited for, stdout); exits when the child fails."""
    wall, cpu, out, _ = timed_own(cmd, env, cwd)
    return wall, cpu, out


def timed_own(cmd: list[str], env: dict[str, str], cwd: str | None = None) -> tuple[float, float, str, float | None]:
    """As :func:`timed`, plus the CPU of the child's own process when it reports it (PM_OWN)."""
    read_end, write_end = os.pipe()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env={**env, "PM_OWN_FD": str(write_end)}, cwd=cwd,
                         check=False, pass_fds=(write_end,))
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as fh:
        said = fh.read().decode().strip()
    if out.returncode != 0:
        sys.exit(out.stderr[-2000:])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, out.stdout, float(said) if said else None


def fig(values: list[float]) -> str:
    return f"min {min(values):.2f} med {statistics.median(values):.2f}"


def main() -> None:
    world, rounds, trees = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    runs: dict[tuple[str, str], dict[str, list[float]]] = {
        (t, k): {"wall": [], "cpu": [], "own": []} for t in trees for k in ("first", "again")}
    parse: dict[str, list[float]] = {"wall": [], "cpu": []}
    causes: set[str] = set()
    tmp = tempfile.mkdtemp(prefix="pm-cliab-")
    drop = ("DATABASE_URL", "REDIS_URL", "RABBITMQ_URL", "S3_BUCKET", "CHROMA_HOST", "PM_SOURCES")
    base_env = {k: v for k, v in os.environ.items() if k not in drop}
    for r in range(rounds):
        wall, cpu, _ = timed([sys.executable, "-c", PARSE, world], base_env)
        parse["wall"].append(wall)
        parse["cpu"].append(cpu)
        for tree in trees if r % 2 == 0 else trees[::-1]:
            home = Path(tmp) / f"{Path(tree).name}-{r}"
            home.mkdir()
            env = {**base_env, "PM_HOME": str(home), "PYTHONPATH": tree}
            for key in ("first", "again"):
                wall, cpu, out, own = timed_own([sys.executable, "-c", PM_OWN, "investigate", "--world", world,
                                                 "--json"], env, cwd=str(home))
                runs[(tree, key)]["wall"].append(wall)
                runs[(tree, key)]["cpu"].append(cpu)
                if own is not None:
                    runs[(tree, key)]["own"].append(own)
                causes.add(json.dumps(json.loads(out).get("root_cause"), sort_keys=True))
    print(f"bare parse: wall {fig(parse['wall'])}, CPU {fig(parse['cpu'])}")
    for (tree, key), v in runs.items():
        own = f", CPU of the CLI's own process {fig(v['own'])}" if v["own"] else ""
        print(f"{tree} {key}: wall {fig(v['wall'])}, CPU {fig(v['cpu'])}{own}; ratio to parse (min/min): "
              f"wall {min(v['wall']) / min(parse['wall']):.2f}x CPU {min(v['cpu']) / min(parse['cpu']):.2f}x")
    print("same root cause in every run:", len(causes) == 1)
    print("load average", os.getloadavg())


if __name__ == "__main__":
    main()
