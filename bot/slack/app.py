"""The Bolt app factory: one middleware that persists/dedups deliveries, one listener per file."""

from __future__ import annotations

import importlib
from typing import Any

from slack_bolt import App, BoltResponse

from bot.slack.context import BotContext
from bot.slack.inbound import claim, delivery_key

# Every listener module; each has register(app). tests/bot/test_slack_manifest.py checks this
# list against app_manifest.yaml in both directions.
LISTENERS = (
    "bot.slack.listeners.command_investigate",
    "bot.slack.listeners.view_submission",
    "bot.slack.listeners.reaction_added",
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
    app = App(client=ctx.client, token_verification_enabled=verify_token, process_before_response=False)

    def inject_and_dedup(body: dict[str, Any], context: Any, next: Any) -> Any:  # noqa: A002 - Bolt's name
        context["pm"] = ctx
        key = delivery_key(body, ctx.slack.reaction)
        if key is not None:
            with ctx.runtime.session() as session:
                if not claim(session=session, key=key, payload=body):
                    # A re-sent envelope: ack it (empty 200) and do nothing else.
                    return BoltResponse(status=200, body="")
            context["delivery_key"] = key
        return next()

    app.use(inject_and_dedup)
    for name in LISTENERS:
        importlib.import_module(name).register(app)
    return app
