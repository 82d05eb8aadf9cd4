"""Metrics add up across worker processes (prometheus-client's multiprocess mode).

Real parts: PostgreSQL, Redis, two `python -m pipeline.worker` processes sharing one
PROMETHEUS_MULTIPROC_DIR and one PM_METRICS_PORT (the first binds it), the sandbox world example-2.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from commands import investigate
from commands.requests import InvestigationRequest, Origin
from pipeline.runtime import build_runtime
from store.config import Settings
from store.db import upgrade
from tests.paths import SHARED

WORLD = SHARED / "worlds" / "example-2"
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _samples(text: str, name: str) -> list:
    return [s for fam in text_string_to_metric_families(text) for s in fam.samples if s.name == name]


def test_two_worker_processes_report_one_sum(pg_url, redis_url, redis_namespace, tmp_path):
    upgrade(pg_url)
    prom_dir = tmp_path / "prom"
    prom_dir.mkdir()
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PM_", "DATABASE_URL", "REDIS_URL", "RABBITMQ"))}
    env.update({"DATABASE_URL": pg_url, "REDIS_URL": redis_url, "PM_HOME": str(tmp_path / "pm"),
                "PM_REDIS_NAMESPACE": redis_namespace, "PM_WORKER_THREADS": "1", "PM_WORLD": str(WORLD),
                "PROMETHEUS_MULTIPROC_DIR": str(prom_dir), "PM_METRICS_PORT": str(port)})
    log = tmp_path / "workers.log"
    procs = [subprocess.Popen([sys.executable, "-m", "pipeline.worker"], cwd=ROOT, env=env, start_new_session=True,
                              stdout=log.open("ab"), stderr=subprocess.STDOUT) for _ in range(2)]
    rt = build_runtime(Settings(DATABASE_URL=pg_url, REDIS_URL=redis_url, PM_HOME=str(tmp_path / "pm")),
                       namespace=redis_namespace)
    try:
        ids = [investigate.start(runtime=rt, request=InvestigationRequest(
            trigger={"text": f"pricing errors {i}"}, origin=Origin(kind="api"), domain="payments")).investigation_id
            for i in range(4)]
        for inv_id in ids:
            assert rt.wait(inv_id, 180)["status"] == "COMPLETE", log.read_text()[-3000:]
        deadline = time.monotonic() + 30
        while True:  # the last job's metrics are written right after its status is committed
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
            finished = _samples(text, "pm_investigation_finished_total")
            if sum(s.value for s in finished) >= 4 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        rt.close()
    assert sum(s.value for s in finished) == 4
    assert all(s.labels["trigger"] == "api" and s.labels["domain"] == "payments" for s in finished if s.value)
    started = _samples(text, "pm_investigation_total")
    assert sum(s.value for s in started) == 4
    pids = {p.name.rsplit("_", 1)[-1] for p in prom_dir.glob("counter_*.db")}
    assert len(pids) == 2, pids  # both processes wrote their own samples; the port served their sum
    assert _samples(text, "pm_mcp_call_duration_seconds_count")
    assert all(proc.returncode == 0 for proc in procs)
