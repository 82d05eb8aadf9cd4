"""Wire this front door's pieces into a pipeline runtime: the deploy-check actor and the Jira sink.

Call :func:`configure_runtime` in every process that runs a worker (``pm serve`` does; ``pm worker``
should pass it as its ``configure`` hook) so delayed deploy checks and Jira publishing work there.
"""

from __future__ import annotations

from typing import Any

from bot.http.settings import HttpSettings
from commands import deploy_check
from store.config import Settings


def configure_runtime(runtime: Any, settings: Settings, http: HttpSettings, *, tools_factory: Any = None) -> None:
    """Declare the deploy-check actor and, when JIRA_URL/JIRA_USER/JIRA_API_TOKEN are set, the Jira publisher."""
    deploy_check.register(runtime=runtime, settings=settings, tools_factory=tools_factory)
    if settings.jira_url and settings.jira_user and settings.jira_api_token:
        from publishers.jira import JiraPublisher, connect

        client = connect(settings.jira_url, settings.jira_user, settings.jira_api_token.get_secret_value())
        runtime.register_publisher("jira", JiraPublisher(client, slack_workspace_url=http.slack_workspace_url))
