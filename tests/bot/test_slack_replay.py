"""Replay of Slack deliveries acked by a process that died before their work finished.

The real bot (Bolt app, journal, hand-off pool, sweeper, embedded SQLite) against the stand-in
Slack: a row left ``accepted`` by "the crashed process" is replayed at start-up into exactly
one investigation with its thread message; a fresh row (work maybe still in flight in a live
process) and a row another process is replaying are left alone.
"""

from __future__ import annotations

import fcntl
import os
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.slack.inbound import SOURCE
from bot.slack.journal import InboundJournal
from bot.slack.replay import replay_unfinished
from bot.slack.runner import SlackBot
from bot.slack.settings import SlackSettings
from store.config import load_settings
from store.db import make_engine, make_session_factory, upgrade
from store.models import InboundDelivery, Investigation, utcnow
from tests.fakes.slack_server import FakeSlack
from tests.paths import SHARED

pytestmark = pytest.mark.integration


def _slash(channel: str, trigger_id: str, text: str) -> dict:
    return {"token": "x", "team_id": "T1", "channel_id": channel, "user_id": "U7", "user_name": "u7",
            "command": "/investigate", "text": text, "api_app_id": "A0FAKE", "trigger_id": trigger_id,
            "response_url": "http://127.0.0.1:9/none"}


def test_an_acked_delivery_left_by_a_dead_process_is_replayed_once_at_start_up(tmp_path: Path) -> None:
    home = tmp_path / "pm"
    with FakeSlack() as fake:
        settings = load_settings(PM_HOME=str(home), SLACK_BOT_TOKEN="xoxb-t", SLACK_APP_TOKEN="xapp-t",
                                 SLACK_API_URL=fake.api_url)
        url = settings.effective_database_url
        upgrade(url)
        engine = make_engine(url)
        old = utcnow() - timedelta(minutes=5)
        with make_session_factory(engine)() as s:
            s.add_all([
                # acked, then the process died: replay it
                InboundDelivery(source=SOURCE, delivery_key="cmd:dead", payload=_slash("CR1", "dead", "db down"),
                                status="accepted", received_at=old),
                # another bot process claimed it a moment ago: not ours to replay
                InboundDelivery(source=SOURCE, delivery_key="cmd:other", payload=_slash("CR2", "other", "x"),
                                status="replaying", received_at=old),
                # just arrived: a live process may still be working on it
                InboundDelivery(source=SOURCE, delivery_key="cmd:fresh", payload=_slash("CR3", "fresh", "y"),
                                status="accepted", received_at=utcnow()),
            ])
            s.commit()
        engine.dispose()
        # A sibling bot is alive on this home (it holds the home's lock): the fresh row may be its own
        # work in flight, so only rows older than the grace are replayed.
        home.mkdir(parents=True, exist_ok=True)
        sibling = os.open(home / "slack-bot.lock", os.O_RDWR | os.O_CREAT)
        fcntl.flock(sibling, fcntl.LOCK_EX | fcntl.LOCK_NB)
        bot = SlackBot(settings, SlackSettings(), worker=False, verify_token=False,
                       sources={"world": str(SHARED / "worlds/example-2")}).start()
        os.close(sibling)
        try:
            parent = fake.wait_for(lambda: next((m for m in fake.bot_messages("CR1") if not m.get("thread_ts")),
                                                None), 20, "the replayed command's parent message")
            assert "db down" in parent["text"]
            # a second replay (the 30 s timer, or a sibling process) finds nothing left to do
            assert bot.replay() == 0
            bot.handoff.stop()
            bot.journal.stop()
            with bot.runtime.session() as s:
                rows = {r.delivery_key: r for r in s.scalars(select(InboundDelivery))}
                invs = list(s.scalars(select(Investigation)))
                assert len(invs) == 1 and invs[0].origin["channel"] == "CR1"
                assert rows["cmd:dead"].status == "processed" and rows["cmd:dead"].investigation_id == invs[0].id
                assert rows["cmd:other"].status == "replaying"
                assert rows["cmd:fresh"].status == "accepted"
            assert not fake.bot_messages("CR2") and not fake.bot_messages("CR3")
        finally:
            bot.stop()
            bot.runtime.close()


def test_a_replay_whose_dispatch_fails_goes_back_to_accepted_for_the_next_try(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'pm.db'}"
    upgrade(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)

    class Runtime:  # the replay's only need from the runtime: a committing session
        from contextlib import contextmanager

        @staticmethod
        @contextmanager
        def session():  # noqa: ANN205
            s = factory()
            try:
                yield s
                s.commit()
            finally:
                s.close()

    class BrokenApp:  # stands in for the Bolt app (a vendor object) whose dispatch raises
        calls = 0

        def dispatch(self, req: object) -> None:
            BrokenApp.calls += 1
            raise RuntimeError("listener blew up")

    with factory() as s:
        s.add(InboundDelivery(source=SOURCE, delivery_key="cmd:bad", payload=_slash("C9", "bad", "z"),
                              status="accepted", received_at=utcnow() - timedelta(minutes=2)))
        s.commit()
    journal = InboundJournal(Runtime.session).start()
    assert replay_unfinished(app=BrokenApp(), runtime=Runtime, journal=journal) == 0
    journal.stop()
    assert BrokenApp.calls == 1
    with factory() as s:
        assert s.scalar(select(InboundDelivery.status).where(InboundDelivery.delivery_key == "cmd:bad")) == "accepted"
        assert s.scalar(select(func.count()).select_from(InboundDelivery)) == 1
    engine.dispose()


def test_the_only_bot_on_its_home_replays_every_unfinished_delivery_at_start_up(tmp_path: Path) -> None:
    """Issue #12: killed right after an ack and restarted at once, the user waited a minute for the replay.
    No other bot holds the home's lock: everything still "accepted" is a dead predecessor's."""
    home = tmp_path / "pm"
    with FakeSlack() as fake:
        settings = load_settings(PM_HOME=str(home), SLACK_BOT_TOKEN="xoxb-t", SLACK_APP_TOKEN="xapp-t",
                                 SLACK_API_URL=fake.api_url)
        upgrade(settings.effective_database_url)
        engine = make_engine(settings.effective_database_url)
        with make_session_factory(engine)() as s:
            s.add(InboundDelivery(source=SOURCE, delivery_key="cmd:just-acked", status="accepted",
                                  payload=_slash("CR4", "just-acked", "checkout down"), received_at=utcnow()))
            s.commit()
        engine.dispose()
        bot = SlackBot(settings, SlackSettings(), worker=False, verify_token=False,
                       sources={"world": str(SHARED / "worlds/example-2")}).start()
        try:
            parent = fake.wait_for(lambda: next((m for m in fake.bot_messages("CR4") if not m.get("thread_ts")),
                                                None), 20, "the replayed command's parent message")
            assert "checkout down" in parent["text"]
        finally:
            bot.stop()
            bot.runtime.close()
