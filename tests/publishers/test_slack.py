"""The Slack publisher against the stand-in Slack: blocks, edit in place, crash safety, 429s."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pipeline.publishing import RetryLater
from publishers.chart import ChartError, render_timeline
from publishers.slack import SlackPublisher, make_web_client, phase_states, status_blocks
from tests.fakes.slack_server import FakeSlack

INV = {"id": "inv-2026-10-02-161800-pay-1", "origin": {"kind": "slack", "channel": "C1", "user": "U1"},
       "trigger": {"ticket": "PAY-1"}, "mode": "fast", "status": "RUNNING", "phase": "CHANGES",
       "created_at": "2026-10-02T16:18:00Z", "started_at": "2026-10-02T16:18:00Z", "finished_at": None,
       "tokens_in": 1200, "tokens_out": 300, "cost_usd": 0.04}
REPORT = {"verdict": "CONFIRMED", "confidence": 91,
          "root_cause": {"summary": "deploy chg-1 broke pricing", "service": "pricing", "change_id": "chg-1"},
          "hypotheses": [{"rank": 1, "statement": "chg-1", "evidence": [
              {"source": "logs", "ref": "https://grafana.example/x", "summary": "NPE spike"}]}],
          "fix_plan": {"steps": [{"action": "rollback", "target": "pricing", "priority": "immediate"}]},
          "chart": {"series": [{"name": "error rate", "unit": "errors/min",
                                "points": [["2026-10-02T16:10:00Z", 1], ["2026-10-02T16:20:00Z", 40]]}],
                    "markers": [{"ts": "2026-10-02T16:17:00Z", "label": "chg-1", "kind": "deploy"}]}}


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as f:
        yield f


def _publisher(fake: FakeSlack) -> SlackPublisher:
    return SlackPublisher(make_web_client(token="xoxb-t", base_url=fake.api_url))


def test_checklist_marks_done_running_pending_and_shows_cost() -> None:
    states = [s for *_, s in phase_states(INV)]
    assert states[:3] == ["done", "done", "done"] and states[3] == "running" and set(states[4:]) == {"pending"}
    text, blocks = status_blocks(INV)
    assert "RUNNING (3/9 phases)" in text and "1,500 tokens · $0.04" in str(blocks)


def test_status_is_edited_in_place_and_the_report_posts_once_with_chart(fake: FakeSlack) -> None:
    pub = _publisher(fake)
    ref = pub.deliver({"id": 1, "seq": 1, "kind": "created", "payload": {}, "attempts": 1}, INV, None)
    ref |= pub.deliver({"id": 2, "seq": 2, "kind": "phase_started", "payload": {}, "attempts": 1}, INV,
                       {"external_ref": ref})
    done = {**INV, "status": "COMPLETE", "phase": "COMPLETE", "report": REPORT}
    ref |= pub.deliver({"id": 3, "seq": 3, "kind": "report", "payload": {"report": REPORT}, "attempts": 1}, done,
                       {"external_ref": ref})
    thread = fake.thread("C1", ref["parent_ts"])
    assert [m["ts"] for m in thread][:2] == [ref["parent_ts"], ref["status_ts"]]
    # the phase event showed what the status already showed: no edit; the final state: one edit
    assert thread[1]["edits"] == 1 and "COMPLETE" in thread[1]["text"]
    assert "<https://grafana.example/x|logs>" in str(thread[2]["blocks"])
    assert fake.uploads[ref["chart_file"]]["data"].startswith(b"\x89PNG")


def test_a_redelivery_after_a_crash_reuses_what_was_posted(fake: FakeSlack) -> None:
    pub = _publisher(fake)
    # The worker posted, then died before the Publication row was saved: no ref is known.
    first = pub.deliver({"id": 1, "seq": 1, "kind": "created", "payload": {}, "attempts": 1}, INV, None)
    again = pub.deliver({"id": 1, "seq": 1, "kind": "created", "payload": {}, "attempts": 2}, INV, None)
    ids = ("channel", "parent_ts", "thread_ts", "status_ts")
    assert {k: again[k] for k in ids} == {k: first[k] for k in ids}
    assert len(fake.bot_messages("C1")) == 2  # one parent, one status
    ms = {"id": 4, "seq": 4, "kind": "milestone", "payload": {"text": "top hypothesis: chg-1"}, "attempts": 1}
    pub.deliver(ms, INV, {"external_ref": first})
    pub.deliver({**ms, "attempts": 2}, INV, {"external_ref": first})
    assert [m["text"] for m in fake.bot_messages("C1")].count("top hypothesis: chg-1") == 1


def test_a_429_becomes_retry_later_with_slacks_retry_after(fake: FakeSlack) -> None:
    fake.rate_limit("chat.postMessage", 1, retry_after=7)
    with pytest.raises(RetryLater) as caught:
        _publisher(fake).deliver({"id": 1, "seq": 1, "kind": "created", "payload": {}, "attempts": 1}, INV, None)
    assert caught.value.retry_after_s == 7.0 and fake.bot_messages() == []


def test_events_for_other_sinks_only_are_skipped(fake: FakeSlack) -> None:
    ev = {"id": 9, "seq": 9, "kind": "report", "payload": {"report": REPORT, "only_sinks": ["jira"]}}
    assert _publisher(fake).deliver(ev, INV, None) == {} and fake.calls == []


def test_chart_needs_points_and_iso_times() -> None:
    assert render_timeline(REPORT["chart"]).startswith(b"\x89PNG")
    with pytest.raises(ChartError, match="no chart series"):
        render_timeline({"series": [{"name": "x", "points": []}]})
    with pytest.raises(ChartError, match="not ISO-8601"):
        render_timeline({"series": [{"name": "x", "points": [["noon", 1]]}]})


def test_status_edits_are_coalesced_never_identical_and_the_final_state_is_sent(fake: FakeSlack) -> None:
    """Issue #12: 17-21 chat.update calls in ~2 s per investigation, 11 of 26 byte-identical."""
    now = [1000.0]
    pub = SlackPublisher(make_web_client(token="xoxb-t", base_url=fake.api_url), clock=lambda: now[0])
    phases = ["INITIALIZING", "CONTEXT_GATHERING", "EVIDENCE", "CHANGES", "CORRELATION"]
    ref = pub.deliver({"id": 1, "seq": 1, "kind": "created", "payload": {}, "attempts": 1},
                      {**INV, "status": "QUEUED", "phase": "QUEUED"}, None)
    waited = []
    for seq, phase in enumerate(phases, 2):
        now[0] += 0.3  # phases 0.3 s apart
        inv = {**INV, "phase": phase}
        for kind in ("phase_started", "phase_started"):  # the same state twice: the second changes nothing
            try:
                ref |= pub.deliver({"id": seq, "seq": seq, "kind": kind, "payload": {}, "attempts": 1}, inv,
                                   {"external_ref": ref})
            except RetryLater as wait:
                waited.append(wait.retry_after_s)
    status = fake.thread("C1", ref["parent_ts"])[1]
    assert fake.count_calls("chat.update") == 0 and waited, "all within 2 s of the post: they wait"
    assert all(0 < w <= 2.0 for w in waited)
    now[0] += 2.0  # the wait is over: the waiting event shows the state as it is now
    ref |= pub.deliver({"id": 9, "seq": 9, "kind": "phase_started", "payload": {}, "attempts": 1},
                       {**INV, "phase": "CORRELATION"}, {"external_ref": ref})
    assert fake.count_calls("chat.update") == 1 and "RUNNING (4/9 phases)" in status["text"]
    ref |= pub.deliver({"id": 10, "seq": 10, "kind": "phase_finished", "payload": {}, "attempts": 1},
                       {**INV, "phase": "CORRELATION"}, {"external_ref": ref})
    assert fake.count_calls("chat.update") == 1, "nothing new to show: no identical edit"
    now[0] += 0.1  # the end comes 0.1 s later: the final state is sent anyway
    done = {**INV, "status": "COMPLETE", "phase": "COMPLETE", "report": REPORT}
    ref |= pub.deliver({"id": 11, "seq": 11, "kind": "report", "payload": {"report": REPORT}, "attempts": 1}, done,
                       {"external_ref": ref})
    assert fake.count_calls("chat.update") == 2 and "COMPLETE" in status["text"]
    now[0] += 30  # a follow-up answer later: the status is unchanged, no edit
    ref |= pub.deliver({"id": 12, "seq": 12, "kind": "milestone", "payload": {"text": "an answer", "followup": True},
                        "attempts": 1}, done, {"external_ref": ref})
    assert fake.count_calls("chat.update") == 2
