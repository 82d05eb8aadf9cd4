"""`pm bot`: run the Slack bot in socket mode (the bot's composition root)."""

from __future__ import annotations

import argparse
import signal
import threading
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``pm bot`` to the CLI."""
    p = sub.add_parser("bot", help="run the Slack bot (socket mode); see docs/slack.md",
                       description="Run the Slack bot in socket mode. Needs SLACK_BOT_TOKEN and SLACK_APP_TOKEN.")
    p.add_argument("--no-worker", action="store_true",
                   help="do not run investigations in this process (a separate `pm worker` does)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Any) -> int:
    """Start the bot and block until SIGINT/SIGTERM.

    Raises:
        ConfigError: missing tokens or a bad PM_SLACK_* variable.
    """
    from bot.slack.runner import SlackBot
    from bot.slack.settings import load_slack_settings

    bot = SlackBot(settings, load_slack_settings(), worker=not args.no_worker).start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"pm bot: connected to Slack; reaction :{bot.ctx.slack.reaction}: and /investigate are live "
          "(Ctrl-C stops)")
    try:
        stop.wait()
    finally:
        bot.stop()
        bot.runtime.close()
    return 0
