"""Every entry point starts on a fresh database (issue #13 item 1): `pm serve`, `pm worker` and
`pm schedule run` apply the migrations themselves, unless PM_AUTO_MIGRATE=0 says a Job does it.

Real processes in an empty directory, on SQLite and on an empty PostgreSQL database with Redis.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from sandbox.promrun import free_port
from tests.paths import ROOT


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PM_", "DATABASE_URL", "REDIS_URL", "RABBITMQ_URL", "MCP_CONFIG", "API_KEYS"))}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _stop(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.stderr.read() if proc.stderr else ""


def _serve(cwd: Path, **env: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--port", str(port)], cwd=cwd,
                            env=_env(API_KEYS="k1", **env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    return proc, f"http://127.0.0.1:{port}"


def _wait_http(url: str, proc: subprocess.Popen[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited: {_stop(proc)[-2000:]}")
        try:
            httpx.get(url + "/healthz", timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError("the server did not answer in time")


@pytest.mark.integration
def test_serve_in_an_empty_directory_migrates_and_takes_webhooks(tmp_path):
    proc, url = _serve(tmp_path)
    try:
        _wait_http(url, proc)
        assert httpx.get(url + "/healthz", timeout=5).status_code == 200
        resp = httpx.post(url + "/webhooks/change", headers={"Authorization": "Bearer k1"}, timeout=10,
                          json={"id": "c1", "ts": "2026-12-06T08:00:00Z", "kind": "config", "service": "api"})
        assert resp.status_code == 202, resp.text
    finally:
        err = _stop(proc)
    assert "no such table" not in err
    assert {"investigations", "source_events"} <= _tables(f"sqlite:///{tmp_path / '.pm' / 'pm.sqlite3'}")


@pytest.mark.integration
def test_auto_migrate_off_leaves_the_database_to_a_migration_job(tmp_path):
    done = subprocess.run([sys.executable, "-m", "bot.cli", "schedule", "run", "health-check"], cwd=tmp_path,
                          env=_env(PM_AUTO_MIGRATE="0"), capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "investigations" not in _tables(f"sqlite:///{tmp_path / '.pm' / 'pm.sqlite3'}")
    done = subprocess.run([sys.executable, "-m", "bot.cli", "schedule", "run", "health-check"], cwd=tmp_path,
                          env=_env(), capture_output=True, text=True, timeout=120)
    assert "no such table" not in done.stderr
    assert "investigations" in _tables(f"sqlite:///{tmp_path / '.pm' / 'pm.sqlite3'}")


@pytest.mark.integration
def test_worker_on_an_empty_postgresql_database_migrates_it(tmp_path, pg_url, redis_url, redis_namespace):
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "worker"], cwd=tmp_path,
                            env=_env(DATABASE_URL=pg_url, REDIS_URL=redis_url, PM_REDIS_NAMESPACE=redis_namespace),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "investigations" not in _tables(pg_url):
            assert proc.poll() is None, _stop(proc)[-2000:]
            time.sleep(0.5)
        assert {"investigations", "source_events"} <= _tables(pg_url)
    finally:
        _stop(proc)
