"""Two writers that pick the same investigation id at the same moment both succeed, with distinct ids."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from store import investigations as invs
from store.db import make_engine, make_session_factory, upgrade


def test_concurrent_creates_with_the_same_id_both_land(pg_url):
    upgrade(pg_url)
    engine = make_engine(pg_url)
    factory = make_session_factory(engine)
    now = datetime(2026, 2, 21, 14, 30, tzinfo=UTC)
    trigger = {"ticket": "SCHED-45895"}
    first = factory()
    a = invs.create(session=first, trigger=trigger, origin={"kind": "cli"}, now=now)  # flushed, not committed
    result: dict[str, object] = {}

    def second_writer() -> None:
        with factory() as s:
            # It cannot see the uncommitted row, so it picks the same id; its INSERT waits on the
            # first transaction and then fails on the primary key: it must retry with a suffix.
            b = invs.create(session=s, trigger=trigger, origin={"kind": "cli"}, now=now)
            s.commit()
            result["id"] = b.id

    t = threading.Thread(target=second_writer)
    t.start()
    time.sleep(0.5)
    first.commit()
    t.join(timeout=30)
    first.close()
    assert a.id == "inv-2026-02-21-143000-sched45895"
    assert result["id"] != a.id and str(result["id"]).startswith(a.id + "-")
    with factory() as s:
        assert {i.id for i in invs.list_recent(session=s, limit=10)} == {a.id, result["id"]}
    engine.dispose()
