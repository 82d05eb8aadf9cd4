"""A worker process killed with SIGKILL in the middle of a phase; a new worker finishes the job.

Real parts only: PostgreSQL, Redis, `python -m pipeline.worker` subprocesses, the evidence
engine, the MCP gateway and the sandbox MCP servers on a shared example world.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline import phases as P
from pipeline.runtime import build_runtime
from store import agent_runs, checkpoints
from store import investigations as invs
from store.config import Settings
from store.db import upgrade
from tests.paths import SHARED

WORLD = (SHARED / "worlds/example-1")
ROOT = Path(__file__).resolve().parents[2]


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    # a session of its own, so the test can kill the worker together with its MCP server children
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.worker"], cwd=ROOT, env=env, start_new_session=True,
        stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )


def _kill_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def _wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.mark.integration
@pytest.mark.skipif(not WORLD.is_dir(), reason="the shared example world is not present")
def test_sigkill_mid_phase_resumes_without_redoing_finished_phases(pg_url, redis_url, redis_namespace, tmp_path):
    upgrade(pg_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PM_", "DATABASE_URL", "REDIS_URL", "RABBITMQ"))}
    env.update({
        "DATABASE_URL": pg_url, "REDIS_URL": redis_url, "PM_HOME": str(tmp_path / "pm"),
        "PM_REDIS_NAMESPACE": redis_namespace, "PM_REDIS_HEARTBEAT_MS": "1500", "PM_LEASE_S": "3",
        "PM_WORKER_THREADS": "1",
    })
    settings = Settings(DATABASE_URL=pg_url, REDIS_URL=redis_url, PM_HOME=str(tmp_path / "pm"))
    rt = build_runtime(settings, namespace=redis_namespace)  # the real engine plan, for enqueueing
    log = tmp_path / "worker.log"
    first = _start_worker({**env, "PM_TEST_PHASE_DELAY_S": f"{P.EVIDENCE}=60"}, log)
    second = None
    try:
        with rt.session() as s:
            inv_id = invs.create(session=s, trigger={"alert": "pd-8240"}, origin={"kind": "cli"},
                                 sources={"world": str(WORLD)}).id
        rt.enqueue(inv_id)

        def evidence_running() -> bool:
            with rt.session() as s:
                cp = checkpoints.get(session=s, investigation_id=inv_id, phase=P.EVIDENCE)
                return cp is not None and cp.status == "running"

        _wait_for(evidence_running, 30, "EVIDENCE to start in the first worker")
        _kill_group(first, signal.SIGKILL)
        assert first.returncode == -signal.SIGKILL

        second = _start_worker(env, log)
        final = rt.wait(inv_id, 40)
        assert final["status"] == "COMPLETE", log.read_text()[-3000:]
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                _kill_group(proc, signal.SIGTERM)
        rt.close()
    assert second.returncode == 0  # SIGTERM stops the worker cleanly
    with rt.session() as s:
        attempts = {(c.phase, c.round): c.attempts for c in checkpoints.list_for(session=s, investigation_id=inv_id)}
        runs = [r.phase for r in agent_runs.list_for(session=s, investigation_id=inv_id)]
    assert attempts[(P.INITIALIZING, 0)] == attempts[(P.CONTEXT_GATHERING, 0)] == 1
    assert runs.count(P.INITIALIZING) == runs.count(P.CONTEXT_GATHERING) == 1
    assert attempts.pop((P.EVIDENCE, 0)) == 2  # the killed attempt and the finishing one
    assert set(attempts.values()) == {1}
    assert final["verdict"] in ("CONFIRMED", "LIKELY", "INCONCLUSIVE") and final["report"]
