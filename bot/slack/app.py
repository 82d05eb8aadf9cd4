"""The Bolt app factory: one middleware that injects the BotContext, one listener per file.

Persisting and deduplicating a delivery happens before the app runs, in
:class:`bot.slack.front.SocketFront`, which puts its key into ``context["delivery_key"]``.
"""

from __future__ import annotations

import importlib
from typing import Any

from slack_bolt import App

from bot.slack.context import BotContext

# Every listener module; each has register(app). tests/bot/test_slack_manifest.py checks this
# list against app_manifest.yaml in both directions.
LISTENERS = (
    "bot.slack.listeners.command_investigate",
    "bot.slack.listeners.view_submission",
    "bot.slack.listeners.reaction_added",
    "bot.slack.listeners.reaction_removed",
    "bot.slack.listeners.message_thread",
    "bot.slack.listeners.app_mention",
    "bot.slack.listeners.action_rerun",
    "bot.slack.listeners.action_cancel",
    "bot.slack.listeners.action_feedback",
    "bot.slack.listeners.action_publish_jira",
)


def create_app(ctx: BotContext, *, verify_token: bool = True) -> App:
    """Build the Bolt app around ``ctx.client`` (so SLACK_API_URL applies to every call).

    Args:
        ctx: runtime, settings and the WebClient.
        verify_token: call auth.test at start-up (off in tests against the stand-in).

    Returns:
        The App with every listener of :data:`LISTENERS` registered.
    """
    # process_before_response: the listener runs on the socket-mode thread and dispatch returns
    # when it does. Listeners only ack, normalise and hand off (ctx.handoff), so that is quick,
    # and the ack is not stuck behind other listeners in Bolt's 5-thread listener pool.
    app = App(client=ctx.client, token_verification_enabled=verify_token, process_before_response=True)

    def inject(context: Any, next: Any) -> Any:  # noqa: A002 - Bolt's name
        context["pm"] = ctx
        return next()

    app.use(inject)
    for name in LISTENERS:
        importlib.import_module(name).register(app)
    return app
