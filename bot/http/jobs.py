"""Run one scheduled job by name with everything it needs built from the settings."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.http.settings import HttpSettings, webhook_rules
from commands import deploy_check, schedules
from commands.webhooks import resume_pending
from store.config import Settings


def _ticket_is_open(settings: Settings):  # noqa: ANN202 - returns an optional callable
    """A Jira lookup of a ticket's status category when Jira is configured, else None (assume open)."""
    if not (settings.jira_url and settings.jira_user and settings.jira_api_token):
        return None
    from publishers.jira import connect

    client = connect(settings.jira_url, settings.jira_user, settings.jira_api_token.get_secret_value())

    def is_open(key: str) -> bool:
        issue = client.issue(key, fields="status")
        return issue.fields.status.statusCategory.key != "done"

    return is_open


def _progress_bar(label: str):  # noqa: ANN202 - a (done, total) callback
    """A progress line on stderr: redrawn in place on a terminal, printed once at the end otherwise."""
    import sys

    def show(done: int, total: int) -> None:
        if sys.stderr.isatty():
            width = 30
            filled = width * done // max(total, 1)
            end = "\n" if done >= total else ""
            print(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end=end, file=sys.stderr,
                  flush=True)
        elif done >= total:
            print(f"{label} {done}/{total}", file=sys.stderr)

    return show


def run_job(
    name: str, *, settings: Settings, http: HttpSettings, runtime: Any, now: datetime | None = None,
    tools_factory: Any = None,
) -> dict[str, Any]:
    """Run scheduled job ``name`` once and return its summary.

    Raises:
        ValueError: unknown job name (the message lists the known ones).
    """
    if name == "health-check":
        rules = webhook_rules(settings, http)
        spec = {"id": "health-check", "sources": dict(rules.sources)}
        if tools_factory is not None:
            tools = tools_factory(spec)
        else:
            from pipeline.tools import open_tools

            tools = open_tools(spec, settings)
        try:
            return schedules.health_check(
                runtime=runtime, tools=tools, domain_services=http.mapping("domain_services"),
                window_s=http.health_check_window_s, multiplier=settings.health_check_threshold_multiplier,
                now=now, channels=rules.domain_channels, sources=rules.sources,
            )
        finally:
            if callable(getattr(tools, "close", None)):
                tools.close()
    if name == "stale-ticket-review":
        return schedules.stale_ticket_review(
            runtime=runtime, older_than_h=http.stale_p1_hours, now=now, ticket_is_open=_ticket_is_open(settings)
        )
    if name == "knowledge-update":
        return schedules.knowledge_update(runtime=runtime, settings=settings, progress=_progress_bar("re-indexed"))
    if name == "resume-deliveries":
        rules = webhook_rules(settings, http)
        deploy_check.register(runtime=runtime, settings=settings, tools_factory=tools_factory)

        def schedule_check(deploy: dict[str, Any]) -> None:
            deploy_check.schedule(runtime=runtime, deploy=deploy, delay_ms=settings.post_deploy_check_delay_ms)

        return {"resumed": resume_pending(runtime=runtime, rules=rules, deploy_scheduler=schedule_check,
                                          max_attempts=http.delivery_max_attempts)}
    raise ValueError(f"unknown job {name!r}; use one of {', '.join(schedules.JOBS)}")
