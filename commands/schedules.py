"""Scheduled jobs: hourly domain health check, daily stale-P1 review, weekly knowledge re-index.

Each job is a plain function (run by ``pm schedule run <job>`` from a Kubernetes CronJob, or by the
in-process scheduler of the embedded mode) that returns a JSON-able summary of what it did.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from agents.healthcheck import compare, describe
from commands.investigate import rerun, start
from commands.requests import InvestigationRequest, Origin
from commands.schedule_names import JOBS as JOBS  # re-exported (bot.http.jobs, chart tests)
from store.models import OPEN_STATUSES, Investigation


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def health_check(
    *,
    runtime: Any,
    tools: Any,
    domain_services: Mapping[str, list[str]],
    window_s: int,
    multiplier: float,
    now: datetime | None = None,
    channels: Mapping[str, str] | None = None,
    sources: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Compare each configured service's last ``window_s`` with the window before; investigate regressions.

    Args:
        runtime: the pipeline runtime.
        tools: a ToolSource answering ``metrics.series``.
        domain_services: domain -> its services (PM_DOMAIN_SERVICES).
        window_s: length of each window (PM_HEALTH_CHECK_WINDOW_S).
        multiplier: HEALTH_CHECK_THRESHOLD_MULTIPLIER.
        now: the end of the recent window (default: the current time; a sandbox world needs its own).
        channels: domain -> Slack channel for the investigations' results.
        sources: passed on to investigations (``{"world": dir}`` in the sandbox).

    Returns:
        ``{"checked": n, "regressions": [{"domain", "service", "summary", "investigation_id", "created"}]}``.
    """
    end = now or datetime.now(UTC)
    pivot = _iso(end - timedelta(seconds=window_s))
    regressions = []
    checked = 0
    for domain, services in domain_services.items():
        for service in services:
            checked += 1
            result = compare(tools, service=service, deployed_at=pivot, window_s=window_s, multiplier=multiplier)
            if not result["regressed"]:
                continue
            summary = describe(result).replace("after the deploy at", "in the hour after")
            request = InvestigationRequest(
                trigger={"text": f"Scheduled health check: {summary}", "service": service, "ts": pivot,
                         "window": {"start": _iso(end - timedelta(seconds=2 * window_s)), "end": _iso(end)}},
                origin=Origin(kind="schedule", source="health-check", channel=(channels or {}).get(domain)),
                domain=domain,
                priority="P2",
                fingerprint=f"health:{domain}:{service}",
                requested_by="schedule",
                sources=dict(sources or {}),
                raw={"health_check": result},
            )
            started = start(runtime=runtime, request=request)
            regressions.append({"domain": domain, "service": service, "summary": summary,
                                "investigation_id": started.investigation_id, "created": started.created})
    return {"checked": checked, "regressions": regressions}


def stale_ticket_review(
    *,
    runtime: Any,
    older_than_h: float,
    now: datetime | None = None,
    ticket_is_open: Callable[[str], bool] | None = None,
) -> dict[str, Any]:
    """Re-run (deep) the latest investigation of every P1 ticket last investigated over ``older_than_h`` ago.

    Tickets whose latest investigation is still open are left alone; with ``ticket_is_open`` (a
    Jira lookup), tickets Jira reports as done are skipped too.

    Returns:
        ``{"rerun": [{"ticket", "from", "investigation_id"}], "skipped": [{"ticket", "why"}]}``.
    """
    cutoff = (now or datetime.now(UTC)) - timedelta(hours=older_than_h)
    with runtime.session() as s:
        rows = list(s.execute(
            select(Investigation.id, Investigation.trigger, Investigation.status, Investigation.created_at)
            .where(Investigation.priority == "P1")
            .order_by(Investigation.created_at)
        ))
    latest: dict[str, Any] = {}
    for row in rows:
        key = (row.trigger or {}).get("ticket")
        if key:
            latest[key] = row  # ordered by creation: the last one wins
    rerun_done, skipped = [], []
    for key, row in sorted(latest.items()):
        if row.status in OPEN_STATUSES:
            skipped.append({"ticket": key, "why": f"{row.id} is still {row.status}"})
        elif row.created_at > cutoff:
            skipped.append({"ticket": key, "why": f"investigated within {older_than_h:g} h"})
        elif ticket_is_open is not None and not ticket_is_open(key):
            skipped.append({"ticket": key, "why": "ticket is done in Jira"})
        else:
            result = rerun(runtime=runtime, investigation_id=row.id, mode="deep", user=None)
            rerun_done.append({"ticket": key, "from": row.id, "investigation_id": result.investigation_id})
    return {"rerun": rerun_done, "skipped": skipped}


def knowledge_update(*, runtime: Any, settings: Any, progress: Callable[[int, int], None] | None = None
                     ) -> dict[str, Any]:
    """The weekly knowledge re-index: rebuild the Chroma collection from the database (the source of truth).

    Idempotent: the collection is dropped and every COMPLETE investigation with symptoms stored again,
    with its feedback. A corrupted collection is repaired the same way.

    Args:
        runtime: the pipeline runtime (for a database session).
        settings: ``PM_HOME`` / ``CHROMA_HOST``.
        progress: called with (done, total) as batches are stored.

    Returns:
        ``{"status": "ok", "indexed": n, "collection": name}`` or ``{"status": "failed", "message": ...}``
        when Chroma or the embedding model cannot be used (the message says what to do).
    """
    from store.errors import StoreError
    from store.knowledge import incidents_from_db, open_for_rebuild, shared_embedder

    with runtime.session() as s:
        incidents = incidents_from_db(session=s)
    try:
        kb = open_for_rebuild(home=Path(settings.home), chroma_host=getattr(settings, "chroma_host", None),
                              embedder=shared_embedder())
        done = kb.rebuild(incidents, progress=(lambda n: progress(n, len(incidents))) if progress else None)
    except StoreError as exc:
        return {"status": "failed", "message": str(exc)}
    return {"status": "ok", "indexed": done, "collection": kb.name}
