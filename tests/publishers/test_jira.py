"""The Jira publisher against the stand-in Jira REST server, through the real `jira` client."""

from __future__ import annotations

import pytest

from publishers.jira import REPORT_MARKER, JiraPublisher, JiraPublishError, RetryLater, connect, render_report
from tests.fakes.jira_server import FakeJira

REPORT = {
    "verdict": "CONFIRMED",
    "confidence": 82,
    "root_cause": {"summary": "Deploy chg-0042 broke {pricing}", "service": "pricing", "change_id": "chg-0042",
                   "category": "deploy"},
    "hypotheses": [
        {"rank": 1, "statement": "The pricing deploy raised 5xx", "service": "pricing", "confidence": 82,
         "evidence": [{"source": "logs", "ref": "pricing ERROR", "summary": "NPE x 1,204 after 15:02"}],
         "counter_evidence": [{"source": "metrics", "ref": "cpu", "summary": "CPU flat"}]},
    ],
    "fix_plan": {"steps": [{"action": "rollback", "target": "pricing", "priority": "immediate",
                            "description": "roll back chg-0042"}]},
    "timeline": [{"ts": "2026-10-02T15:02:00Z", "kind": "change", "ref": "chg-0042", "summary": "deploy"}],
}


@pytest.fixture()
def jira():
    fake = FakeJira().start()
    fake.add_issue("SCHED-45895", "Bookings fail")
    yield fake
    fake.stop()


def _publisher(fake: FakeJira, sleeps: list[float] | None = None, attempts: int = 3) -> JiraPublisher:
    client = connect(fake.url, fake.user, fake.token)
    record = sleeps.append if sleeps is not None else (lambda s: None)
    return JiraPublisher(client, slack_workspace_url="https://acme.slack.com", attempts=attempts, sleep=record)


def _inv(inv_id="inv-2026-10-02-152000-sched45895"):
    return {"id": inv_id, "mode": "balanced", "priority": "P1", "trigger": {"ticket": "SCHED-45895"},
            "origin": {"kind": "jira", "jira_key": "SCHED-45895", "channel": "C0BOOK", "thread_ts": "1759418400.000100"}}


def test_start_comment_links_the_slack_thread(jira):
    ref = _publisher(jira).deliver({"kind": "created", "payload": {}}, _inv(), None)
    (comment,) = jira.comments["SCHED-45895"]
    assert ref["start_comment_id"] == comment["id"] and ref["issue"] == "SCHED-45895"
    assert "https://acme.slack.com/archives/C0BOOK/p1759418400000100" in comment["body"]
    assert "inv-2026-10-02-152000-sched45895" in comment["body"]
    # A redelivered `created` event with the ref already stored posts nothing new.
    _publisher(jira).deliver({"kind": "created"}, _inv(), {"external_ref": ref})
    assert len(jira.comments["SCHED-45895"]) == 1


def test_report_is_edited_in_place_on_redelivery_and_rerun(jira):
    pub = _publisher(jira)
    ref = pub.deliver({"kind": "report", "payload": {"report": REPORT}}, _inv(), None)
    assert len(jira.comments["SCHED-45895"]) == 1
    body = jira.comments["SCHED-45895"][0]["body"]
    assert body.startswith("{panel:title=Production Master — CONFIRMED (82/100)")
    assert "\\{pricing\\}" in body and "||Priority||Action||Target||Description||" in body
    assert "|immediate|rollback|pricing|roll back chg\\-0042| |" in body and REPORT_MARKER in body

    # Redelivery of the same investigation: the Publication row holds the comment id.
    changed = {**REPORT, "verdict": "LIKELY", "confidence": 60}
    ref2 = pub.deliver({"kind": "report", "payload": {"report": changed}}, _inv(), {"external_ref": ref})
    assert ref2["report_comment_id"] == ref["report_comment_id"]
    assert ("PUT", f"/rest/api/2/issue/SCHED-45895/comment/{ref['report_comment_id']}") in jira.requests

    # A re-run is a new investigation with no Publication row yet: the marker finds the old comment.
    ref3 = pub.deliver({"kind": "report", "payload": {"report": REPORT}}, _inv("inv-2026-10-03-090000-sched45895"), None)
    assert ref3["report_comment_id"] == ref["report_comment_id"]
    (only,) = jira.comments["SCHED-45895"]
    assert "CONFIRMED" in only["body"] and "inv-2026-10-03-090000-sched45895" in only["body"]


def test_429_is_retried_after_retry_after(jira):
    sleeps: list[float] = []
    jira.fail_next(429, retry_after=2)
    ref = _publisher(jira, sleeps).deliver({"kind": "created"}, _inv(), None)
    assert sleeps == [2.0]
    assert ref["start_comment_id"] and len(jira.comments["SCHED-45895"]) == 1


def test_5xx_every_time_hands_over_to_the_outbox(jira):
    sleeps: list[float] = []
    jira.fail_next(503, count=3)
    with pytest.raises(RetryLater) as info:
        _publisher(jira, sleeps).deliver({"kind": "created"}, _inv(), None)
    assert sleeps == [1.0, 2.0] and info.value.retry_after_s == 4.0
    assert jira.comments["SCHED-45895"] == []


def test_long_retry_after_is_not_slept_inline(jira):
    jira.fail_next(429, retry_after=120)
    with pytest.raises(RetryLater) as info:
        _publisher(jira, []).deliver({"kind": "created"}, _inv(), None)
    assert info.value.retry_after_s == 120.0


def test_bad_credentials_and_unknown_ticket_are_not_retried(jira):
    bad = JiraPublisher(connect(jira.url, jira.user, "wrong"), sleep=lambda s: pytest.fail("must not retry"))
    with pytest.raises(JiraPublishError, match="HTTP 401"):
        bad.deliver({"kind": "created"}, _inv(), None)
    inv = {**_inv(), "origin": {"kind": "jira", "jira_key": "NOPE-1"}}
    with pytest.raises(JiraPublishError, match="HTTP 404"):
        _publisher(jira).deliver({"kind": "created"}, inv, None)


def test_investigations_without_a_ticket_publish_nothing(jira):
    inv = {"id": "inv-x", "trigger": {"alert": "pd-1"}, "origin": {"kind": "webhook"}}
    assert _publisher(jira).deliver({"kind": "report", "payload": {"report": REPORT}}, inv, None) == {}
    assert jira.requests == []


def test_render_report_without_hypotheses_or_steps():
    body = render_report({"verdict": "INCONCLUSIVE"}, "inv-1")
    assert "_No hypothesis survived verification._" in body and "_No fix proposed._" in body


def test_report_links_the_report_page_when_given():
    from publishers.jira import render_report

    report = {"verdict": "LIKELY", "confidence": 70, "root_cause": {"summary": "x"}}
    body = render_report(report, "inv-1", None, "https://pm.example.org/investigations/inv-1?token=a.b.c")
    assert "[report page|https://pm.example.org/investigations/inv-1?token=a.b.c]" in body
    assert "report page" not in render_report(report, "inv-1")
    assert "report page" not in render_report(report, "inv-1", None, "https://x/]evil|")  # no markup breakout


def test_a_ticket_jira_does_not_know_is_given_up_at_once_not_retried(jira, tmp_path, sqlite_url):
    """Issue #12: a Jira 404 was retried as if transient (outbox backoff for hours, then a dead letter)."""
    from pipeline import publishing
    from pipeline.runtime import build_runtime
    from publishers.errors import Permanent
    from store import investigations as invs
    from store import outbox
    from store.config import Settings
    from store.db import upgrade

    inv = {**_inv(), "origin": {"kind": "jira", "jira_key": "NOPE-1"}}
    with pytest.raises(Permanent, match="HTTP 404"):
        _publisher(jira).deliver({"kind": "created"}, inv, None)
    upgrade(sqlite_url)
    rt = build_runtime(Settings(DATABASE_URL=sqlite_url, PM_HOME=str(tmp_path / "pm")), tools_factory=lambda inv: None)
    try:
        with rt.session() as s:
            inv_id = invs.create(session=s, trigger={"ticket": "NOPE-1"}, origin={"kind": "jira", "jira_key": "NOPE-1"}).id
            s.commit()
        before = len(jira.requests)
        counts = publishing.drain(rt, "jira", _publisher(jira, attempts=3))
        assert counts == {"done": 1, "retry": 0, "failed": 0, "wait_ms": 0}
        assert len(jira.requests) - before == 1  # one POST of the comment, answered 404, not tried again
        with rt.session() as s:
            assert outbox.pending_count(session=s, sink="jira") == 0
            pub = outbox.get_publication(session=s, investigation_id=inv_id, sink="jira", target="NOPE-1")
            assert "HTTP 404" in pub.external_ref["skipped"]
    finally:
        rt.close()
