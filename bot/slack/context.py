"""What every Slack listener needs, injected into Bolt's ``context["pm"]`` by the app factory."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.slack.settings import SlackSettings

log = logging.getLogger(__name__)


@dataclass
class BotContext:
    """The pipeline runtime, both settings objects and the Web API client.

    Attributes:
        runtime: pipeline.runtime.build_runtime(settings) (``session()``, ``enqueue()``).
        settings: store.config.Settings.
        slack: the PM_SLACK_* settings.
        client: the WebClient (SLACK_API_URL) listeners use for views.open / ephemerals.
        sources: extra investigation sources for every request (tests: ``{"world": dir}``).
        handoff: runs a listener's work after its ack (:class:`bot.slack.handoff.Handoff`).
        followup_answerer: Claude answerer for thread questions (agents.followup), None = evidence only.
        starts: records acked starts in batches (:class:`bot.slack.starts.StartBatcher`).
    """

    runtime: Any
    settings: Any
    slack: SlackSettings
    client: WebClient
    sources: dict[str, Any] = field(default_factory=dict)
    handoff: Any = None
    followup_answerer: Any = None
    starts: Any = None

    def admins(self) -> frozenset[str]:
        """Admin user ids: PM_SLACK_ADMINS users plus the members of its user groups (S…)."""
        users = set(self.slack.admin_users)
        for group in self.slack.admin_groups:
            try:
                users.update(self.client.usergroups_users_list(usergroup=group).get("users") or [])
            except SlackApiError as exc:  # a missing scope must not make everyone an admin
                log.warning("cannot expand admin group %s: %s", group, exc.response.get("error"))
        return frozenset(users)


def pm(context: Any) -> BotContext:
    """The BotContext from a Bolt listener's ``context``."""
    return context["pm"]


def ack_and_defer(work: Any) -> Any:
    """A button listener that acks at once and runs ``work(body, client, context)`` in the hand-off pool.

    Args:
        work: the slow part (database, Web API calls); it never delays the ack.

    Returns:
        The Bolt listener function.
    """

    def handle(ack: Any, body: dict[str, Any], client: Any, context: Any) -> None:
        ack()
        pm(context).handoff.defer(context, work, body, client, context)

    return handle
