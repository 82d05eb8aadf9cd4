"""Fencing, the reconciler and the outbox's claims and dead letters, driven directly (no broker
process) on SQLite and PostgreSQL. The fault-injection tests with real worker processes are in
tests/pipeline/test_durability.py."""

from __future__ import annotations

import collections
import threading
from datetime import timedelta

import pytest
from sqlalchemy import update

from pipeline import metrics, publishing, recovery
from pipeline import phases as P
from pipeline.machine import LEASE_LOST
from pipeline.runtime import build_runtime
from store import checkpoints, outbox
from store import investigations as invs
from store.config import Settings
from store.db import upgrade
from store.models import Delivery, Investigation, utcnow
from tests.pipeline.plans import ScriptedPlan


@pytest.fixture(params=["sqlite", "pg"])
def db_url(request):
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    upgrade(url)
    return url


def _runtime(url, tmp_path, plan=None, **kw):
    return build_runtime(Settings(DATABASE_URL=url, PM_HOME=str(tmp_path / "pm")), plan=plan or ScriptedPlan(),
                         tools_factory=lambda inv: None, **kw)


def _new(rt, **kw) -> str:
    with rt.session() as s:
        return invs.create(session=s, trigger={"ticket": "OPS-1"}, origin={"kind": "cli"}, **kw).id


def _take_over(rt, inv_id: str) -> int:
    """Another worker takes the lease over (as after this one was paused past it)."""
    with rt.session() as s:
        s.execute(update(Investigation).where(Investigation.id == inv_id)
                  .values(lease_until=utcnow() - timedelta(seconds=1)))
    with rt.session() as s:
        token = invs.acquire_lease(session=s, investigation_id=inv_id, owner="worker-y", ttl_s=300)
    assert token
    return token


def _kinds(rt, inv_id):
    return [(e["kind"], e["payload"].get("phase")) for e in rt.events(inv_id)]


@pytest.mark.integration
def test_a_write_after_a_take_over_is_refused_and_the_run_stops(db_url, tmp_path):
    holder: dict = {}
    plan = ScriptedPlan(hook={P.EVIDENCE: lambda state: holder.setdefault("token", _take_over(rt, holder["id"]))})
    rt = _runtime(db_url, tmp_path, plan)
    try:
        holder["id"] = inv_id = _new(rt)
        refused = metrics.FENCED_WRITES._value.get()
        assert rt.machine.advance(inv_id) == LEASE_LOST
        with rt.session() as s:
            inv = invs.get(session=s, investigation_id=inv_id)
            evidence = checkpoints.get(session=s, investigation_id=inv_id, phase=P.EVIDENCE)
            assert (inv.lease_owner, inv.lease_token, inv.status) == ("worker-y", holder["token"], "RUNNING")
            assert evidence.status == "running"  # the stale run's output was not written
    finally:
        rt.close()
    assert metrics.FENCED_WRITES._value.get() == refused + 1
    assert (P.CHANGES, 0) not in plan.runs  # it stopped: no later phase ran
    assert ("phase_finished", P.EVIDENCE) not in _kinds(rt, inv_id)


@pytest.mark.integration
def test_a_renewal_the_database_refuses_abandons_the_phase_at_once(db_url, tmp_path):
    seen: dict = {}

    def stall(state):
        _take_over(rt, seen["id"])
        # a long phase (a model call): the run must stop waiting for it and say so
        seen["abandoned"] = state.abandoned.wait(60)

    plan = ScriptedPlan(hook={P.EVIDENCE: stall})
    rt = _runtime(db_url, tmp_path, plan, lease_s=0.6)
    try:
        seen["id"] = inv_id = _new(rt)
        lost = metrics.LEASES_LOST._value.get()
        assert rt.machine.advance(inv_id) == LEASE_LOST
        # the run returned while the phase was still waiting: abandoned is set, the phase ends later
        deadline = threading.Event()
        while "abandoned" not in seen and not deadline.wait(0.05):
            pass
    finally:
        rt.close()
    assert seen["abandoned"] is True
    assert metrics.LEASES_LOST._value.get() == lost + 1
    assert ("phase_finished", P.EVIDENCE) not in _kinds(rt, inv_id)


@pytest.mark.integration
def test_the_reconciler_requeues_a_lost_investigation_once_per_stall(db_url, tmp_path):
    rt = _runtime(db_url, tmp_path)
    try:
        lost, live, _fresh = _new(rt), _new(rt), _new(rt)
        old = utcnow() - timedelta(seconds=120)
        with rt.session() as s:
            s.execute(update(Investigation).where(Investigation.id.in_([lost, live])).values(updated_at=old))
            s.execute(update(Investigation).where(Investigation.id == live)
                      .values(lease_owner="w", lease_until=utcnow() + timedelta(seconds=60), updated_at=old))
        assert recovery.requeue_stale(rt, stale_after_s=60) == [lost]  # not the leased one, not the fresh one
        assert recovery.requeue_stale(rt, stale_after_s=60) == []  # once: not again in the next period
        # still no progress two stale periods later (the new message was lost too): once more
        later = utcnow() + timedelta(seconds=121)
        assert lost in recovery.requeue_stale(rt, stale_after_s=60, now=later)
        with rt.session() as s:
            assert invs.get(session=s, investigation_id=lost).requeue_count == 2
            assert invs.get(session=s, investigation_id=lost).updated_at.replace(microsecond=0) == \
                old.replace(microsecond=0)  # a re-enqueue is not progress
        # a worker taking it resets the count
        with rt.session() as s:
            assert invs.acquire_lease(session=s, investigation_id=lost, owner="w2", ttl_s=1)
            assert invs.get(session=s, investigation_id=lost).requeue_count == 0
    finally:
        rt.close()


class _DownSink:
    """A sink that is down: every delivery raises a connection error."""

    def __init__(self) -> None:
        self.tries = 0

    def deliver(self, event, investigation, publication):
        self.tries += 1
        raise ConnectionError("sink unreachable")


@pytest.mark.integration
def test_a_failing_delivery_backs_off_then_is_dead_lettered_with_an_alarm_and_retried(db_url, tmp_path):
    from publishers.slack import make_slack_alarm
    from tests.fakes.slack_server import FakeSlack

    rt = _runtime(db_url, tmp_path)
    sink = _DownSink()
    slack = FakeSlack()
    slack.start()
    try:
        rt.alarm = make_slack_alarm(Settings(SLACK_BOT_TOKEN="xoxb-t", SLACK_API_URL=slack.api_url,
                                             PM_ADMIN_CHANNEL="CADMIN"))
        with rt.session() as s:
            inv_id = invs.create(session=s, trigger={"text": "x"}, origin={"kind": "slack", "channel": "C1"}).id
        waits = []
        for _ in range(8):  # a sink down for hours: tries come further and further apart, none dropped
            with rt.session() as s:
                s.execute(update(Delivery).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
            counts = publishing.drain(rt, "slack", sink)
            assert counts["failed"] == 0
            waits.append(counts["wait_ms"])
        assert waits == sorted(waits) and waits[-1] > 100_000  # 2 s … 256 s
        with rt.session() as s:
            assert outbox.pending_count(session=s, sink="slack") == 1
            # it has been failing for longer than PM_OUTBOX_DEAD_AFTER_S (6 h)
            s.execute(update(Delivery).values(next_attempt_at=utcnow() - timedelta(seconds=1),
                                              failing_since=utcnow() - timedelta(hours=7)))
        dead = metrics.OUTBOX_DEAD.labels(sink="slack")._value.get()
        assert publishing.drain(rt, "slack", sink)["failed"] == 1
        assert metrics.OUTBOX_DEAD.labels(sink="slack")._value.get() == dead + 1
        [alarm] = slack.messages["CADMIN"]  # the admin channel heard of it
        assert inv_id in alarm["text"] and "pm outbox retry" in alarm["text"]
        with rt.session() as s:
            assert outbox.pending_count(session=s, sink="slack") == 0
            [row] = outbox.dead_letters(session=s)
            assert (row["investigation_id"], row["kind"]) == (inv_id, "created")
            assert outbox.retry_dead(session=s, investigation_id=inv_id) == 1
            assert outbox.pending_count(session=s, sink="slack") == 1
    finally:
        slack.stop()
        rt.close()


class _SlowSink:
    """A sink that takes longer per delivery than the outbox claim lasts."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.sent: list[tuple[str, int]] = []
        self.lock = threading.Lock()

    def deliver(self, event, investigation, publication):
        threading.Event().wait(self.delay_s)
        with self.lock:
            self.sent.append((investigation["id"], event["seq"]))
        return {}


@pytest.mark.integration
def test_a_batch_slower_than_its_claim_is_not_taken_by_a_second_drainer(db_url, tmp_path):
    rt = _runtime(db_url, tmp_path)
    rt.outbox_claim_s = 1.5
    sink = _SlowSink(0.7)
    try:
        for i in range(4):
            with rt.session() as s:
                invs.create(session=s, trigger={"text": f"x{i}"}, origin={"kind": "slack", "channel": f"C{i}"})
        results: list[dict] = []
        first = threading.Thread(target=lambda: results.append(publishing.drain(rt, "slack", sink)))
        first.start()
        threading.Event().wait(2.0)  # past the first drainer's claim, while it still delivers (4 × 0.7 s)
        second = publishing.drain(rt, "slack", sink)
        first.join(30)
    finally:
        rt.close()
    assert second["done"] == 0  # the renewed claim kept the second drainer off
    assert sorted(sink.sent) == sorted(set(sink.sent)) and len(sink.sent) == 4


@pytest.mark.integration
def test_a_report_is_not_dropped_while_slack_stops_answering(db_url, tmp_path):
    """Before: 5 tries in ~30 s, then the report was gone for good. Now it waits Slack out."""
    from publishers.slack import SlackPublisher, make_web_client
    from tests.fakes.slack_server import FakeSlack

    rt = _runtime(db_url, tmp_path)
    try:
        with FakeSlack() as slack:
            publisher = SlackPublisher(make_web_client(token="xoxb-t", base_url=slack.api_url, timeout=1))
            with rt.session() as s:
                inv_id = invs.create(session=s, trigger={"text": "x"}, origin={"kind": "slack", "channel": "C1"}).id
                outbox.append(session=s, investigation_id=inv_id, kind="report",
                              payload={"report": {"verdict": "LIKELY", "confidence": 60}})
            slack.answering = False
            for _ in range(7):  # more tries than the old limit of 5, each timing out
                with rt.session() as s:
                    s.execute(update(Delivery).where(Delivery.status == "pending")
                              .values(next_attempt_at=utcnow() - timedelta(seconds=1)))
                assert publishing.drain(rt, "slack", publisher)["failed"] == 0
            with rt.session() as s:
                assert outbox.pending_count(session=s, sink="slack") == 2  # created and report: both kept
            slack.answering = True
            for _ in range(4):
                with rt.session() as s:
                    s.execute(update(Delivery).where(Delivery.status == "pending")
                              .values(next_attempt_at=utcnow() - timedelta(seconds=1)))
                publishing.drain_all(rt, "slack", publisher)
            with rt.session() as s:
                assert outbox.pending_count(session=s, sink="slack") == 0
            roles = collections.Counter(m["metadata"]["event_payload"]["role"] for m in slack.bot_messages("C1")
                                        if m.get("metadata"))
    finally:
        rt.close()
    assert roles["parent"] == roles["status"] == roles["report"] == 1
