"""Issue #12, what an on-call engineer meets in Slack: each test is one finding, through the real Bolt
app (socket mode) against the stand-in Slack, with the real pipeline on the sandbox world example-2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.slack.runner import SlackBot
from store.models import Investigation
from tests.bot.test_slack_e2e import _count, _parent, _wait_outbox_drained, running_bot
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


def test_an_unknown_ticket_is_said_in_the_thread_and_nothing_is_investigated(
        slack: tuple[FakeSlack, SlackBot]) -> None:
    fake, bot = slack
    fake.wait_ack(fake.slash_command("NOPE-99999", user="U1", channel="C1"))
    parent = _parent(fake, "C1")
    inv = _finished(bot, 30, fake)
    assert inv.status == "FAILED" and inv.report is None and inv.verdict is None
    _wait_outbox_drained(fake, bot)
    texts = _bot_texts(fake, "C1", parent["ts"])
    said = [t for t in texts if "no ticket NOPE-99999" in t]
    assert said and "check the key" in said[0] and "nothing was investigated" in said[0]
    assert not any("CONFIRMED" in t or "LIKELY" in t for t in texts), texts
    assert "`pm " not in " ".join(texts)


def test_an_unknown_alert_is_said_too(slack: tuple[FakeSlack, SlackBot]) -> None:
    fake, bot = slack
    fake.wait_ack(fake.slash_command("pd-0000", user="U1", channel="C1"))
    parent = _parent(fake, "C1")
    inv = _finished(bot, 30, fake)
    assert inv.status == "FAILED" and inv.report is None
    _wait_outbox_drained(fake, bot)
    assert any("no alert pd-0000" in t for t in _bot_texts(fake, "C1", parent["ts"]))


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
