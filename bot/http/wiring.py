"""Wire a worker process's extras into a pipeline runtime: the deploy-check actor and the sinks.

:func:`configure_runtime` runs in every process that runs a worker (``pm serve`` and ``pm worker``),
so delayed deploy checks work there and alert- or Jira-triggered investigations are published to
their Slack channel (per domain) and their Jira ticket. ``pm bot`` registers its own Slack sink.
"""

from __future__ import annotations

from typing import Any

from bot.http.settings import HttpSettings
from commands import deploy_check
from store.config import Settings


def configure_runtime(runtime: Any, settings: Settings, http: HttpSettings, *, tools_factory: Any = None) -> None:
    """Declare the deploy-check actor; register the Slack publisher when SLACK_BOT_TOKEN is set (and the
    alarm channel when PM_ADMIN_CHANNEL is) and the Jira publisher when JIRA_URL/JIRA_USER/JIRA_API_TOKEN are set."""
    from publishers.slack import make_slack_alarm, make_slack_publisher

    deploy_check.register(runtime=runtime, settings=settings, tools_factory=tools_factory)
    slack = make_slack_publisher(settings)
    if slack is not None:
        runtime.register_publisher("slack", slack)
    runtime.alarm = make_slack_alarm(settings)  # dead letters: also said in PM_ADMIN_CHANNEL when set
    if settings.jira_url and settings.jira_user and settings.jira_api_token:
        from publishers.jira import JiraPublisher, connect

        client = connect(settings.jira_url, settings.jira_user, settings.jira_api_token.get_secret_value())
        runtime.register_publisher("jira", JiraPublisher(client, slack_workspace_url=http.slack_workspace_url))
