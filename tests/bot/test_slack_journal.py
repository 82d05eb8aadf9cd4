"""The group-commit journal on real SQLite and PostgreSQL: new vs repeat, within and across batches."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import select, text

from bot.slack.journal import InboundJournal
from store.db import make_engine, make_session_factory, upgrade
from store.models import InboundDelivery


@pytest.fixture(params=["sqlite", "pg"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    # PostgreSQL takes another path (INSERT … ON CONFLICT DO NOTHING RETURNING): both must agree
    return f"sqlite:///{tmp_path / 'pm.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")


def test_a_burst_is_recorded_once_per_key_and_repeats_are_told_apart(url: str) -> None:
    upgrade(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)

    @contextmanager
    def session() -> Iterator[object]:
        s = factory()
        try:
            yield s
            s.commit()
        finally:
            s.close()

    pg = engine.dialect.name == "postgresql"
    # as the bot runs it: on PostgreSQL the writer's own autocommit connection, one statement a batch
    journal = InboundJournal(session, max_batch=1000 if pg else 200, engine=engine if pg else None).start()
    try:
        keys = [f"cmd:t{i % 40}" for i in range(120)]  # every key three times, concurrently
        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(lambda k: journal.record(k, {"k": k, "text": 'a "quoted" \\ ünï'}), keys))
        assert sum(results) == 40
        assert journal.record("cmd:t0", {}) is False
        journal.mark("cmd:t1")
        assert journal.record("cmd:new", {}) is True  # the mark is held back behind this insert
        journal.stop()  # stopping writes the held-back marks
        with session() as s:
            rows = dict(s.execute(select(InboundDelivery.delivery_key, InboundDelivery.status)).all())
    finally:
        journal.stop()
        engine.dispose()
    assert len(rows) == 41 and rows["cmd:t1"] == "processed" and rows["cmd:t2"] == "accepted"
    with session() as s:
        payload = s.scalar(select(InboundDelivery.payload).where(InboundDelivery.delivery_key == "cmd:t3"))
    assert payload == {"k": "cmd:t3", "text": 'a "quoted" \\ ünï'}


def test_the_postgresql_writer_reconnects_after_its_connection_is_killed(pg_url: str) -> None:
    """The writer keeps one connection; when the server has closed it, the batch is recorded on a
    new one instead of failing (what the pool's pre-ping does for pooled sessions)."""
    upgrade(pg_url)
    engine = make_engine(pg_url)
    factory = make_session_factory(engine)

    @contextmanager
    def session() -> Iterator[object]:
        with factory() as s:
            yield s
            s.commit()

    journal = InboundJournal(session, max_batch=1000, engine=engine).start()
    try:
        assert journal.record("cmd:a", {}) is True
        with engine.connect() as admin:
            killed = admin.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalars().all()
            admin.commit()
        assert any(killed)
        assert journal.record("cmd:b", {}) is True  # recorded on a new connection
        assert journal.record("cmd:a", {}) is False
    finally:
        journal.stop()
        engine.dispose()
