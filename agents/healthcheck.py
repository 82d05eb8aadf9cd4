"""Post-deploy health check: compare a service's error rate and latency before and after a moment.

Reads ``metrics.series`` through the tools (the MCP gateway), averages each metric over two equal
windows either side of the deploy, and calls a metric regressed when the after-mean exceeds
``multiplier`` times the before-mean. A floor under the before-mean keeps a near-zero baseline
(0 errors before) from turning one stray error into an "infinite" regression.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from agents.tools import ToolSource

# Metric names of the capability contract (world-format spec: error_rate 0..1, latency_p95_ms).
ERROR_RATE = "error_rate"
LATENCY = "latency_p95_ms"
# Baseline floors: below 0.5 % errors or 1 ms latency we compare against the floor instead.
_FLOORS = {ERROR_RATE: 0.005, LATENCY: 1.0}


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> datetime:
    """Parse an ISO-8601 time (``Z`` or an offset) into an aware datetime.

    Raises:
        ValueError: not an ISO-8601 time.
    """
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _mean(tools: ToolSource, service: str, name: str, start: datetime, end: datetime) -> float | None:
    result = tools.call("metrics.series", service=service, name=name, start=_iso(start), end=_iso(end))
    values = [
        float(point[1])
        for series in result.get("series") or []
        if series.get("service") == service and series.get("name") == name
        for point in series.get("points") or []
        if point[1] is not None
    ]
    return sum(values) / len(values) if values else None


def compare(
    tools: ToolSource, *, service: str, deployed_at: str, window_s: int, multiplier: float
) -> dict[str, Any]:
    """Compare ``service``'s error rate and p95 latency in the windows before and after ``deployed_at``.

    Args:
        tools: answers ``metrics.series``.
        service: the deployed service.
        deployed_at: ISO-8601 time of the deploy.
        window_s: length of each window in seconds.
        multiplier: HEALTH_CHECK_THRESHOLD_MULTIPLIER.

    Raises:
        ValueError: ``deployed_at`` is not ISO-8601, or window_s/multiplier are not positive.
        agents.errors.ToolError: the metrics tool failed.

    Returns:
        ``{"service", "deployed_at", "window_s", "multiplier", "regressed": bool,
        "metrics": {name: {"before", "after", "ratio", "regressed"}}, "missing": [names]}``.
    """
    if window_s <= 0 or multiplier <= 0:
        raise ValueError("window_s and multiplier must be positive")
    at = parse_time(deployed_at)
    window = timedelta(seconds=window_s)
    metrics: dict[str, Any] = {}
    missing = []
    for name in (ERROR_RATE, LATENCY):
        before = _mean(tools, service, name, at - window, at)
        after = _mean(tools, service, name, at, at + window)
        if before is None or after is None:
            missing.append(name)
            continue
        baseline = max(before, _FLOORS[name])
        ratio = after / baseline
        metrics[name] = {
            "before": round(before, 6), "after": round(after, 6), "ratio": round(ratio, 3),
            "regressed": ratio > multiplier,
        }
    return {
        "service": service, "deployed_at": deployed_at, "window_s": window_s, "multiplier": multiplier,
        "regressed": any(m["regressed"] for m in metrics.values()), "metrics": metrics, "missing": missing,
    }


def describe(result: dict[str, Any]) -> str:
    """One sentence for a person: which metric moved how much after the deploy."""
    parts = [
        f"{name} {m['before']:g} -> {m['after']:g} (x{m['ratio']:g})"
        for name, m in result["metrics"].items()
        if m["regressed"]
    ]
    if not parts:
        return f"{result['service']}: no regression after the deploy at {result['deployed_at']}"
    return f"{result['service']} regressed after the deploy at {result['deployed_at']}: " + ", ".join(parts)
