"""Wire a worker process's extras into a pipeline runtime: the deploy-check actor and the sinks.

:func:`configure_runtime` runs in every process that runs a worker (``pm serve`` and ``pm worker``),
so delayed deploy checks work there and alert- or Jira-triggered investigations are published to
their Slack channel (per domain) and their Jira ticket. ``pm bot`` registers its own Slack sink.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.http.settings import HttpSettings
from commands import deploy_check
from commands.access import report_url
from store.config import Settings


def configure_runtime(runtime: Any, settings: Settings, http: HttpSettings, *, tools_factory: Any = None) -> None:
    """Declare the deploy-check actor; register the callback publisher (API callers' callback_url), the
    Slack publisher when SLACK_BOT_TOKEN is set (and the
    alarm channel when PM_ADMIN_CHANNEL is) and the Jira publisher when JIRA_URL/JIRA_USER/JIRA_API_TOKEN
    are set (both link the report page when PM_PUBLIC_URL is set)."""
    from publishers.slack import make_slack_alarm, make_slack_publisher

    deploy_check.register(runtime=runtime, settings=settings, tools_factory=tools_factory)
    link = report_link(settings, http)
    slack = make_slack_publisher(settings, report_link=link)
    if slack is not None:
        runtime.register_publisher("slack", slack)
    runtime.alarm = make_slack_alarm(settings)  # dead letters: also said in PM_ADMIN_CHANNEL when set
    runtime.register_publisher("callback", callback_publisher(http, report_link=link))
    if settings.jira_url and settings.jira_user and settings.jira_api_token:
        from publishers.jira import JiraPublisher, connect

        client = connect(settings.jira_url, settings.jira_user, settings.jira_api_token.get_secret_value())
        runtime.register_publisher("jira", JiraPublisher(client, slack_workspace_url=http.slack_workspace_url,
                                                         report_link=link))


def callback_publisher(http: HttpSettings, *, report_link: Callable[[str], str] | None = None) -> Any:
    """The ``callback`` sink: POSTs an API caller's callback_url when its investigation ends (docs/api.md),
    SSRF-checked again at send time, signed with PM_CALLBACK_SECRET when set."""
    from commands.api import status_url
    from commands.callbacks import check_callback_url
    from publishers.callback import CallbackPublisher

    allow_private = http.callback_allow_private
    secret = http.callback_secret.get_secret_value() if http.callback_secret is not None else None
    return CallbackPublisher(guard=lambda url: check_callback_url(url, allow_private=allow_private), secret=secret,
                             timeout_s=http.callback_timeout_s, status_url=status_url, report_link=report_link)


def report_link(settings: Settings, http: HttpSettings) -> Callable[[str], str] | None:
    """investigation id -> its report page under PM_PUBLIC_URL (with a link token when JWT_SECRET is set),
    or None when PM_PUBLIC_URL is unset."""
    if not http.public_url:
        return None
    public_url = http.public_url
    secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret is not None else None
    return lambda investigation_id: report_url(public_url, investigation_id, secret)
