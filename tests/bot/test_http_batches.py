"""The batched store and process steps the listener's database thread uses
(``commands.webhooks.accept_many`` / ``process_many``) on a real SQLite database and the
in-process broker."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from commands.webhooks import WebhookRules, accept_many, delivery_key, process_many
from pipeline.runtime import build_runtime
from store.config import load_settings
from store.db import upgrade
from store.models import Delivery, InboundDelivery, Investigation
from tests.commands.test_webhooks import alert_group_payload


@pytest.fixture
def runtime(tmp_path, sqlite_url):
    upgrade(sqlite_url)
    rt = build_runtime(load_settings(PM_HOME=str(tmp_path), DATABASE_URL=sqlite_url))
    yield rt
    rt.close()


def _delivery(fp: str, second: int = 0) -> tuple[str, str, dict]:
    # one service per fingerprint: alike alerts on one service would join one investigation (commands/similar.py)
    payload = alert_group_payload(fingerprints=(fp,), starts_at=f"2026-10-02T15:20:{second:02d}Z",
                                  service=f"booking-{fp}")
    return "alertmanager", delivery_key("alertmanager", payload, {}, b""), payload


def test_accept_many_tells_new_deliveries_from_replays_in_and_across_batches(runtime):
    a, b, c = _delivery("a"), _delivery("b"), _delivery("c")
    with runtime.session() as s:
        first = accept_many(session=s, deliveries=[a, b, a])
    assert [x.duplicate for x in first] == [False, False, True]
    assert first[0].delivery_id == first[2].delivery_id != first[1].delivery_id
    with runtime.session() as s:
        s.execute(select(InboundDelivery).where(InboundDelivery.id == first[1].delivery_id)).scalar_one().status = "processed"
    with runtime.session() as s:
        second = accept_many(session=s, deliveries=[b, c])
    assert (second[0].delivery_id, second[0].duplicate, second[0].status) == (first[1].delivery_id, True, "processed")
    assert (second[1].duplicate, second[1].status) == (False, "accepted")
    with runtime.session() as s:
        assert len(s.execute(select(InboundDelivery.id)).all()) == 3


def test_process_many_opens_one_investigation_per_fingerprint_and_attaches_the_rest(runtime):
    deliveries = [_delivery(fp, second) for second in range(3) for fp in ("x", "y")]
    with runtime.session() as s:
        ids = [a.delivery_id for a in accept_many(session=s, deliveries=deliveries)]
    rules = WebhookRules(default_channel="C0STORM")  # a Slack origin: every event owes the slack sink a delivery
    assert process_many(runtime=runtime, delivery_ids=ids[:3], rules=rules) == dict.fromkeys(ids[:3], "processed")
    assert process_many(runtime=runtime, delivery_ids=ids, rules=rules) == dict.fromkeys(ids, "processed")
    with runtime.session() as s:
        invs = {i.fingerprint: i.id for i in s.execute(select(Investigation)).scalars()}
        rows = {r.id: r.investigation_id for r in s.execute(select(InboundDelivery)).scalars()}
    assert set(invs) == {"alertmanager:x", "alertmanager:y"}
    assert rows == {i: invs[f"alertmanager:{'xy'[n % 2]}"] for n, i in enumerate(ids)}
    for inv_id in invs.values():
        assert [e["kind"] for e in runtime.events(inv_id)] == ["created", "attached", "attached"]
        assert [e["seq"] for e in runtime.events(inv_id)] == [1, 2, 3]
    with runtime.session() as s:
        sinks = s.execute(select(Delivery.sink, func.count()).group_by(Delivery.sink)).all()
    assert sinks == [("slack", 6)]
    assert runtime.broker.queues["investigations.fast"].qsize() == 2


def test_process_many_parks_a_stored_row_that_no_longer_normalises(runtime):
    with runtime.session() as s:
        row = InboundDelivery(source="alertmanager", delivery_key="old", payload={"alerts": "nope"}, status="accepted")
        s.add(row)
        s.flush()
        bad = row.id
    assert process_many(runtime=runtime, delivery_ids=[bad], rules=WebhookRules()) == {bad: "failed"}
