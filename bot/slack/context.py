"""What every Slack listener needs, injected into Bolt's ``context["pm"]`` by the app factory."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.slack.settings import SlackSettings
from publishers.escape import mention

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


def _group_members(client: WebClient, group: str) -> set[str]:
    try:
        return set(client.usergroups_users_list(usergroup=group).get("users") or [])
    except SlackApiError as exc:  # a missing scope must not let everyone act
        log.warning("cannot expand user group %s: %s", group, exc.response.get("error"))
        return set()


def _channel_member(client: WebClient, channel: str, user: str) -> bool:
    cursor = None
    for _ in range(50):  # 50 pages of 1,000: channels larger than that are not searched further
        try:
            resp = client.conversations_members(channel=channel, limit=1000, cursor=cursor)
        except SlackApiError as exc:
            log.warning("cannot list the members of %s: %s", channel, exc.response.get("error"))
            return False
        if user in (resp.get("members") or []):
            return True
        cursor = (resp.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            return False
    return False


def slack_requested(inv: dict[str, Any]) -> bool:
    """Whether a Slack user started ``inv`` (else Jira, an alert, a schedule or the API did)."""
    return (inv.get("origin") or {}).get("kind") == "slack" and mention(inv.get("requested_by")) is not None


def authoriser(ctx: BotContext, user: str, channel: str | None) -> Any:
    """The who-may-act policy for ``user`` (docs/slack.md), as ``fn(investigation dict) -> refusal or None``.

    May cancel / re-run an investigation: its requester; an admin (PM_SLACK_ADMINS); a member of
    its domain's on-call user group (PM_SLACK_ONCALL_GROUPS); and, for one that no Slack user
    started (Jira, an alert, a schedule, the API) in a domain without an on-call group, a member
    of the channel its thread is in.
    """

    def check(inv: dict[str, Any]) -> str | None:
        if user == inv.get("requested_by") or user in ctx.admins():
            return None
        domain = inv.get("domain")
        group = ctx.slack.oncall_groups.get(domain) if domain else None
        if group and user in _group_members(ctx.client, group):
            return None
        where = (inv.get("origin") or {}).get("channel") or channel
        if not slack_requested(inv) and not group and where and _channel_member(ctx.client, where, user):
            return None
        who = ["its requester", "an admin"]
        if group:
            who.insert(1, f"the {domain} on-call group")
        elif not slack_requested(inv) and where:
            who.insert(1, "members of its channel")
        return f"only {', '.join(who[:-1])} or {who[-1]} may act on {inv['id']}; ask one of them"

    return check


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
