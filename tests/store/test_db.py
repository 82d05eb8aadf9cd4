"""Migrations on SQLite and PostgreSQL; engine settings; unreachable database errors."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from store.db import check_reachable, make_engine, upgrade
from store.errors import DatabaseUnavailable

TABLES = {
    "investigations", "agent_runs", "phase_checkpoints", "progress_events", "deliveries",
    "publications", "inbound_deliveries", "domain_configs", "source_events",
    "model_choices", "budget_approvals", "budget_notices", "budget_spend",
}


@pytest.mark.integration
@pytest.mark.parametrize("backend", ["sqlite", "pg"])
def test_upgrade_creates_every_table_and_is_idempotent(request, backend, tmp_path, monkeypatch):
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    monkeypatch.chdir(tmp_path)  # the script location must not depend on the working directory
    upgrade(url)
    upgrade(url)  # a second run finds nothing to do
    engine = make_engine(url)
    try:
        insp = sa.inspect(engine)
        assert TABLES <= set(insp.get_table_names())
        uniques = {u["name"] for u in insp.get_unique_constraints("progress_events")}
        assert "uq_event_seq" in uniques
        with engine.connect() as conn:
            heads = {r[0] for r in conn.execute(sa.text("SELECT version_num FROM alembic_version"))}
            assert heads == {"0005", "k003", "b001", "i001"}  # the main line; the knowledge, budgets and intake branches
        cols = {c["name"] for c in insp.get_columns("agent_runs")}
        assert {"cache_read_tokens", "cache_write_tokens"} <= cols
        assert {"resolution", "details"} <= {c["name"] for c in insp.get_columns("knowledge_feedback")}
    finally:
        engine.dispose()


def test_sqlite_engine_uses_wal_and_foreign_keys(sqlite_url):
    engine = make_engine(sqlite_url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar().lower() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() > 0
    finally:
        engine.dispose()


def test_unreachable_database_names_database_url():
    engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/nothing?connect_timeout=1")
    with pytest.raises(DatabaseUnavailable, match="DATABASE_URL=.*127.0.0.1:1"):
        check_reachable(engine)
    engine.dispose()


def test_unusable_url_says_what_to_use():
    with pytest.raises(DatabaseUnavailable, match="use sqlite:///path or postgresql"):
        make_engine("mysql://x@localhost/db")


@pytest.mark.parametrize("backend", ["sqlite", "pg"])
def test_concurrent_first_upgrades_do_not_collide(request, backend):
    """Processes starting together on a fresh database: one migrates, the others wait and find it done."""
    import threading

    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def migrate() -> None:
        barrier.wait()
        try:
            upgrade(url)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    engine = make_engine(url)
    try:
        assert TABLES <= set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_script_heads_match_alembic():
    """The fast path's heads, read with ast, are the ones Alembic itself finds in the scripts."""
    from alembic.script import ScriptDirectory

    from store.db import alembic_config, script_heads

    assert script_heads() == frozenset(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


@pytest.mark.parametrize("backend", ["sqlite", "pg"])
def test_upgrade_at_heads_skips_alembic_and_behind_runs_it(request, backend, monkeypatch):
    """A database stamped at the heads is left alone without running Alembic; one behind is migrated."""
    from alembic import command

    from store.db import alembic_config

    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    upgrade(url)
    runs: list[str] = []
    real = command.upgrade
    monkeypatch.setattr(command, "upgrade", lambda cfg, rev: (runs.append(rev), real(cfg, rev)))
    upgrade(url)
    assert runs == []
    command.downgrade(alembic_config(url), "k001")  # the knowledge branch one step behind
    upgrade(url)
    assert runs == ["heads"]
    engine = make_engine(url)
    try:
        assert "domain_memory" in set(sa.inspect(engine).get_table_names())
        with engine.connect() as conn:
            heads = {r[0] for r in conn.execute(sa.text("SELECT version_num FROM alembic_version"))}
        assert heads == {"0005", "k003", "b001", "i001"}
    finally:
        engine.dispose()
