"""Opening the tools (the MCP gateway) for one investigation, with Jira as the ticket source.

When the investigation's trigger is a ticket and Jira is configured (JIRA_URL, JIRA_USER,
JIRA_API_TOKEN), :class:`JiraTickets` wraps the gateway: ``tickets.get`` is answered from Jira
through the `jira` library, everything else goes to the gateway. If Jira cannot answer, the
gateway's own ``tickets.get`` is asked instead and the failure is kept in ``missing_sources``
(the CONTEXT_GATHERING phase adds it to the context), so a Jira outage degrades the
investigation instead of failing it.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError, TriggerNotFound
from pipeline.metrics import observe_mcp_call
from pipeline.tracing import record_tool_call

log = logging.getLogger(__name__)
JIRA_FIELDS = "summary,description,labels,components,status,reporter,created,priority"
JIRA_TIMEOUT_S = 10.0


def world_for(investigation: dict[str, Any], settings: Any) -> Path | None:
    """The sandbox world an investigation reads: its own ``sources.world``, else PM_WORLD."""
    world = (investigation.get("sources") or {}).get("world") or settings.sandbox_world
    return Path(world) if world else None


def open_tools(investigation: dict[str, Any], settings: Any) -> Any:
    """Open the MCP gateway for ``investigation``.

    The config is, in order: the investigation's own sources file (``sources.sources_file``),
    MCP_CONFIG, PM_SOURCES (real sources, docs/sources.md; not for an investigation of a world),
    the bundled sandbox servers on the world (``sources.world`` or PM_WORLD).

    Raises:
        PipelineError: none of them is given.
        ConfigError: the sources file is wrong (the message names the entry).

    Returns:
        A ``agents.tools.ToolSource`` with ``close()``.
    """
    from agents.gateway import default_sandbox_config, open_gateway

    own = investigation.get("sources") or {}
    world = world_for(investigation, settings)
    mcp_config = own.get("mcp_config") or settings.mcp_config
    sources_file = own.get("sources_file")
    if not sources_file and not mcp_config and not own.get("world"):
        sources_file = getattr(settings, "sources_file", None)
    if sources_file:
        from agents.sources_gateway import gateway_config
        from store.sources_file import load_sources

        sources = load_sources(sources_file)
        config: Any = gateway_config(sources)
    elif mcp_config:
        config = Path(mcp_config)
    elif world is not None:
        # In-process by default: the four sandbox servers share one load of the world and speak MCP
        # over memory streams; stdio spawns a process per source, each loading the whole world
        # (an alt-suite world of 53k records: 13-14 s vs 7-9 s per `pm investigate` at load 4).
        config = default_sandbox_config(getattr(settings, "sandbox_transport", "inprocess"))
    else:
        raise PipelineError(
            f"{investigation.get('id')}: no tools to investigate with; set PM_SOURCES to a sources.yaml "
            "(docs/sources.md), MCP_CONFIG, or PM_WORLD / --world to a sandbox world"
        )
    gateway = open_gateway(config, variables={"world": str(world or ""), "python": sys.executable},
                           on_call=_observe)
    if sources_file:
        # sources.yaml's `window:` is the default span around the trigger for every investigation that
        # reads it, however it was started (CLI, Slack, webhook); a trigger's own window still wins.
        gateway.window_defaults = {"lookback_s": sources.lookback_s, "lookahead_s": sources.lookahead_s}
    return with_jira(gateway, investigation, settings)


def needs_lookup(trigger: dict[str, Any] | None, origin: dict[str, Any] | None = None) -> bool:
    """Whether a request's trigger names a ticket or alert that must exist before anything is recorded.

    A ticket a Jira webhook sent (Jira just told us of it) and an alert a webhook carries in full
    (it has its own time) are not looked up; a key or id a person typed is.
    """
    from agents.evidence.timeutil import parse_ts

    trigger = trigger or {}
    if trigger.get("ticket"):
        return (origin or {}).get("kind") != "jira"
    # the same test as CONTEXT_GATHERING's: an alert with a readable time of its own is its own record
    return bool(trigger.get("alert")) and parse_ts(trigger.get("ts")) is None


def missing_trigger(tools_factory: Any, investigation: dict[str, Any]) -> TriggerNotFound | None:
    """Look the trigger's ticket / alert up before an investigation is recorded for it.

    Args:
        tools_factory: ``fn(investigation) -> ToolSource`` (the runtime's).
        investigation: what would be recorded: ``trigger``, ``origin``, ``sources`` (no id yet).

    Returns:
        The :class:`~pipeline.errors.TriggerNotFound` to tell the requester when its source answered
        "no such ticket / alert"; None when it exists, when nothing needs looking up, or when the
        sources cannot answer now (opening them or the look-up failed: the investigation then starts
        and degrades, or fails, as it would have).
    """
    if not needs_lookup(investigation.get("trigger"), investigation.get("origin")):
        return None
    try:
        tools = tools_factory(investigation)
    except Exception:  # noqa: BLE001 - no sources to ask now: the investigation says what is wrong
        log.warning("could not open the sources to look up %s", investigation.get("trigger"), exc_info=True)
        return None
    try:
        from agents.engine import trigger_not_found

        gone = trigger_not_found(tools, investigation.get("trigger"))
    except Exception:  # noqa: BLE001 - a failing source is not an answer
        log.warning("looking up %s failed", investigation.get("trigger"), exc_info=True)
        return None
    finally:
        close = getattr(tools, "close", None)
        if callable(close):
            try:
                close()
            except Exception:  # noqa: BLE001 - closing after the look-up
                log.debug("closing the look-up's tools failed", exc_info=True)
    return TriggerNotFound(gone["kind"], gone["key"], gone.get("source")) if gone else None


def _observe(record: dict[str, Any]) -> None:
    """Each gateway call into the metrics and, when tracing is on, a span."""
    observe_mcp_call(record)
    record_tool_call(record)


def with_jira(tools: Any, investigation: dict[str, Any], settings: Any) -> Any:
    """``tools`` wrapped by :class:`JiraTickets` when the trigger is a ticket and Jira is configured.

    Args:
        tools: the ToolSource to wrap (the gateway).
        investigation: the investigation dict (its ``trigger``).
        settings: store.config.Settings (jira_url, jira_user, jira_api_token).

    Returns:
        The wrapper, or ``tools`` unchanged.
    """
    trigger = investigation.get("trigger") or {}
    token = getattr(settings, "jira_api_token", None)
    if not (trigger.get("ticket") and getattr(settings, "jira_url", None) and getattr(settings, "jira_user", None)
            and token is not None):
        return tools
    from publishers.jira import connect

    secret = token.get_secret_value() if hasattr(token, "get_secret_value") else str(token)
    client = connect(settings.jira_url, settings.jira_user, secret, timeout_s=JIRA_TIMEOUT_S)
    return JiraTickets(tools, client, url=settings.jira_url)


class JiraTickets:
    """A ToolSource that answers ``tickets.get`` from Jira and passes every other call to ``inner``.

    Args:
        inner: the wrapped ToolSource (the gateway); its other attributes (``check``, ``close``) show through.
        client: a ``jira.JIRA`` client.
        url: the Jira base URL (for the ticket's link).

    Attributes:
        missing_sources: notes on Jira failures, for the context's ``missing_sources``.
    """

    def __init__(self, inner: Any, client: Any, *, url: str) -> None:
        self.inner = inner
        self.client = client
        self.url = url.rstrip("/")
        self.missing_sources: list[str] = []

    def call(self, capability: str, **args: Any) -> dict[str, Any]:
        """Answer ``tickets.get`` from Jira (falling back to ``inner``); pass everything else on."""
        if capability == "tickets.get" and args.get("key"):
            key = str(args["key"])
            try:
                from publishers.jira import ticket_from_jira

                return ticket_from_jira(self.client.issue(key, fields=JIRA_FIELDS).raw, self.url)
            except Exception as exc:  # noqa: BLE001 — Jira down or refused: degrade, never fail
                if getattr(exc, "status_code", None) == 404:
                    # Jira's 404 is an answer (no such issue, or JIRA_USER may not see it): permanent, not retried.
                    from agents.errors import NotFoundToolError

                    raise NotFoundToolError(f"tickets.get: Jira has no issue {key} (HTTP 404: a wrong key, a deleted "
                                            "or moved issue, or one JIRA_USER may not see)",
                                            capability=capability, server="jira") from None
                note = f"jira (tickets.get {key} failed: {_reason(exc)})"
                log.warning("%s; asking the tool servers instead", note)
                if note not in self.missing_sources:
                    self.missing_sources.append(note)
        return self.inner.call(capability, **args)

    def __getattr__(self, name: str) -> Any:
        # check(), close() and anything else the gateway offers.
        return getattr(self.inner, name)


def _reason(exc: Exception) -> str:
    status = getattr(exc, "status_code", None)
    if status:
        return f"HTTP {status}"
    return type(exc).__name__
