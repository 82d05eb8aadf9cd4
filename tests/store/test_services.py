"""Investigation, outbox, checkpoint and agent-run services on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from store import agent_runs, checkpoints, outbox
from store import investigations as invs
from store.db import make_engine, make_session_factory, upgrade
from store.errors import NotFound
from store.models import Delivery


@pytest.fixture(params=["sqlite", "pg"])
def sessions(request):
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    upgrade(url)
    engine = make_engine(url)
    yield make_session_factory(engine)
    engine.dispose()


def _create(sessions, **kw):
    with sessions() as s, s.begin():
        inv = invs.create(session=s, trigger=kw.pop("trigger", {"ticket": "SCHED-45895"}),
                          origin=kw.pop("origin", {"kind": "cli"}), mode="balanced", domain="bookings",
                          sources={"world": "/w"}, **kw)
        return inv.id


def test_new_id_format_and_slug():
    now = datetime(2026, 2, 20, 8, 1, 2, tzinfo=UTC)
    assert invs.new_id({"ticket": "SCHED-45895"}, now) == "inv-2026-02-20-080102-sched45895"
    long = invs.new_id({"text": "Checkout is throwing 500s since this morning!!"}, now)
    assert long == "inv-2026-02-20-080102-checkout-is-throwing-500"
    assert len(long.split("-", 5)[-1]) <= 24


@pytest.mark.integration
def test_create_get_list_and_created_event(sessions):
    now = datetime(2026, 2, 20, 8, 0, 0, tzinfo=UTC)
    first = _create(sessions, now=now, fingerprint="fp-1", priority="P1")
    second = _create(sessions, now=now)  # same second, same slug → random suffix
    assert second.startswith(first + "-") and second != first
    with sessions() as s:
        inv = invs.get(session=s, investigation_id=first)
        assert (inv.status, inv.phase, inv.priority) == ("QUEUED", "QUEUED", "P1")
        assert inv.created_at.tzinfo is not None
        [event] = outbox.events(session=s, investigation_id=first)
        assert (event.seq, event.kind) == (1, "created")
        assert {i.id for i in invs.list_recent(session=s)} == {first, second}
        assert invs.find_open_by_fingerprint(session=s, fingerprint="fp-1").id == first
        assert invs.find_open_by_fingerprint(session=s, fingerprint="other") is None
        d = invs.to_dict(inv)
        assert d["created_at"] == "2026-02-20T08:00:00Z" and d["sources"] == {"world": "/w"}
        with pytest.raises(NotFound, match="no investigation 'nope'"):
            invs.get(session=s, investigation_id="nope")


def test_bad_trigger_mode_priority_say_what_to_do(sqlite_url):
    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    with make_session_factory(engine)() as s:
        with pytest.raises(ValueError, match="names no ticket, alert or text"):
            invs.create(session=s, trigger={}, origin={})
        with pytest.raises(ValueError, match="use one of fast, balanced, deep"):
            invs.create(session=s, trigger={"text": "x"}, origin={}, mode="slow")
        with pytest.raises(ValueError, match="use one of P1, P2, P3"):
            invs.create(session=s, trigger={"text": "x"}, origin={}, priority="P9")
    engine.dispose()


@pytest.mark.integration
def test_cancel_queued_is_immediate_and_terminal_is_untouched(sessions):
    inv_id = _create(sessions)
    with sessions() as s, s.begin():
        assert invs.request_cancel(session=s, investigation_id=inv_id).status == "CANCELLED"
    with sessions() as s, s.begin():
        assert invs.request_cancel(session=s, investigation_id=inv_id).status == "CANCELLED"
        kinds = [e.kind for e in outbox.events(session=s, investigation_id=inv_id)]
    assert kinds == ["created", "cancelled"]  # the second request appended nothing


@pytest.mark.integration
def test_outbox_seq_is_gapless_under_concurrent_appenders(sessions):
    inv_id = _create(sessions, origin={"kind": "slack", "channel": "C1", "jira_key": "OPS-1"})
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(10):
                with sessions() as s, s.begin():
                    outbox.append(session=s, investigation_id=inv_id, kind="milestone",
                                  payload={"text": f"{n}-{i}"})
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with sessions() as s:
        seqs = [e.seq for e in outbox.events(session=s, investigation_id=inv_id)]
        assert seqs == list(range(1, 42))
        sinks = s.scalars(select(Delivery.sink)).all()
    # origin with a channel and a jira key → one slack and one jira delivery per event
    assert sorted(set(sinks)) == ["jira", "slack"] and len(sinks) == 2 * 41


@pytest.mark.integration
def test_claim_respects_order_retry_and_done(sessions):
    inv_id = _create(sessions, origin={"kind": "slack", "channel": "C1"})
    with sessions() as s, s.begin():
        outbox.append(session=s, investigation_id=inv_id, kind="milestone", payload={"text": "a"})
        with pytest.raises(ValueError, match="event kind 'bogus' is unknown"):
            outbox.append(session=s, investigation_id=inv_id, kind="bogus")
    with sessions() as s, s.begin():
        claimed = outbox.claim_pending(session=s, sink="slack", limit=1)
    assert [c.event["seq"] for c in claimed] == [1]
    with sessions() as s, s.begin():
        # seq 2 is blocked while seq 1 waits: a thread's messages keep their order
        outbox.mark_retry(session=s, delivery_id=claimed[0].delivery_id, retry_after_s=30)
    with sessions() as s, s.begin():
        assert outbox.claim_pending(session=s, sink="slack") == []
    later = datetime.now(UTC) + timedelta(seconds=31)
    with sessions() as s, s.begin():
        again = outbox.claim_pending(session=s, sink="slack", now=later)
        # one in-flight event per investigation and sink: seq 2 waits until seq 1 is done
        assert [c.event["seq"] for c in again] == [1] and again[0].attempts == 2
        outbox.mark_done(session=s, delivery_id=again[0].delivery_id, external_ref={"ts": "1.2"})
    with sessions() as s, s.begin():
        last = outbox.claim_pending(session=s, sink="slack", now=later)
        assert [c.event["seq"] for c in last] == [2]
        outbox.mark_done(session=s, delivery_id=last[0].delivery_id)
    with sessions() as s:
        assert outbox.pending_count(session=s, sink="slack") == 0


@pytest.mark.integration
def test_publication_merges_external_refs(sessions):
    inv_id = _create(sessions)
    with sessions() as s, s.begin():
        outbox.save_publication(session=s, investigation_id=inv_id, sink="slack", target="C1",
                                external_ref={"ts": "1.1"})
    with sessions() as s, s.begin():
        outbox.save_publication(session=s, investigation_id=inv_id, sink="slack", target="C1",
                                external_ref={"report_ts": "2.2"})
    with sessions() as s:
        pub = outbox.get_publication(session=s, investigation_id=inv_id, sink="slack", target="C1")
        assert outbox.publication_to_dict(pub)["external_ref"] == {"ts": "1.1", "report_ts": "2.2"}


@pytest.mark.integration
def test_checkpoints_count_attempts_and_refuse_redo(sessions):
    inv_id = _create(sessions)
    for _ in range(2):
        with sessions() as s, s.begin():
            checkpoints.start(session=s, investigation_id=inv_id, phase="EVIDENCE")
    with sessions() as s, s.begin():
        checkpoints.finish(session=s, investigation_id=inv_id, phase="EVIDENCE", output={"n": 1})
    with sessions() as s, s.begin():
        cp = checkpoints.get(session=s, investigation_id=inv_id, phase="EVIDENCE")
        assert (cp.status, cp.attempts, cp.output) == ("done", 2, {"n": 1})
        with pytest.raises(ValueError, match="already done"):
            checkpoints.start(session=s, investigation_id=inv_id, phase="EVIDENCE")


@pytest.mark.integration
def test_agent_run_costs_add_up_on_the_investigation(sessions):
    inv_id = _create(sessions)
    with sessions() as s, s.begin():
        run = agent_runs.start(session=s, investigation_id=inv_id, agent="analyst", phase="HYPOTHESES", model="m")
        agent_runs.finish(session=s, run_id=run.id, tokens_in=100, tokens_out=20, cost_usd=0.5,
                          tool_calls=[{"capability": "logs.search", "ok": True}])
    with sessions() as s:
        inv = invs.get(session=s, investigation_id=inv_id)
        assert (inv.tokens_in, inv.tokens_out, inv.cost_usd) == (100, 20, 0.5)
        [run] = agent_runs.list_for(session=s, investigation_id=inv_id)
        assert run.tool_calls[0]["capability"] == "logs.search" and run.duration_ms >= 0


@pytest.mark.integration
def test_lease_is_exclusive_until_it_expires(sessions):
    inv_id = _create(sessions)
    with sessions() as s, s.begin():
        assert invs.acquire_lease(session=s, investigation_id=inv_id, owner="a", ttl_s=60)
    with sessions() as s, s.begin():
        assert not invs.acquire_lease(session=s, investigation_id=inv_id, owner="b", ttl_s=60)
        assert invs.acquire_lease(session=s, investigation_id=inv_id, owner="a", ttl_s=-1)  # renew, expired
    with sessions() as s, s.begin():
        assert invs.acquire_lease(session=s, investigation_id=inv_id, owner="b", ttl_s=60)


def test_a_released_delivery_is_claimed_again_as_a_redelivery(sessions):
    """A 429 gives the attempt back, but the next claim must still know an earlier try may have posted."""
    inv_id = _create(sessions, origin={"kind": "slack", "channel": "C1"})
    with sessions() as s, s.begin():
        first = outbox.claim_pending(session=s, sink="slack", limit=1)
    assert [c.redelivery for c in first] == [False]
    with sessions() as s, s.begin():
        outbox.release(session=s, delivery_id=first[0].delivery_id, retry_after_s=0.0)
    later = datetime.now(UTC) + timedelta(seconds=1)
    with sessions() as s, s.begin():
        again = outbox.claim_pending(session=s, sink="slack", now=later)
    assert again[0].delivery_id == first[0].delivery_id
    assert again[0].attempts == 1 and again[0].redelivery is True
    assert inv_id == again[0].investigation_id
