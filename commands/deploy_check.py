"""The post-deploy health check: schedule it after a deploy, run it, investigate only on regression.

``schedule`` hands the check to the queue with a delay of POST_DEPLOY_CHECK_DELAY_MS (so the
"after" window has data); ``run`` compares error rate and latency before/after through the tools
and starts an investigation only when one of them regressed beyond
HEALTH_CHECK_THRESHOLD_MULTIPLIER.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from agents.healthcheck import compare, describe, parse_time
from commands.investigate import StartResult, start
from commands.requests import InvestigationRequest, Origin
from pipeline.deploy_check import declare, enqueue_check
from pipeline.tools import open_tools

log = logging.getLogger(__name__)

# Each window is at least 5 minutes (short delays still compare enough samples) and at most an hour.
_MIN_WINDOW_S = 300
_MAX_WINDOW_S = 3600


def window_for(delay_ms: int) -> int:
    """Seconds in each comparison window for a check run ``delay_ms`` after the deploy."""
    return max(_MIN_WINDOW_S, min(_MAX_WINDOW_S, delay_ms // 1000))


def register(*, runtime: Any, settings: Any, tools_factory: Callable[[dict[str, Any]], Any] | None = None) -> None:
    """Declare the delayed check on the runtime's broker; call before ``runtime.start_worker()``.

    Args:
        runtime: the pipeline runtime.
        settings: store.config.Settings (multiplier, delay, tools config).
        tools_factory: ``fn({"id", "sources"}) -> ToolSource``; default the MCP gateway
            (``pipeline.tools.open_tools``) on the deploy's sources.
    """
    def open_for(deploy: dict[str, Any]) -> Any:
        spec = {"id": f"deploy-check-{deploy['service']}", "sources": deploy.get("sources") or {}}
        return tools_factory(spec) if tools_factory else open_tools(spec, settings)

    def handle(deploy: dict[str, Any]) -> dict[str, Any]:
        tools = open_for(deploy)
        try:
            result = run(
                runtime=runtime, tools=tools, deploy=deploy,
                multiplier=settings.health_check_threshold_multiplier, delay_ms=settings.post_deploy_check_delay_ms,
            )
        finally:
            close = getattr(tools, "close", None)
            if callable(close):
                close()
        log.info("post-deploy check: %s", describe(result))
        return result

    declare(runtime, handle)


def schedule(*, runtime: Any, deploy: dict[str, Any], delay_ms: int) -> None:
    """Queue the health check of ``deploy`` to run after ``delay_ms`` (see :func:`register`).

    Raises:
        pipeline.errors.PipelineError: :func:`register` was not called in this process.
    """
    enqueue_check(runtime, deploy, delay_ms=delay_ms)


def run(*, runtime: Any, tools: Any, deploy: dict[str, Any], multiplier: float, delay_ms: int) -> dict[str, Any]:
    """Compare before/after the deploy and start an investigation when it regressed.

    Args:
        runtime: the pipeline runtime (for ``start``).
        tools: a ToolSource answering ``metrics.series``.
        deploy: the normalised deploy (``commands.webhooks.normalise_deploy``).
        multiplier: HEALTH_CHECK_THRESHOLD_MULTIPLIER.
        delay_ms: POST_DEPLOY_CHECK_DELAY_MS (sets the window length).

    Returns:
        The comparison plus ``investigation_id``/``created`` when one was started or attached.
    """
    result = compare(
        tools, service=deploy["service"], deployed_at=deploy["deployed_at"],
        window_s=window_for(delay_ms), multiplier=multiplier,
    )
    if not result["regressed"]:
        return result
    started = start_regression(runtime=runtime, deploy=deploy, result=result)
    return {**result, "investigation_id": started.investigation_id, "created": started.created}


def _window(deployed_at: str, window_s: int) -> dict[str, str]:
    """The investigation window: the compared span either side of the deploy."""
    at = parse_time(deployed_at)
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    span = timedelta(seconds=window_s)
    return {"start": (at - span).strftime(fmt), "end": (at + span).strftime(fmt)}


def start_regression(*, runtime: Any, deploy: dict[str, Any], result: dict[str, Any]) -> StartResult:
    """Open (or attach to) the investigation of a regressed deploy."""
    error_regressed = result["metrics"].get("error_rate", {}).get("regressed", False)
    version = deploy.get("version") or deploy["deployed_at"]
    request = InvestigationRequest(
        trigger={
            "text": describe(result), "service": deploy["service"], "ts": deploy["deployed_at"],
            "window": _window(deploy["deployed_at"], result["window_s"]), "deploy": deploy.get("version"),
        },
        origin=Origin(kind="webhook", source="deploy", channel=deploy.get("channel")),
        mode=deploy.get("mode") or "balanced",
        domain=deploy.get("domain"),
        # More errors hurt users now; slower responses alone can wait behind P1 alerts.
        priority="P1" if error_regressed else "P2",
        fingerprint=f"deploy:{deploy['service']}:{version}"[:128],
        requested_by="deploy-check",
        sources=dict(deploy.get("sources") or {}),
        raw={"deploy": deploy, "health_check": result},
    )
    return start(runtime=runtime, request=request)
