"""The group-commit journal on real SQLite and PostgreSQL: new vs repeat, within and across batches."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import select

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

    journal = InboundJournal(session).start()
    try:
        keys = [f"cmd:t{i % 40}" for i in range(120)]  # every key three times, concurrently
        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(lambda k: journal.record(k, {"k": k}), keys))
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
