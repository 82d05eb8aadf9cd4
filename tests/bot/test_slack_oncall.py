"""Issue #12, what an on-call engineer meets in Slack: each test is one finding, through the real Bolt
app (socket mode) against the stand-in Slack, with the real pipeline on the sandbox world example-2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.slack.runner import SlackBot
from store.models import InboundDelivery, Investigation
from tests.bot.test_slack_e2e import WORLD, _count, _parent, _wait_outbox_drained, running_bot
from tests.fakes.slack_server import FakeSlack

pytestmark = pytest.mark.integration


@pytest.fixture
def slack(tmp_path: Path) -> Any:
    with running_bot(tmp_path) as pair:
        yield pair


def _bot_texts(fake: FakeSlack, channel: str, thread_ts: str) -> list[str]:
    return [m["text"] for m in fake.thread(channel, thread_ts) if m.get("user") == "UBOT"]


def _finished(bot: SlackBot, timeout: float, fake: FakeSlack) -> Investigation:
    def done() -> Investigation | None:
        with bot.runtime.session() as s:
            inv = s.scalars(select(Investigation)).first()
            return inv if inv is not None and inv.status in ("COMPLETE", "FAILED", "CANCELLED") else None
    return fake.wait_for(done, timeout, "the investigation to finish")


# -- 4. inputs checked before investigating ------------------------------------------------------------


def _warning_to(fake: FakeSlack, user: str, words: str) -> dict[str, Any]:
    return fake.wait_for(lambda: next((e for e in fake.ephemerals if e.get("user") == user and words in e.get("text", "")),
                                      None), 30, f"an ephemeral to {user} saying {words!r}")


def _nothing_recorded(fake: FakeSlack, bot: SlackBot, channel: str) -> None:
    """No investigation row, no thread, and the delivery is not left for a replay."""
    assert bot.starts.join(10)
    assert _count(bot, Investigation) == 0
    assert fake.bot_messages(channel) == []


    def statuses() -> set[str]:
        with bot.runtime.session() as s:
            return set(s.scalars(select(InboundDelivery.status)))
    # the journal writes marks in its next batch, without waiting: give it that moment
    fake.wait_for(lambda: statuses() == {"refused"} or None, 10, "the delivery marked refused")


def test_an_unknown_ticket_is_said_to_the_requester_and_nothing_is_recorded(
        slack: tuple[FakeSlack, SlackBot]) -> None:
    fake, bot = slack
    fake.wait_ack(fake.slash_command("NOPE-99999", user="U1", channel="C1"))
    said = _warning_to(fake, "U1", "no ticket NOPE-99999")
    assert said["channel"] == "C1"
    assert said["text"].startswith(":warning: no ticket") and "failed" not in said["text"]
    assert "check the key" in said["text"] and "nothing was investigated" in said["text"]
    assert '"NOPE-99999"' in said["text"]  # how to go on with the words as free text
    assert "`pm " not in said["text"]
    _nothing_recorded(fake, bot, "C1")


def test_an_unknown_alert_is_said_too(slack: tuple[FakeSlack, SlackBot]) -> None:
    fake, bot = slack
    fake.wait_ack(fake.slash_command("pd-0000", user="U1", channel="C1"))
    _warning_to(fake, "U1", "no alert pd-0000")
    _nothing_recorded(fake, bot, "C1")


def test_a_known_ticket_still_starts(slack: tuple[FakeSlack, SlackBot]) -> None:
    fake, bot = slack
    fake.wait_ack(fake.slash_command("PAY-44706 fast", user="U1", channel="C1"))  # in the world
    _parent(fake, "C1")
    assert _count(bot, Investigation) == 1
    assert not fake.ephemerals


def test_a_ticket_jira_answers_404_for_is_said_and_asked_once(tmp_path: Path) -> None:
    from tests.fakes.jira_server import FakeJira

    jira = FakeJira().start()  # knows no issue: every GET answers 404
    try:
        with running_bot(tmp_path, jira_url=jira.url, JIRA_USER=jira.user, JIRA_API_TOKEN=jira.token) as (fake, bot):
            fake.wait_ack(fake.slash_command("PAY-44706 fast", user="U1", channel="C1"))  # in the world, not in Jira
            said = _warning_to(fake, "U1", "no ticket PAY-44706 in Jira")
            assert "check the key" in said["text"]
            _nothing_recorded(fake, bot, "C1")
        assert jira.requests.count(("GET", "/rest/api/2/issue/PAY-44706")) == 1  # permanent: not retried
    finally:
        jira.stop()


def test_the_key_in_quotes_is_investigated_as_free_text(slack: tuple[FakeSlack, SlackBot]) -> None:
    fake, bot = slack
    fake.wait_ack(fake.slash_command('"NOPE-99999" pricing errors fast', user="U1", channel="C1"))
    fake.wait_for(lambda: _count(bot, Investigation) == 1, 10, "the investigation row")
    with bot.runtime.session() as s:
        assert s.scalars(select(Investigation)).one().trigger == {"text": '"NOPE-99999" pricing errors'}
    fake.wait_ack(fake.slash_command('"NOPE-99999" fast', user="U2", channel="C2"))
    fake.wait_for(lambda: _count(bot, Investigation) == 2, 10, "the second investigation row")
    with bot.runtime.session() as s:
        triggers = [i.trigger for i in s.scalars(select(Investigation))]
    assert {"text": "NOPE-99999"} in triggers


def test_status_and_cancel_of_an_unknown_id_do_not_point_at_the_cli(slack: tuple[FakeSlack, SlackBot]) -> None:
    fake, _bot = slack
    for text in ("status inv-nope", "cancel inv-nope"):
        answer = fake.wait_ack(fake.slash_command(text, user="U1"))["text"]
        assert "no investigation 'inv-nope'" in answer and "check the id" in answer
        assert "pm " not in answer.replace("`pm_", ""), answer


# -- 7. who may act ------------------------------------------------------------------------------------


def _jira_started(bot: SlackBot, channel: str = "C9", key: str = "PAY-44706") -> str:
    """An investigation as the Jira webhook starts it (commands.webhooks.normalise_jira's request)."""
    from commands import investigate
    from commands.requests import InvestigationRequest, Origin

    return investigate.start(runtime=bot.runtime, request=InvestigationRequest(
        trigger={"ticket": key}, origin=Origin(kind="jira", jira_key=key, source="jira", channel=channel),
        mode="fast", domain="payments", fingerprint=f"jira:{key}", requested_by="jira",
        sources={"world": str(WORLD)})).investigation_id


def _click(fake: FakeSlack, action_id: str, user: str, inv_id: str, channel: str, ts: str) -> None:
    fake.wait_ack(fake.interactive({
        "type": "block_actions", "user": {"id": user}, "channel": {"id": channel},
        "message": {"ts": ts, "thread_ts": ts}, "trigger_id": f"t-{action_id}-{user}-{ts}",
        "actions": [{"action_id": action_id, "value": inv_id, "type": "button"}]}))


def _ephemeral_to(fake: FakeSlack, user: str, after: int = 0) -> dict[str, Any]:
    return fake.wait_for(lambda: next((e for e in fake.ephemerals[after:] if e.get("user") == user), None),
                         15, f"an ephemeral to {user}")


def test_a_jira_investigation_links_its_ticket_and_channel_members_may_re_run_it(tmp_path: Path) -> None:
    with running_bot(tmp_path, jira_url="https://acme.atlassian.net") as (fake, bot):
        fake.members["C9"] = ["UMEMBER"]
        inv_id = _jira_started(bot)
        parent = _parent(fake, "C9")
        assert "<https://acme.atlassian.net/browse/PAY-44706|PAY-44706>" in parent["text"]
        assert "started from Jira" in parent["text"] and "<@jira>" not in parent["text"] and "for " not in parent["text"]
        _finished(bot, 60, fake)
        _click(fake, "pm_rerun_deep", "USTRANGER", inv_id, "C9", parent["ts"])
        refusal = _ephemeral_to(fake, "USTRANGER")["text"]
        assert "members of its channel" in refusal and _count(bot, Investigation) == 1
        _click(fake, "pm_rerun_deep", "UMEMBER", inv_id, "C9", parent["ts"])
        fake.wait_for(lambda: _count(bot, Investigation) == 2, 15, "the member's re-run")


def test_the_domain_on_call_group_may_act_and_then_only_it(tmp_path: Path) -> None:
    with running_bot(tmp_path, oncall="payments=SPAYONCALL") as (fake, bot):
        fake.usergroups["SPAYONCALL"] = ["UONCALL"]
        fake.members["C9"] = ["UMEMBER", "UONCALL"]
        inv_id = _jira_started(bot)
        parent = _parent(fake, "C9")
        _finished(bot, 60, fake)
        _click(fake, "pm_rerun_deep", "UMEMBER", inv_id, "C9", parent["ts"])
        assert "the payments on-call group" in _ephemeral_to(fake, "UMEMBER")["text"]
        _click(fake, "pm_rerun_deep", "UONCALL", inv_id, "C9", parent["ts"])
        fake.wait_for(lambda: _count(bot, Investigation) == 2, 15, "the on-call member's re-run")


def test_a_cancellation_says_who(tmp_path: Path) -> None:
    with running_bot(tmp_path, worker=False) as (fake, bot):  # no worker: it stays QUEUED until cancelled
        fake.members["C9"] = ["UMEMBER"]
        inv_id = _jira_started(bot)
        parent = _parent(fake, "C9")
        answer = fake.wait_ack(fake.slash_command(f"cancel {inv_id}", user="UMEMBER", channel="C9"))["text"]
        assert "Cancelling" in answer
        said = fake.wait_for(lambda: next((t for t in _bot_texts(fake, "C9", parent["ts"]) if "Cancelled" in t),
                                          None), 15, "the cancellation in the thread")
        assert said == ":no_entry: Cancelled by <@UMEMBER>."


def test_report_buttons_are_only_those_that_can_apply(slack: tuple[FakeSlack, SlackBot]) -> None:
    fake, bot = slack

    def report_buttons(channel: str) -> list[str]:
        parent = _parent(fake, channel)
        report = fake.wait_for(lambda: next((m for m in fake.thread(channel, parent["ts"])
                                             if any(b.get("type") == "header" for b in m.get("blocks") or [])),
                                            None), 90, "the report")
        return [e["action_id"] for b in report["blocks"] if b["type"] == "actions" for e in b["elements"]]

    fake.wait_ack(fake.slash_command("pricing errors since 16:15 fast", user="U1", channel="C1"))
    assert report_buttons("C1") == ["pm_rerun_deep", "pm_feedback_up", "pm_feedback_down"]  # no ticket, finished
    fake.wait_ack(fake.slash_command("PAY-44706 fast", user="U1", channel="C2"))
    assert report_buttons("C2") == ["pm_rerun_deep", "pm_feedback_up", "pm_feedback_down", "pm_publish_jira"]
    _wait_outbox_drained(fake, bot)
    status = next(m for m in fake.thread("C2", _parent(fake, "C2")["ts"]) if m["text"].startswith("Investigation"))
    assert "COMPLETE" in status["text"] and not any(b["type"] == "actions" for b in status["blocks"])


def test_the_jira_start_comment_links_the_slack_thread(tmp_path: Path) -> None:
    from publishers.jira import JiraPublisher, connect
    from tests.fakes.jira_server import FakeJira

    jira = FakeJira().start()
    jira.add_issue("PAY-44706", "Pricing errors")
    try:
        with running_bot(tmp_path) as (fake, bot):
            bot.runtime.register_publisher("jira", JiraPublisher(connect(jira.url, jira.user, jira.token),
                                                                 slack_workspace_url="https://acme.slack.com"))
            _jira_started(bot)
            parent = _parent(fake, "C9")
            _finished(bot, 60, fake)
            link = f"https://acme.slack.com/archives/C9/p{parent['ts'].replace('.', '')}"
            start = fake.wait_for(lambda: next((c for c in jira.comments.get("PAY-44706", [])
                                                if "is investigating this ticket" in c["body"]), None),
                                  30, "the start comment")
            assert f"[Slack|{link}]" in start["body"]
    finally:
        jira.stop()
