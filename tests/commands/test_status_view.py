"""The admin API's status view read with one narrow query: runs, tokens per model, and no report needed."""

from __future__ import annotations

import pytest

from commands import api as api_cmd
from pipeline.runtime import build_runtime
from store import agent_runs
from store.config import load_settings
from store.db import upgrade
from store.models import Investigation


def _record_runs(s, inv_id: str, *, tool_calls=None, also_done: tuple[str, int, int] | None = None) -> None:
    """logs-agent done (100 in, 20 out, haiku), optionally another haiku agent done, the verifier (sonnet) and the
    model-less evidence engine still running."""
    done = [("logs-agent", 100, 20)] + ([also_done] if also_done else [])
    for agent, tokens_in, tokens_out in done:
        run = agent_runs.start(session=s, investigation_id=inv_id, agent=agent, phase="EVIDENCE", model="claude-haiku")
        agent_runs.finish(session=s, run_id=run.id, tokens_in=tokens_in, tokens_out=tokens_out,
                          tool_calls=tool_calls if agent == "logs-agent" else None)
    agent_runs.start(session=s, investigation_id=inv_id, agent="verifier", phase="VERIFICATION", model="claude-sonnet")
    agent_runs.start(session=s, investigation_id=inv_id, agent="evidence-engine", phase="EVIDENCE")


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_status_view_sums_tokens_per_model_and_splits_running_agents(tmp_path, db, request):
    url = request.getfixturevalue("sqlite_url" if db == "sqlite" else "pg_url")
    upgrade(url)
    runtime = build_runtime(load_settings(PM_HOME=str(tmp_path), DATABASE_URL=url))
    try:
        inv_id = api_cmd.submit(runtime=runtime, body={"text": "checkout 503s"}, subject="t")["investigation_id"]
        with runtime.session() as s:
            _record_runs(s, inv_id, tool_calls=[{"x": "y" * 1000}], also_done=("metrics-agent", 7, 3))
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


def _populated(runtime) -> str:
    """An investigation with finished, running and model-less agent runs, a finish time and a report."""
    from datetime import timedelta

    inv_id = api_cmd.submit(runtime=runtime, body={"text": "checkout 503s", "ticket_id": None},
                            subject="t")["investigation_id"]
    with runtime.session() as s:
        _record_runs(s, inv_id)
        inv = s.get(Investigation, inv_id)
        inv.status, inv.phase, inv.round, inv.verdict, inv.confidence = "COMPLETED", "REPORT", 2, "LIKELY", 87
        inv.started_at = inv.created_at + timedelta(seconds=1.5)
        inv.finished_at = inv.created_at + timedelta(seconds=42.25)
        inv.tokens_in, inv.tokens_out, inv.cost_usd, inv.error = 107, 23, 0.0123, None
        inv.report = {"verdict": "LIKELY", "blob": "z" * 1000}
    return inv_id


def test_status_read_on_the_event_loop_answers_what_the_engine_answers(tmp_path, pg_url):
    """PostgreSQL status reads on the event loop (store.async_reads) give the synchronous view, value for
    value (times in UTC, the trigger's JSON, tokens per model), and the same 404 for an unknown id."""
    import asyncio

    from store.async_reads import AsyncReader

    upgrade(pg_url)
    runtime = build_runtime(load_settings(PM_HOME=str(tmp_path), DATABASE_URL=pg_url))
    try:
        inv_id = _populated(runtime)
        fresh = api_cmd.submit(runtime=runtime, body={"text": "no runs yet"}, subject="t")["investigation_id"]
        sync = [api_cmd.status_view(runtime=runtime, investigation_id=i) for i in (inv_id, fresh)]

        async def read() -> list[dict]:
            reader = AsyncReader(pg_url, 2)
            await reader.open()
            try:
                views = [await api_cmd.status_view_async(runtime=runtime, reader=reader, investigation_id=i)
                         for i in (inv_id, fresh)]
                with pytest.raises(api_cmd.Missing):
                    await api_cmd.status_view_async(runtime=runtime, reader=reader, investigation_id="inv-nope")
                return views
            finally:
                await reader.close()

        on_loop = asyncio.run(read())
    finally:
        runtime.close()
    assert on_loop[0] == sync[0]
    assert on_loop[0]["elapsed_seconds"] == 40.75 and on_loop[0]["finished_at"].endswith("Z")
    assert on_loop[0]["token_usage"]["by_model"] == {"claude-haiku": 120, "claude-sonnet": 0, "none": 0}
    # an unfinished one's elapsed time runs on: equal but for it
    assert {**on_loop[1], "elapsed_seconds": 0} == {**sync[1], "elapsed_seconds": 0}


def test_the_app_reads_status_on_its_event_loop_and_opens_its_connections_at_start(tmp_path, pg_url, monkeypatch):
    """The app opens its status-read connections when it starts (the first reads under load must not each
    wait for a new PostgreSQL backend) and GET /api/v1/investigations/{id} runs no statement through the
    synchronous engines (no worker thread); a DELETE's status reads go the same way; a dropped connection
    is replaced and the GET answered."""
    import psycopg
    from sqlalchemy import event
    from starlette.testclient import TestClient

    from bot.http.api_routes import READ_THREADS
    from bot.http.app import create_app
    from bot.http.settings import load_http_settings

    upgrade(pg_url)
    monkeypatch.setenv("API_KEYS", "k:operator")
    settings = load_settings(PM_HOME=str(tmp_path), DATABASE_URL=pg_url)
    runtime = build_runtime(settings)
    dbname = pg_url.rsplit("/", 1)[1]
    try:
        inv_id = _populated(runtime)
        queued = api_cmd.submit(runtime=runtime, body={"text": "to cancel"}, subject="t")["investigation_id"]
        want = api_cmd.status_view(runtime=runtime, investigation_id=inv_id)
        app = create_app(settings, runtime, load_http_settings())
        with TestClient(app) as client:
            assert app.state.api.reader.idle == READ_THREADS
            with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres") as admin:
                opened = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                                       (dbname,)).fetchone()[0]
            assert opened >= READ_THREADS
            sync_statements: list[str] = []
            for engine in {runtime.engine, runtime.read_engine}:
                event.listen(engine, "before_cursor_execute",
                             lambda conn, cursor, statement, *rest: sync_statements.append(statement))
            got = client.get(f"/api/v1/investigations/{inv_id}", headers={"x-api-key": "k"})
            assert client.get("/api/v1/investigations/inv-nope", headers={"x-api-key": "k"}).status_code == 404
            assert not [s for s in sync_statements if "FROM investigations" in s]
            with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> "
                              "pg_backend_pid()", (dbname,))
            again = client.get(f"/api/v1/investigations/{inv_id}", headers={"x-api-key": "k"})
            cancelled = client.delete(f"/api/v1/investigations/{queued}", headers={"x-api-key": "k"})
        assert app.state.api.reader is None  # closed when the app stopped
    finally:
        runtime.close()
    assert got.status_code == 200 and got.json() == want
    assert again.status_code == 200 and again.json() == want
    assert cancelled.status_code == 202 and cancelled.json()["status"] in ("QUEUED", "CANCELLED")
