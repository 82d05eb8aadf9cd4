"""End to end: the real Bolt app (socket mode) against the stand-in Slack, with the real pipeline.

Embedded SQLite, the in-process broker and a worker in the test process investigate the
sandbox world example-2 (a bad pricing deploy, chg-3835). Nothing of ours is mocked.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.slack.runner import SlackBot
from bot.slack.settings import SlackSettings
from store.config import load_settings
from store.models import Delivery, InboundDelivery, Investigation
from tests.fakes.slack_server import FakeSlack
from tests.paths import SHARED

WORLD = (SHARED / "worlds/example-2")
pytestmark = pytest.mark.integration


@contextmanager
def running_bot(tmp_path: Path, admins: str = "UADMIN", *, jira_url: str | None = None, oncall: str = "",
                worker: bool = True, **settings_extra: str) -> Iterator[tuple[FakeSlack, SlackBot]]:
    """The stand-in Slack plus the real bot (embedded SQLite, in-process broker, its own worker)."""
    with FakeSlack() as fake:
        extra = {"JIRA_URL": jira_url} if jira_url else {}
        extra.update(settings_extra)
        settings = load_settings(PM_HOME=str(tmp_path / "pm"), SLACK_BOT_TOKEN="xoxb-test",
                                 SLACK_APP_TOKEN="xapp-test", SLACK_API_URL=fake.api_url, PM_WORKER_THREADS=2,
                                 **extra)
        bot = SlackBot(settings, SlackSettings(PM_SLACK_ADMINS=admins, PM_SLACK_ONCALL_GROUPS=oncall),
                       sources={"world": str(WORLD)}, verify_token=False, worker=worker).start()
        try:
            fake.wait_connected()
            yield fake, bot
        finally:
            bot.stop()
            bot.runtime.close()


@pytest.fixture
def slack(tmp_path: Path) -> Iterator[tuple[FakeSlack, SlackBot]]:
    with running_bot(tmp_path) as pair:
        yield pair


def _parent(fake: FakeSlack, channel: str) -> dict[str, Any]:
    return fake.wait_for(lambda: next((m for m in fake.bot_messages(channel) if not m.get("thread_ts")), None),
                         15, "a parent message")


def _chart_in(fake: FakeSlack, channel: str, thread_ts: str) -> dict[str, Any]:
    return fake.wait_for(lambda: next((m for m in fake.thread(channel, thread_ts) if m.get("files")), None),
                         90, "the chart in the thread")


def _count(bot: SlackBot, model: Any) -> int:
    with bot.runtime.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)))


def _wait_outbox_drained(fake: FakeSlack, bot: SlackBot) -> None:
    def drained() -> bool:
        with bot.runtime.session() as s:
            return not s.scalar(select(func.count()).select_from(Delivery).where(Delivery.status != "done"))
    fake.wait_for(drained, 30, "every delivery done")


def test_slash_command_runs_in_a_thread_with_progress_report_and_chart(slack: tuple[FakeSlack, SlackBot]) -> None:
    fake, bot = slack
    ack = fake.wait_ack(fake.slash_command("PAY-44706 fast", user="U1", channel="C1"))
    assert "Starting an investigation of ticket PAY-44706" in ack["text"]
    parent = _parent(fake, "C1")
    assert "PAY-44706" in parent["text"] and "<@U1>" in parent["text"]
    chart = _chart_in(fake, "C1", parent["ts"])
    _wait_outbox_drained(fake, bot)
    thread = fake.thread("C1", parent["ts"])
    status = [m for m in thread if m["text"].startswith("Investigation inv-")]
    assert len(status) == 1, "one status message, edited in place"
    # edits are coalesced (at most one per 2 s, never identical): at least the final state
    assert status[0]["edits"] >= 1 and "COMPLETE" in status[0]["text"]
    checklist = status[0]["blocks"][1]["text"]["text"]
    assert checklist.count(":white_check_mark:") == 9
    reports = [m for m in thread if any(b.get("type") == "header" for b in m.get("blocks") or [])]
    assert len(reports) == 1
    assert "chg-3835" in str(reports[0]["blocks"]) and "pricing" in reports[0]["text"]
    buttons = [e["action_id"] for b in reports[0]["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert buttons == ["pm_rerun_deep", "pm_feedback_up", "pm_feedback_down", "pm_publish_jira"]
    upload = fake.uploads[chart["files"][0]["id"]]
    assert upload["data"].startswith(b"\x89PNG") and upload["shared"]["thread_ts"] == parent["ts"]


def test_reaction_twice_gives_one_investigation_in_that_thread_and_follow_ups_are_answered(
        slack: tuple[FakeSlack, SlackBot]) -> None:
    fake, bot = slack
    alert = fake.add_message("C2", "", user="UPD", bot_profile={"name": "PagerDuty"}, attachments=[{
        "title": "[FIRING:1] High error rate on pricing (pd-3975)", "title_link": "https://x.pagerduty.com/incidents/Q1",
        "fields": [{"title": "Service", "value": "pricing"}], "ts": 1790957880}])
    for user in ("U1", "U2"):
        fake.wait_ack(fake.event({"type": "reaction_added", "user": user, "reaction": "mag",
                                  "item": {"type": "message", "channel": "C2", "ts": alert["ts"]}}))
    fake.wait_ack(fake.event({"type": "reaction_added", "user": "U3", "reaction": "tada",
                              "item": {"type": "message", "channel": "C2", "ts": alert["ts"]}}))
    _chart_in(fake, "C2", alert["ts"])
    assert _count(bot, Investigation) == 1
    with bot.runtime.session() as s:
        inv = s.scalars(select(Investigation)).one()
        assert inv.trigger["alert"] == "pd-3975" and inv.trigger["service"] == "pricing"
    assert not [m for m in fake.bot_messages("C2") if not m.get("thread_ts")], "no new parent: the alert is it"

    def ask(text: str, **extra: Any) -> str:
        q = fake.add_message("C2", text, user="U1", thread_ts=alert["ts"])
        fake.wait_ack(fake.event({"type": "message", "channel": "C2", "user": "U1", "text": text, "ts": q["ts"],
                                  "thread_ts": alert["ts"], **extra}))
        return fake.wait_for(lambda: next((m["text"] for m in fake.thread("C2", alert["ts"])
                                           if m.get("user") == "UBOT" and float(m["ts"]) > float(q["ts"])), None),
                             15, f"an answer to {text!r}")

    assert "chg-3835" in ask("what changed in pricing?")
    assert "Errors" in ask("show the errors")
    why_not = ask("why not the shipping deploy?")
    assert "chg-4817" in why_not or "shipping" in why_not
    fake.add_message("C2", "thanks all", user="U1", thread_ts=alert["ts"])  # not a question: no answer


def test_a_re_sent_envelope_starts_one_investigation(slack: tuple[FakeSlack, SlackBot]) -> None:
    fake, bot = slack
    payload_id = fake.slash_command("PAY-44706", user="U1", trigger_id="trig-1")
    fake.wait_ack(payload_id)
    again = fake.slash_command("PAY-44706", user="U1", trigger_id="trig-1", envelope_id=payload_id + "-resent")
    assert fake.wait_ack(again) == {}
    _chart_in(fake, "C1", _parent(fake, "C1")["ts"])
    assert _count(bot, Investigation) == 1
    assert _count(bot, InboundDelivery) == 1
    assert len([m for m in fake.bot_messages("C1") if not m.get("thread_ts")]) == 1


def test_a_429_storm_delivers_everything_exactly_once(slack: tuple[FakeSlack, SlackBot]) -> None:
    fake, bot = slack
    fake.rate_limit("chat.postMessage", 4, retry_after=1)
    fake.rate_limit("chat.update", 4, retry_after=1)
    fake.rate_limit("files.getUploadURLExternal", 1, retry_after=1)
    fake.wait_ack(fake.slash_command("PAY-44706 fast", user="U1"))
    parent = _parent(fake, "C1")
    _chart_in(fake, "C1", parent["ts"])
    _wait_outbox_drained(fake, bot)
    assert fake.throttled_calls == 9
    thread = fake.thread("C1", parent["ts"])
    texts = [m["text"] for m in thread if m.get("user") == "UBOT"]
    assert len(texts) == len(set(texts)), f"something was posted twice: {texts}"
    assert sum(1 for m in thread if m.get("files")) == 1
    assert "COMPLETE" in next(m for m in thread if m["text"].startswith("Investigation inv-"))["text"]


def test_help_bad_input_status_and_refused_cancel_are_ephemeral(slack: tuple[FakeSlack, SlackBot]) -> None:
    fake, bot = slack
    assert "Usage" in fake.wait_ack(fake.slash_command("help"))["text"]
    assert "needs one investigation id" in fake.wait_ack(fake.slash_command("status"))["text"]
    assert "no investigation" in fake.wait_ack(fake.slash_command("status inv-nope"))["text"]
    fake.wait_ack(fake.slash_command("checkout is slow since noon deep", user="U1"))
    fake.wait_for(lambda: _count(bot, Investigation) == 1, 10, "the investigation row")  # start() runs after ack
    with bot.runtime.session() as s:
        inv = s.scalars(select(Investigation)).one()
        assert inv.mode == "deep" and inv.trigger == {"text": "checkout is slow since noon"}
    refused = fake.wait_ack(fake.slash_command(f"cancel {inv.id}", user="USTRANGER"))["text"]
    assert "only its requester or an admin" in refused


def test_no_argument_opens_the_form_and_submitting_it_starts(slack: tuple[FakeSlack, SlackBot]) -> None:
    fake, bot = slack
    assert fake.wait_ack(fake.slash_command("", trigger_id="trig-modal")) == {}
    opened = fake.wait_for(lambda: fake.views, 5, "views.open")[0]
    assert opened["trigger_id"] == "trig-modal" and opened["view"]["callback_id"] == "pm_investigate_modal"
    empty = {"type": "modal", "id": "V1", "state": {"values": {"what": {"value": {"value": " "}}}}, "callback_id": "pm_investigate_modal"}
    bad = fake.wait_ack(fake.interactive({"type": "view_submission", "user": {"id": "U1"}, "view": empty}))
    assert bad["response_action"] == "errors" and "what" in bad["errors"]
    view = {"type": "modal", "id": "V1", "callback_id": "pm_investigate_modal", "private_metadata": "C1", "state": {"values": {
        "what": {"value": {"value": "PAY-44706"}}, "mode": {"value": {"selected_option": {"value": "fast"}}},
        "channel": {"channel": {"selected_conversation": "C7"}}}}}
    fake.wait_ack(fake.interactive({"type": "view_submission", "user": {"id": "U1"}, "view": view}))
    parent = _parent(fake, "C7")
    assert "PAY-44706" in parent["text"]


def test_follow_up_is_answered_by_claude_when_configured(tmp_path: Path) -> None:
    """With ANTHROPIC_API_KEY set, a thread question is answered by Claude (a stand-in Messages API)."""
    from tests.fakes import scripted_models
    from tests.fakes.anthropic_server import FakeAnthropic

    claude = FakeAnthropic().start()
    # with a key, the investigation's agents run too (fast mode: the summary, with tools); the
    # follow-up is the one call without tools
    agents = scripted_models.typical()
    claude.responder = lambda body: agents(body) if body.get("tools") else \
        "The pricing deploy chg-3835 is the cause; roll it back."
    try:
        with FakeSlack() as fake:
            settings = load_settings(
                PM_HOME=str(tmp_path / "pm"), SLACK_BOT_TOKEN="xoxb-test", SLACK_APP_TOKEN="xapp-test",
                SLACK_API_URL=fake.api_url, PM_WORKER_THREADS=2,
                ANTHROPIC_API_KEY=claude.api_key, ANTHROPIC_BASE_URL=claude.url,
            )
            bot = SlackBot(settings, SlackSettings(), sources={"world": str(WORLD)}, verify_token=False).start()
            try:
                fake.wait_connected()
                fake.wait_ack(fake.slash_command("PAY-44706 fast", user="U1", channel="C1"))
                parent = _parent(fake, "C1")
                _chart_in(fake, "C1", parent["ts"])
                q = fake.add_message("C1", "what should we do?", user="U1", thread_ts=parent["ts"])
                fake.wait_ack(fake.event({"type": "message", "channel": "C1", "user": "U1", "text": "what should we do?",
                                          "ts": q["ts"], "thread_ts": parent["ts"]}))
                answer = fake.wait_for(
                    lambda: next((m["text"] for m in fake.thread("C1", parent["ts"])
                                  if m.get("user") == "UBOT" and float(m["ts"]) > float(q["ts"])), None),
                    30, "Claude's answer")
            finally:
                bot.stop()
                bot.runtime.close()
    finally:
        claude.stop()
    assert "roll it back" in answer
    followups = [r for r in claude.requests if not r["body"].get("tools")]
    assert len(followups) == 1
    assert "chg-3835" in str(followups[0])  # the evidence went into the prompt
    assert any(r["body"].get("tools") for r in claude.requests)  # the investigation's agents ran


def test_report_buttons_rerun_and_feedback_are_authorised(slack: tuple[FakeSlack, SlackBot]) -> None:
    """Re-run deep is refused to a stranger and allowed to the requester; a vote is recorded."""
    fake, bot = slack
    fake.wait_ack(fake.slash_command("PAY-44706 fast", user="U1", channel="C1"))
    parent = _parent(fake, "C1")
    _chart_in(fake, "C1", parent["ts"])
    with bot.runtime.session() as s:
        first = s.scalars(select(Investigation)).one()
        first_id = first.id

    def click(action_id: str, user: str) -> None:
        fake.wait_ack(fake.interactive({  # every click has its own trigger_id, as Slack sends it
            "type": "block_actions", "user": {"id": user}, "channel": {"id": "C1"},
            "message": {"ts": parent["ts"], "thread_ts": parent["ts"]}, "trigger_id": f"t-{action_id}-{user}",
            "actions": [{"action_id": action_id, "value": first_id, "type": "button"}],
        }))

    click("pm_rerun_deep", "USTRANGER")
    refusal = fake.wait_for(lambda: next((e for e in fake.ephemerals if e.get("user") == "USTRANGER"), None),
                            15, "an ephemeral refusal")
    assert "only its requester or an admin" in refusal["text"]
    assert _count(bot, Investigation) == 1
    click("pm_rerun_deep", "U1")
    fake.wait_for(lambda: _count(bot, Investigation) == 2, 15, "the deep re-run")
    with bot.runtime.session() as s:
        rerun = s.scalars(select(Investigation).where(Investigation.id != first_id)).one()
        assert rerun.mode == "deep" and rerun.trigger == first.trigger
        assert rerun.origin["channel"] == "C1" and rerun.origin["thread_ts"] == parent["ts"]
    click("pm_feedback_up", "U2")
    thanks = fake.wait_for(lambda: next((e for e in fake.ephemerals if e.get("user") == "U2"), None),
                           15, "a thank-you for the vote")
    assert thanks["text"]


def test_a_burst_of_commands_is_acked_then_every_thread_opens_before_any_status(tmp_path: Path) -> None:
    """40 commands at once, no worker: each acked with its "starting" ephemeral, one investigation and
    one parent per channel, and the outbox opens every new thread before posting status messages."""
    with FakeSlack() as fake:
        settings = load_settings(PM_HOME=str(tmp_path / "pm"), SLACK_BOT_TOKEN="xoxb-test",
                                 SLACK_APP_TOKEN="xapp-test", SLACK_API_URL=fake.api_url)
        bot = SlackBot(settings, SlackSettings(), sources={"world": str(WORLD)}, worker=False,
                       verify_token=False).start()
        try:
            fake.wait_connected()
            channels = [f"CB{i}" for i in range(40)]
            envelopes = [fake.slash_command(f"checkout is slow {i}", user=f"U{i}", channel=c)
                         for i, c in enumerate(channels)]
            for env in envelopes:
                assert "Starting an investigation" in fake.wait_ack(env)["text"]
            fake.wait_for(lambda: all(len(fake.bot_messages(c)) >= 2 for c in channels), 30,
                          "a parent and a status message in every channel")
            _wait_outbox_drained(fake, bot)
            assert _count(bot, Investigation) == 40
            with bot.runtime.session() as s:
                assert set(s.scalars(select(InboundDelivery.status))) == {"processed"}
                assert None not in set(s.scalars(select(InboundDelivery.investigation_id)))
            posts = [args for method, args in fake.calls if method == "chat.postMessage"]
            assert len(posts) == 80  # one parent and one status message each, nothing twice
            kinds = ["status" if p.get("thread_ts") else "parent" for p in posts]
            # the burst lands in a few outbox rounds; within a round, parents come first
            pattern = "".join(k[0] for k in kinds)  # e.g. "pppp…ssss…": 40 parents, then 40 statuses
            rounds = pattern.count("ps") + 1
            assert pattern.index("s") >= 10 and rounds <= 3, pattern
        finally:
            bot.stop()
            bot.runtime.close()
