"""PM_API_STATUS_CACHE_MS: a status answer reused within its bound only, auth on every request, off by default."""

from __future__ import annotations

import pytest
from sqlalchemy import event
from starlette.testclient import TestClient

from bot.http.app import create_app
from bot.http.settings import load_http_settings
from bot.http.status_cache import StatusCache
from commands import api as api_cmd
from pipeline.runtime import build_runtime
from store.config import load_settings
from store.db import upgrade
from store.models import Investigation


def test_a_view_is_reused_for_less_than_its_bound_and_its_elapsed_time_runs_on():
    now = [100.0]
    cache = StatusCache(0.5, max_entries=2, clock=lambda: now[0])
    running = {"status": "RUNNING", "finished_at": None, "elapsed_seconds": 3.0}
    done = {"status": "COMPLETED", "finished_at": "2026-12-06T10:00:00Z", "elapsed_seconds": 9.0}
    cache.put("a", running, sent=100.0)
    cache.put("b", done, sent=100.0)
    now[0] = 100.2
    assert cache.get("a") == {**running, "elapsed_seconds": 3.2}
    assert cache.get("b") == done
    now[0] = 100.5  # the bound is counted from when the read was sent
    assert cache.get("a") is None and cache.get("b") is None
    assert (cache.hits, cache.misses) == (2, 2)
    cache.put("a", running, sent=100.5)
    cache.forget("a")
    assert cache.get("a") is None
    for key in ("x", "y", "z"):  # the least recently stored go first
        cache.put(key, done, sent=100.5)
    assert cache.get("x") is None and cache.get("z") == done
    with pytest.raises(ValueError):
        StatusCache(0)


@pytest.fixture
def app_with(tmp_path, sqlite_url, monkeypatch):
    apps = []

    def make(cache_ms: int | None):
        upgrade(sqlite_url)
        monkeypatch.setenv("API_KEYS", "k:operator,v:viewer")
        settings = load_settings(PM_HOME=str(tmp_path), DATABASE_URL=sqlite_url)
        runtime = build_runtime(settings)
        overrides = {} if cache_ms is None else {"PM_API_STATUS_CACHE_MS": str(cache_ms)}
        app = create_app(settings, runtime, load_http_settings(**overrides))
        statements: list[str] = []
        event.listen(runtime.engine, "before_cursor_execute",
                     lambda conn, cursor, statement, *rest: statements.append(statement))
        apps.append(runtime)
        return app, runtime, statements

    yield make
    for runtime in apps:
        runtime.close()


def _status_reads(statements: list[str]) -> int:
    return sum(1 for s in statements if "FROM investigations LEFT OUTER JOIN agent_runs" in s)


def test_the_status_cache_is_off_by_default(app_with):
    app, runtime, statements = app_with(None)
    assert app.state.api.status_cache is None
    inv_id = api_cmd.submit(runtime=runtime, body={"text": "x"}, subject="t")["investigation_id"]
    with TestClient(app) as client:
        for _ in range(3):
            assert client.get(f"/api/v1/investigations/{inv_id}", headers={"x-api-key": "v"}).status_code == 200
    assert _status_reads(statements) == 3


def test_cached_status_within_the_bound_then_read_again_and_auth_on_every_request(app_with):
    app, runtime, statements = app_with(1000)
    cache = app.state.api.status_cache
    now = [50.0]
    cache.clock = lambda: now[0]
    inv_id = api_cmd.submit(runtime=runtime, body={"text": "x"}, subject="t")["investigation_id"]
    url = f"/api/v1/investigations/{inv_id}"
    with TestClient(app) as client:
        first = client.get(url, headers={"x-api-key": "v"}).json()
        with runtime.session() as s:
            s.get(Investigation, inv_id).phase = "EVIDENCE"
        now[0] = 50.9
        within = client.get(url, headers={"x-api-key": "v"}).json()
        refused = client.get(url, headers={"x-api-key": "nope"})
        anonymous = client.get(url)
        now[0] = 51.0
        after = client.get(url, headers={"x-api-key": "v"}).json()
        missing = [client.get("/api/v1/investigations/inv-nope", headers={"x-api-key": "v"}).status_code
                   for _ in range(2)]
    assert first["phase_name"] == within["phase_name"] == "QUEUED"
    assert within["elapsed_seconds"] >= first["elapsed_seconds"] + 0.9 - 0.001
    assert refused.status_code == 401 and anonymous.status_code == 401
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert after["phase_name"] == "EVIDENCE"
    assert missing == [404, 404]
    assert _status_reads(statements) == 4  # first, after, and each 404


def test_a_delete_in_this_process_is_seen_by_the_next_get_at_once(app_with):
    app, runtime, statements = app_with(60_000)
    inv_id = api_cmd.submit(runtime=runtime, body={"text": "x"}, subject="t")["investigation_id"]
    url = f"/api/v1/investigations/{inv_id}"
    with TestClient(app) as client:
        before = client.get(url, headers={"x-api-key": "k"}).json()
        cancelled = client.delete(url, headers={"x-api-key": "k"})
        after = client.get(url, headers={"x-api-key": "k"}).json()
    want = api_cmd.status_view(runtime=runtime, investigation_id=inv_id)
    assert before["phase_name"] == "QUEUED" and cancelled.status_code == 202
    assert after["status"] == want["status"] == cancelled.json()["status"] == "CANCELLED"
    assert after["phase_name"] == want["phase_name"] != "QUEUED"

