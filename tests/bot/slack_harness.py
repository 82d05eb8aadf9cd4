"""Shared set-up for the Slack tests: the stand-in Slack, embedded settings, the real bot."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bot.slack.runner import SlackBot
from bot.slack.settings import SlackSettings
from store.config import load_settings
from tests.fakes.slack_server import FakeSlack

WORLD = Path("/work/shared/worlds/example-2")


@contextmanager
def running_bot(tmp_path: Path, *, admins: str = "UADMIN", world: Path = WORLD,
                **slack: Any) -> Iterator[tuple[FakeSlack, SlackBot]]:
    """The stand-in Slack plus the real bot (embedded SQLite, in-process broker, own worker)."""
    with FakeSlack() as fake:
        settings = load_settings(PM_HOME=str(tmp_path / "pm"), SLACK_BOT_TOKEN="xoxb-test",
                                 SLACK_APP_TOKEN="xapp-test", SLACK_API_URL=fake.api_url, PM_WORKER_THREADS=2)
        bot = SlackBot(settings, SlackSettings(PM_SLACK_ADMINS=admins, **slack), sources={"world": str(world)},
                       verify_token=False).start()
        try:
            fake.wait_connected()
            yield fake, bot
        finally:
            bot.stop()
            bot.runtime.close()


def thread_of_first_parent(fake: FakeSlack, channel: str = "C1") -> list[dict[str, Any]]:
    """The thread under the bot's first top-level message in ``channel``."""
    parent = fake.wait_for(lambda: next((m for m in fake.bot_messages(channel) if not m.get("thread_ts")), None),
                           15, "a parent message")
    return fake.thread(channel, parent["ts"])
