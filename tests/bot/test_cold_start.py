"""Cold start of the CLI (issue #13, item 9): what `pm --help` imports, how `pm investigate` waits for
its worker, and that its fast exit loses nothing. The time figures are in bench/scale.py."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading

import pytest

from tests.bot.test_cli import ROOT, demo_world, run_pm

#: Libraries `pm --help` (and `pm investigate --help`) must not load: each costs 0.1-1 s to import.
HEAVY = ("sqlalchemy", "pydantic", "pydantic_settings", "mcp", "rich", "dramatiq", "numpy", "chromadb", "yaml",
         "alembic", "starlette", "httpx")

_PROBE = """
import json, sys
from bot.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})), file=sys.stderr)
"""


@pytest.mark.parametrize("argv", [["--help"], ["investigate", "--help"], ["schedule", "run", "--help"]])
def test_help_loads_no_heavy_library(argv):
    proc = subprocess.run([sys.executable, "-c", _PROBE, *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert "usage: pm" in proc.stdout, proc.stderr
    loaded = set(json.loads(proc.stderr.strip().splitlines()[-1]))
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_a_waiter_wakes_when_a_worker_commits_progress(tmp_path, sqlite_url):
    """Runtime.wait_progress returns on the worker's commit; nothing polls on a timer."""
    from bot.cli_investigate import _world_request
    from commands import investigate
    from pipeline.runtime import build_runtime
    from store.config import load_settings
    from store.db import upgrade

    upgrade(sqlite_url)
    settings = load_settings(PM_HOME=str(tmp_path), DATABASE_URL=sqlite_url, PM_WORKER_THREADS=1)
    runtime = build_runtime(settings)
    woke: list[int] = []
    mark = runtime.progress_mark()
    # a whole investigation could not finish inside this timeout, so only a commit can wake the waiter
    waiter = threading.Thread(target=lambda: woke.append(runtime.wait_progress(mark, 600.0)))
    waiter.start()
    worker = runtime.start_worker()
    try:
        request, _title = _world_request(argparse.Namespace(world=demo_world(), mode="balanced"))
        investigate.start(runtime=runtime, request=request)
        waiter.join(120)
        assert not waiter.is_alive(), "wait_progress did not wake on a committed progress event"
        assert woke and woke[0] > mark
    finally:
        worker.stop()
        runtime.close()
        if waiter.is_alive():  # unblock the thread so the test process can end
            runtime._progress("unblock")
            waiter.join(5)


def test_fast_exit_keeps_the_report_the_database_and_the_knowledge_base(tmp_path):
    """The console script ends with os._exit after `pm investigate`: stdout, SQLite and Chroma are complete."""
    first = run_pm(["investigate", "--world", str(demo_world()), "--json"], home=tmp_path)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    second = run_pm(["investigate", "--world", str(demo_world()), "--json"], home=tmp_path)
    assert second.returncode == 0, second.stderr
    again = json.loads(second.stdout)
    listed = json.loads(run_pm(["investigations", "list", "--json"], home=tmp_path).stdout)
    assert [r["status"] for r in listed] == ["COMPLETE", "COMPLETE"]
    # the first run's incident was written to the knowledge base before its process ended
    assert {s["investigation_id"] for s in again["similar_incidents"]} & {r["id"] for r in listed}, again
    assert report["verdict"] == again["verdict"]


def test_the_cli_worker_looks_up_from_its_queues_often(tmp_path, sqlite_url, monkeypatch):
    """`pm investigate` stops its worker right after the report: its idle threads poll at WORKER_POLL_MS,
    not the long-lived workers' 200 ms (stopping waits up to two polls)."""
    import bot.cli_investigate as cli_investigate
    from pipeline.runtime import Runtime

    seen: dict[str, int] = {}
    real = Runtime.start_worker

    def spy(self, *args, **kwargs):  # noqa: ANN001, ANN202 - records the worker the CLI starts
        handle = real(self, *args, **kwargs)
        seen["poll_ms"] = handle._worker.worker_timeout
        return handle

    monkeypatch.setattr(Runtime, "start_worker", spy)
    monkeypatch.setenv("PM_HOME", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    from bot.cli import main

    assert main(["investigate", "--world", str(demo_world()), "--json"]) == 0
    assert seen["poll_ms"] == cli_investigate.WORKER_POLL_MS < 200
