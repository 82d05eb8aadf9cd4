"""The admin API's status view read with one narrow query: runs, tokens per model, and no report needed."""

from __future__ import annotations

import pytest

from commands import api as api_cmd
from pipeline.runtime import build_runtime
from store import agent_runs
from store.config import load_settings
from store.db import upgrade
from store.models import Investigation


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_status_view_sums_tokens_per_model_and_splits_running_agents(tmp_path, db, request):
    url = request.getfixturevalue("sqlite_url" if db == "sqlite" else "pg_url")
    upgrade(url)
    runtime = build_runtime(load_settings(PM_HOME=str(tmp_path), DATABASE_URL=url))
    try:
        inv_id = api_cmd.submit(runtime=runtime, body={"text": "checkout 503s"}, subject="t")["investigation_id"]
        with runtime.session() as s:
            a = agent_runs.start(session=s, investigation_id=inv_id, agent="logs-agent", phase="EVIDENCE",
                                 model="claude-haiku")
            agent_runs.finish(session=s, run_id=a.id, tokens_in=100, tokens_out=20, tool_calls=[{"x": "y" * 1000}])
            b = agent_runs.start(session=s, investigation_id=inv_id, agent="metrics-agent", phase="EVIDENCE",
                                 model="claude-haiku")
            agent_runs.finish(session=s, run_id=b.id, tokens_in=7, tokens_out=3)
            agent_runs.start(session=s, investigation_id=inv_id, agent="verifier", phase="VERIFICATION",
                             model="claude-sonnet")
            agent_runs.start(session=s, investigation_id=inv_id, agent="evidence-engine", phase="EVIDENCE")
            inv = s.get(Investigation, inv_id)
            inv.report = {"verdict": "LIKELY", "blob": "z" * 200_000}  # never read by the status view
        view = api_cmd.status_view(runtime=runtime, investigation_id=inv_id)
        with pytest.raises(api_cmd.Missing):
            api_cmd.status_view(runtime=runtime, investigation_id="inv-nope")
    finally:
        runtime.close()
    assert view["investigation_id"] == inv_id and view["status"] == "QUEUED" and view["trigger"] == {
        "text": "checkout 503s"}
    assert view["agents_completed"] == ["logs-agent", "metrics-agent"]
    assert view["agents_running"] == ["evidence-engine", "verifier"]
    assert view["token_usage"] == {"total": 130, "input": 107, "output": 23,
                                   "by_model": {"claude-haiku": 130, "claude-sonnet": 0, "none": 0}}
    assert view["created_at"].endswith("Z") and view["elapsed_seconds"] >= 0


def test_status_read_on_postgresql_is_one_statement_and_survives_a_dropped_connection(tmp_path, pg_url):
    """On PostgreSQL the status view is one statement on an autocommit connection (no ping, no BEGIN or
    ROLLBACK round trips); a connection the server dropped is replaced and the read answered."""
    import psycopg
    from sqlalchemy import event

    upgrade(pg_url)
    runtime = build_runtime(load_settings(PM_HOME=str(tmp_path), DATABASE_URL=pg_url))
    statements: list[str] = []
    try:
        assert runtime.read_engine is not runtime.engine
        event.listen(runtime.read_engine, "before_cursor_execute",
                     lambda conn, cursor, statement, *rest: statements.append(statement))
        inv_id = api_cmd.submit(runtime=runtime, body={"text": "checkout 503s"}, subject="t")["investigation_id"]
        first = api_cmd.status_view(runtime=runtime, investigation_id=inv_id)
        assert len(statements) == 1 and "FROM investigations" in statements[0]
        with runtime.read_engine.connect() as conn:
            assert conn.connection.dbapi_connection.autocommit is True  # type: ignore[union-attr]
        dbname = pg_url.rsplit("/", 1)[1]
        with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> "
                          "pg_backend_pid()", (dbname,))
        again = api_cmd.status_view(runtime=runtime, investigation_id=inv_id)
    finally:
        runtime.close()
    assert again["investigation_id"] == first["investigation_id"] == inv_id
    assert len(statements) == 3  # the read on the dropped connection failed and was asked once more


def test_status_read_on_sqlite_uses_the_one_engine(tmp_path, sqlite_url):
    upgrade(sqlite_url)
    runtime = build_runtime(load_settings(PM_HOME=str(tmp_path), DATABASE_URL=sqlite_url))
    try:
        assert runtime.read_engine is runtime.engine
    finally:
        runtime.close()


def test_the_app_opens_its_read_connections_at_start(tmp_path, pg_url, monkeypatch):
    """The first status reads under load must not each wait for a new PostgreSQL backend."""
    from starlette.testclient import TestClient

    from bot.http.api_routes import READ_THREADS
    from bot.http.app import create_app
    from bot.http.settings import load_http_settings

    upgrade(pg_url)
    monkeypatch.setenv("API_KEYS", "k:viewer")
    settings = load_settings(PM_HOME=str(tmp_path), DATABASE_URL=pg_url)
    runtime = build_runtime(settings)
    try:
        with TestClient(create_app(settings, runtime, load_http_settings())):
            assert runtime.read_engine.pool.checkedin() == READ_THREADS
    finally:
        runtime.close()
