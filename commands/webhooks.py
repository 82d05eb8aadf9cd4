"""Turn Jira, PagerDuty, Grafana, Alertmanager and deploy webhooks into investigation requests.

Each vendor payload is read once, here, into :class:`~commands.requests.InvestigationRequest`
objects (with a fingerprint for dedup and a priority for the queue) or into a reason to ignore
it. The listener persists every accepted delivery (:func:`accept_many`, many per commit) before it
answers, then :func:`process_many` (or :func:`process`, one at a time) turns stored rows into
investigations, so a crash between the two loses nothing: :func:`resume_pending` picks rows up again.

Payload shapes followed:
* Jira Cloud issue webhooks (``webhookEvent`` ``jira:issue_created`` / ``jira:issue_updated``; an update
  whose ``changelog`` sets or clears the resolution is feedback on the ticket's finished investigation).
* PagerDuty v3 webhooks (``event.event_type`` ``incident.triggered``, ``event.data`` the incident).
* Grafana unified alerting webhook and Alertmanager webhook ``version: "4"``: a group of alerts,
  each with ``status``, ``labels``, ``annotations``, ``startsAt`` and ``fingerprint``.
* Our deploy hook: ``{"service", "environment", "version"?, "deployed_at"?, "id"?}``.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from commands.errors import BadRequest, BudgetStopped, PayloadError, UnknownTrigger
from commands.feedback import TicketResolution, on_ticket_resolution
from commands.investigate import StartResult, open_by_fingerprint, open_or_attach, start
from commands.requests import InvestigationRequest, Origin
from commands.webhook_schemas import JIRA_EVENTS, check_depth, check_strings, validate
from pipeline import metrics
from store import events, inbound, outbox
from store.models import InboundDelivery, utcnow

log = logging.getLogger(__name__)

SOURCES = ("jira", "pagerduty", "grafana", "alertmanager", "deploy", "change")
#: Change kinds of the world format (changes.jsonl), accepted by /webhooks/change.
CHANGE_KINDS = ("deploy", "feature_flag", "config", "db_migration", "infra")
#: Most change records one /webhooks/change delivery may carry.
MAX_CHANGES_PER_DELIVERY = 1000
# Jira's default priority scheme (Highest..Lowest) and the older one (Blocker..Trivial).
_JIRA_PRIORITY = {
    "highest": "P1", "blocker": "P1", "critical": "P1",
    "high": "P2", "major": "P2", "medium": "P2",
    "low": "P3", "lowest": "P3", "minor": "P3", "trivial": "P3",
}
# Alert ``severity`` label values seen in Prometheus rule sets and Grafana defaults.
_SEVERITY_PRIORITY = {
    "critical": "P1", "page": "P1", "fatal": "P1", "emergency": "P1", "sev1": "P1", "p1": "P1",
    "error": "P2", "high": "P2", "major": "P2", "warning": "P2", "warn": "P2", "sev2": "P2", "p2": "P2",
    "info": "P3", "low": "P3", "minor": "P3", "none": "P3", "sev3": "P3", "p3": "P3",
}


@dataclass(frozen=True)
class WebhookRules:
    """Which deliveries start investigations, and where their results go.

    Attributes:
        jira_labels: an issue needs one of these labels.
        jira_projects: allowed Jira project keys (JIRA_PROJECT_FILTER); empty allows all.
        pagerduty_priorities: PagerDuty incident priorities that start one.
        alert_name_patterns: shell-style patterns (``fnmatch``) an alert name must match.
        deploy_environments: deploy environments that get a post-deploy health check.
        domains: service or Jira project key -> domain name.
        domain_channels: domain -> Slack channel id for results; ``default_channel`` otherwise.
        mode: investigation mode for triggered investigations.
    """

    jira_labels: tuple[str, ...] = ("auto-investigate", "production-bug")
    jira_projects: tuple[str, ...] = ()
    pagerduty_priorities: tuple[str, ...] = ("P1", "P2")
    alert_name_patterns: tuple[str, ...] = ("*",)
    deploy_environments: tuple[str, ...] = ("production",)
    domains: Mapping[str, str] = field(default_factory=dict)
    domain_channels: Mapping[str, str] = field(default_factory=dict)
    default_channel: str | None = None
    mode: str = "balanced"
    sources: Mapping[str, Any] = field(default_factory=dict)
    #: Most alerts one Grafana/Alertmanager delivery may carry (PM_WEBHOOK_MAX_ALERTS).
    max_alerts: int = 200
    #: PagerDuty ``occurred_at`` / Jira ``timestamp`` further than this from now: ignored as a replay
    #: (PM_WEBHOOK_REPLAY_WINDOW_S).
    replay_window_s: float = 3600.0

    def domain_for(self, *names: str | None) -> str | None:
        """The domain of the first name (service / project) that has one."""
        for name in names:
            if name and name in self.domains:
                return self.domains[name]
        return None

    def channel_for(self, domain: str | None) -> str | None:
        """The Slack channel results of ``domain`` go to."""
        return self.domain_channels.get(domain or "", self.default_channel)


@dataclass(frozen=True)
class Normalised:
    """What a delivery asks for: investigations, a deploy check, or nothing (with why)."""

    requests: tuple[InvestigationRequest, ...] = ()
    deploy: dict[str, Any] | None = None
    ignored: str | None = None
    #: ``(kind, record)`` of alerts and changes to keep as history (store/events.py), investigated or not.
    history: tuple[tuple[str, dict[str, Any]], ...] = ()
    #: A Jira ticket resolved (or reopened): feedback on the investigation published to it.
    resolution: TicketResolution | None = None


# -- reading payloads -------------------------------------------------------------------------------


class _NotFinite(ValueError):
    pass


def _no_constant(name: str) -> Any:
    raise _NotFinite(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotFinite(f"{text} is out of range for a number")
    return value


def _loads(body: bytes) -> Any:
    """``json.loads`` refusing NaN, Infinity and numbers that overflow to them (PostgreSQL's json
    type refuses them too: the insert failed and the sender was told to retry forever)."""
    return json.loads(body, parse_constant=_no_constant, parse_float=_finite)


def parse_json(body: bytes) -> dict[str, Any]:
    """Decode a request body that must be a JSON object.

    Raises:
        PayloadError: not UTF-8 JSON, nested deeper than 64, holding NUL or lone surrogates, or not an object.
    """
    check_depth(body)
    try:
        data = _loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise PayloadError("body", f"body is not valid JSON ({exc}); send the vendor's JSON payload") from None
    if not isinstance(data, dict):
        raise PayloadError("body", "body must be a JSON object; send the vendor's JSON payload")
    check_strings(data, body)
    return data


def parse_change_body(body: bytes) -> dict[str, Any]:
    """A /webhooks/change body: one change record, a JSON list of them, or ``{"changes": [...]}``.

    Raises:
        PayloadError: not UTF-8 JSON, nested deeper than 64, holding NUL or lone surrogates, or neither an
            object nor a list.
    """
    check_depth(body)
    try:
        data = _loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise PayloadError("body", f"body is not valid JSON ({exc}); send a change record or a list") from None
    if not isinstance(data, list | dict):
        raise PayloadError("body", "body must be a change record (an object) or a list of them")
    wrapped = {"changes": data} if isinstance(data, list) else data
    # A single record is changes[0] to normalise_change: name its fields the same way.
    check_strings(wrapped if isinstance(wrapped.get("changes"), list) else {"changes": [wrapped]}, body)
    return wrapped


def _get(data: Mapping[str, Any], path: str, *, required: bool = True) -> Any:
    """Read ``a.b.c`` from nested dicts; raise PayloadError naming the path when it is missing."""
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, Mapping) or node.get(part) in (None, ""):
            if required:
                raise PayloadError(path, f"missing field {path!r}; the payload does not look like this source's")
            return None
        node = node[part]
    return node


def _slug(value: str) -> str:
    return "".join(c for c in value.lower() if c.isalnum())[:40] or "x"


def _hash(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]


# -- one normaliser per source ----------------------------------------------------------------------


def normalise_jira(payload: Mapping[str, Any], rules: WebhookRules) -> Normalised:
    """A Jira issue event -> a ticket investigation when labels and project pass the filters; an update that
    resolves or reopens the ticket -> its resolution (:func:`jira_resolution`), feedback, never an investigation."""
    event = _get(payload, "webhookEvent")
    if event not in JIRA_EVENTS:
        return Normalised(ignored=f"Jira event {event!r} is not handled")
    key = str(_get(payload, "issue.key"))
    fields = _get(payload, "issue.fields", required=False) or {}
    project = (_get(fields, "project.key", required=False) or key.split("-", 1)[0]).upper()
    if rules.jira_projects and project not in rules.jira_projects:
        return Normalised(ignored=f"project {project} is not in JIRA_PROJECT_FILTER")
    if event == "jira:issue_updated":
        # Resolved or reopened: feedback on what we said of it, never a new investigation. No label needed:
        # a ticket we only published to (Slack's "publish to Jira") may not carry one.
        resolution = jira_resolution(payload, key)
        if resolution is not None:
            return Normalised(resolution=resolution)
    labels = {str(x).lower() for x in fields.get("labels") or []}
    if not labels & {label.lower() for label in rules.jira_labels}:
        return Normalised(ignored=f"issue {key} has none of the labels {', '.join(rules.jira_labels)}")
    priority_name = str(_get(fields, "priority.name", required=False) or "").lower()
    domain = rules.domain_for(project)
    request = InvestigationRequest(
        trigger={"ticket": key},
        origin=Origin(kind="jira", jira_key=key, source="jira", channel=rules.channel_for(domain)),
        mode=rules.mode,
        domain=domain,
        priority=_JIRA_PRIORITY.get(priority_name, "P2"),
        fingerprint=f"jira:{key}",
        requested_by=_get(payload, "user.accountId", required=False) or "jira",
        sources=dict(rules.sources),
        raw=dict(payload),
    )
    return Normalised(requests=(request,))


def jira_resolution(payload: Mapping[str, Any], key: str) -> TicketResolution | None:
    """The resolution an ``issue_updated`` body reports, or None when it changed something else.

    Resolved: the changelog sets ``resolution`` (its new name), or moves the status into the *done*
    category (the resolution's name if set, else the status's: workflows without resolutions).
    Reopened: the changelog clears ``resolution`` (``name`` None). The comment written with the
    transition (Jira sends it as ``comment``) and the ticket's fix versions go along.
    """
    fields = _get(payload, "issue.fields", required=False) or {}
    items = [i for i in (_get(payload, "changelog.items", required=False) or []) if isinstance(i, Mapping)]
    changed = {str(i.get("field") or "").lower(): i for i in items}
    status = fields.get("status") or {}
    if "resolution" in changed:
        name = changed["resolution"].get("toString") or None
    elif "status" in changed and _get(status, "statusCategory.key", required=False) == "done":
        name = _get(fields, "resolution.name", required=False) or changed["status"].get("toString") or status.get(
            "name") or "Done"
    else:
        return None
    body = _get(payload, "comment.body", required=False)
    comment = (body if isinstance(body, str) else " ".join(_adf_text(body))).strip() if body else ""
    versions = tuple(str(v["name"]) for v in fields.get("fixVersions") or [] if isinstance(v, Mapping) and v.get("name"))
    return TicketResolution(
        ticket=key, name=str(name) if name else None, status=status.get("name") if status else None,
        comment=comment[:2000] or None, fix_versions=versions[:20],
        user=_get(payload, "user.displayName", required=False) or _get(payload, "user.accountId", required=False))


def _adf_text(node: Any) -> list[str]:
    """The text of an Atlassian Document Format node, in order."""
    if isinstance(node, Mapping):
        own = [str(node["text"])] if isinstance(node.get("text"), str) else []
        return own + [t for child in node.get("content") or [] for t in _adf_text(child)]
    if isinstance(node, list):
        return [t for child in node for t in _adf_text(child)]
    return []


def normalise_pagerduty(payload: Mapping[str, Any], rules: WebhookRules) -> Normalised:
    """A PagerDuty v3 ``incident.triggered`` event -> an alert investigation (P1/P2 only)."""
    event_type = _get(payload, "event.event_type")
    if event_type != "incident.triggered":
        return Normalised(ignored=f"PagerDuty event {event_type!r} is not handled")
    incident = _get(payload, "event.data")
    incident_id = str(_get(incident, "id"))
    title = str(_get(incident, "title"))
    priority = _get(incident, "priority.summary", required=False)
    service = _get(incident, "service.summary", required=False)
    alert_id = f"pd-{_slug(incident_id)}"
    created = _iso_or_none(_get(incident, "created_at", required=False) or _get(payload, "event.occurred_at",
                                                                                  required=False))
    history: tuple[tuple[str, dict[str, Any]], ...] = ()
    if created:
        history = (("alert", {"id": alert_id, "ts": created, "source": "pagerduty", "service": service,
                              "severity": priority or incident.get("urgency"), "title": title, "labels": {}}),)
    if priority is None:
        # Accounts without incident priorities: a high-urgency incident counts as P2.
        priority = "P2" if incident.get("urgency") == "high" else None
    if priority not in rules.pagerduty_priorities:
        return Normalised(ignored=f"PagerDuty priority {priority} is not one of {', '.join(rules.pagerduty_priorities)}",
                          history=history)
    domain = rules.domain_for(service)
    request = InvestigationRequest(
        trigger={
            "alert": alert_id, "service": service, "title": title, "source": "pagerduty",
            "ts": _get(incident, "created_at", required=False) or _get(payload, "event.occurred_at", required=False),
            "url": incident.get("html_url"),
        },
        origin=Origin(kind="webhook", source="pagerduty", channel=rules.channel_for(domain)),
        mode=rules.mode,
        domain=domain,
        priority=priority if priority in ("P1", "P2", "P3") else "P2",
        fingerprint=f"pagerduty:{incident.get('incident_key') or incident_id}"[:128],
        requested_by="pagerduty",
        sources=dict(rules.sources),
        raw=dict(payload),
    )
    return Normalised(requests=(request,), history=history)


def _alert_priority(labels: Mapping[str, Any]) -> str:
    explicit = str(labels.get("priority", "")).upper()
    if explicit in ("P1", "P2", "P3"):
        return explicit
    return _SEVERITY_PRIORITY.get(str(labels.get("severity", "")).lower(), "P2")


def normalise_alert_group(source: str, payload: Mapping[str, Any], rules: WebhookRules) -> Normalised:
    """A Grafana or Alertmanager (v4) notification -> one investigation per firing alert."""
    alerts = _get(payload, "alerts")
    if not isinstance(alerts, list):
        raise PayloadError("alerts", "field 'alerts' must be a list of alerts")
    requests = []
    skipped = []
    history: list[tuple[str, dict[str, Any]]] = []
    for i, alert in enumerate(alerts):
        if not isinstance(alert, Mapping):
            raise PayloadError(f"alerts[{i}]", f"alerts[{i}] must be an object")
        if alert.get("status", "firing") != "firing":
            continue
        labels = _get(alert, "labels")
        name = str(_get(alert, "labels.alertname"))
        starts_at = str(_get(alert, "startsAt"))
        fp = str(alert.get("fingerprint") or _hash(json.dumps(labels, sort_keys=True)))
        service = labels.get("service") or labels.get("job") or labels.get("app")
        annotations = alert.get("annotations") or {}
        prefix = "am" if source == "alertmanager" else "gr"
        when = _iso_or_none(starts_at)
        if when and isinstance(labels, Mapping):
            history.append(("alert", {
                "id": f"{prefix}-{_slug(fp)}", "ts": when, "source": source,
                "service": str(service) if service is not None else None,
                "severity": str(labels["severity"]) if labels.get("severity") is not None else None,
                "title": str(annotations.get("summary") or name) if isinstance(annotations, Mapping) else name,
                "labels": {str(k): str(v) for k, v in labels.items()}}))
        if not any(fnmatch.fnmatchcase(name, p) for p in rules.alert_name_patterns):
            skipped.append(name)
            continue
        domain = rules.domain_for(service)
        requests.append(
            InvestigationRequest(
                trigger={
                    "alert": f"{prefix}-{_slug(fp)}", "service": service, "source": source, "ts": starts_at,
                    "title": annotations.get("summary") or name, "labels": dict(labels),
                    "url": alert.get("generatorURL"),
                },
                origin=Origin(kind="webhook", source=source, channel=rules.channel_for(domain)),
                mode=rules.mode,
                domain=domain,
                priority=_alert_priority(labels),
                fingerprint=f"{source}:{fp}"[:128],
                requested_by=source,
                sources=dict(rules.sources),
                raw=dict(alert),
            )
        )
    if not requests:
        why = f"alert names {sorted(set(skipped))} match no pattern" if skipped else "no firing alerts"
        return Normalised(ignored=why, history=tuple(history))
    return Normalised(requests=tuple(requests), history=tuple(history))


def normalise_deploy(payload: Mapping[str, Any], rules: WebhookRules) -> Normalised:
    """A deploy event -> a post-deploy health check request (production environments only)."""
    service = str(_get(payload, "service"))
    environment = str(_get(payload, "environment"))
    if environment not in rules.deploy_environments:
        return Normalised(ignored=f"environment {environment!r} is not one of {', '.join(rules.deploy_environments)}")
    deployed_at = payload.get("deployed_at") or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        datetime.fromisoformat(str(deployed_at).replace("Z", "+00:00"))
    except ValueError:
        raise PayloadError(
            "deployed_at", "field 'deployed_at' must be an ISO-8601 time, e.g. 2026-10-02T15:00:00Z"
        ) from None
    domain = payload.get("domain") or rules.domain_for(service)
    version = payload.get("version")
    change = {
        "id": str(payload.get("id") or "deploy-" + _hash(service, str(version), str(deployed_at))[:16]),
        "ts": _iso_or_none(str(deployed_at)), "kind": "deploy", "service": service,
        "author": str(payload.get("author") or payload.get("deployed_by") or "deploy webhook"),
        "summary": f"deploy {service} {version or ''}".strip(),
        "details": {k: payload.get(k) for k in ("version", "previous_version", "commit")} | {"environment": environment},
    }
    return Normalised(
        history=(("change", change),),
        deploy={
            "service": service, "environment": environment, "version": payload.get("version"),
            "deployed_at": str(deployed_at), "domain": domain, "channel": rules.channel_for(domain),
            "id": payload.get("id"), "sources": dict(rules.sources), "mode": rules.mode,
        }
    )


def _iso_or_none(value: Any) -> str | None:
    """An ISO-8601 time as UTC with Z, or None when it is not one."""
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    return parsed.strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(rec: Mapping[str, Any], key: str, where: str, *, required: bool, limit: int = 2000) -> str | None:
    value = rec.get(key)
    if value is None or value == "":
        if required:
            raise PayloadError(f"{where}.{key}", f"{where}: field '{key}' is required (a string)")
        return None
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise PayloadError(f"{where}.{key}", f"{where}: field '{key}' must be a string")
    text = str(value)
    if "\x00" in text:
        raise PayloadError(f"{where}.{key}", f"{where}: field '{key}' holds a NUL character; remove it")
    return text[:limit]


def normalise_change(payload: Mapping[str, Any]) -> Normalised:
    """``POST /webhooks/change``: change records in the world format's changes.jsonl shape, kept as history.

    The body is one record, a list of records, or ``{"changes": [...]}``: each ``{id, ts, kind, service,
    author?, summary?, details?}``; ``kind`` one of deploy, feature_flag, config, db_migration, infra.

    Raises:
        PayloadError: a record is malformed (the field is named), or more than MAX_CHANGES_PER_DELIVERY.
    """
    raw = payload.get("changes") if isinstance(payload.get("changes"), list) else [payload]
    if not raw:
        raise PayloadError("changes", "no change records; send one record or a list of them")
    if len(raw) > MAX_CHANGES_PER_DELIVERY:
        raise PayloadError("changes", f"{len(raw)} changes in one delivery; send at most {MAX_CHANGES_PER_DELIVERY}")
    history = []
    for i, rec in enumerate(raw):
        where = f"changes[{i}]"
        if not isinstance(rec, Mapping):
            raise PayloadError(where, f"{where} must be an object with id, ts, kind, service")
        change_id = _text(rec, "id", where, required=True, limit=200)
        when = _iso_or_none(rec.get("ts"))
        if when is None:
            raise PayloadError(f"{where}.ts", f"{where}: field 'ts' must be an ISO-8601 time, e.g. 2026-12-06T08:00:00Z")
        kind = rec.get("kind")
        if kind not in CHANGE_KINDS:
            raise PayloadError(f"{where}.kind", f"{where}: field 'kind' must be one of {', '.join(CHANGE_KINDS)}")
        details = rec.get("details")
        details = {} if details is None else details
        if not isinstance(details, Mapping):
            raise PayloadError(f"{where}.details", f"{where}: field 'details' must be an object")
        history.append(("change", {
            "id": change_id, "ts": when, "kind": kind, "service": _text(rec, "service", where, required=True, limit=200),
            "author": _text(rec, "author", where, required=False, limit=200),
            "summary": _text(rec, "summary", where, required=False) or "",
            "details": json.loads(json.dumps(details, default=str)),
        }))
    return Normalised(history=tuple(history))


def normalise(source: str, payload: Mapping[str, Any], rules: WebhookRules) -> Normalised:
    """Dispatch to the normaliser of ``source``.

    Raises:
        PayloadError: a field the source's payload must have is missing or malformed
            (:mod:`commands.webhook_schemas`); TooManyAlerts, a subclass, for too many alerts.
        BadRequest: unknown source.
    """
    validate(source, payload, max_alerts=rules.max_alerts)
    if source == "jira":
        return normalise_jira(payload, rules)
    if source == "pagerduty":
        return normalise_pagerduty(payload, rules)
    if source in ("grafana", "alertmanager"):
        return normalise_alert_group(source, payload, rules)
    if source == "deploy":
        return normalise_deploy(payload, rules)
    if source == "change":
        return normalise_change(payload)
    raise BadRequest(f"unknown webhook source {source!r}; use one of {', '.join(SOURCES)}")


def replay_reason(source: str, payload: Mapping[str, Any], *, now: datetime, window_s: float) -> str | None:
    """Why a validated PagerDuty or Jira delivery is too old (or too far ahead) to act on, else None.

    A correctly signed body stays correctly signed forever; its own time is what tells a replay
    from a delivery (PagerDuty ``event.occurred_at``, Jira ``timestamp`` in ms). Only incident
    events that would be acted on carry a checked time (others are ignored anyway).
    """
    when: datetime | None = None
    name = ""
    if source == "pagerduty":
        raw = _get(payload, "event.occurred_at", required=False)
        name = "event.occurred_at"
        if isinstance(raw, str) and _iso_or_none(raw):
            when = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
            when = when.replace(tzinfo=UTC) if when.tzinfo is None else when
    elif source == "jira":
        raw = payload.get("timestamp")
        name = "timestamp"
        if isinstance(raw, int) and not isinstance(raw, bool):
            try:
                when = datetime.fromtimestamp(raw / 1000, UTC)
            except (OverflowError, OSError, ValueError):
                return f"{name} {raw} is not a time; refusing it as a replay"
    if when is None:
        return None
    age_s = (now - when).total_seconds()
    if abs(age_s) <= window_s:
        return None
    ago = f"{age_s / 3600:.1f} h ago" if age_s > 0 else f"{-age_s / 3600:.1f} h ahead"
    return (f"{name} {when.strftime('%Y-%m-%dT%H:%M:%SZ')} is {ago}, outside the {window_s:.0f} s replay window "
            "(PM_WEBHOOK_REPLAY_WINDOW_S); not acted on")


def delivery_key(source: str, payload: Mapping[str, Any], headers: Mapping[str, str], body: bytes) -> str:
    """The id that makes a redelivery of the same event recognisable.

    Jira: a hash of the body's content (not ``X-Atlassian-Webhook-Identifier``: a signed body
    resent with a fresh identifier is the same event, and Jira's own retries resend the same body;
    the body's ``timestamp`` differs between two real events, and bodies older than the replay
    window are refused before they get here). PagerDuty: the event id; Grafana/Alertmanager:
    the group key plus each alert's fingerprint and start; deploy: the ``id`` field or an
    ``X-Delivery-Id`` header. Anything else falls back to a hash of the body.
    """
    key: str | None = None
    if source == "jira":
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
    if source == "pagerduty":
        key = _get(payload, "event.id", required=False)
    elif source in ("grafana", "alertmanager"):
        alerts: list[Any] = payload["alerts"] if isinstance(payload.get("alerts"), list) else []
        parts = sorted(
            f"{a.get('fingerprint')}@{a.get('startsAt')}:{a.get('status')}" for a in alerts if isinstance(a, Mapping)
        )
        key = _hash(str(payload.get("groupKey")), *parts)
    elif source == "deploy":
        key = payload.get("id") or headers.get("x-delivery-id")
    elif source == "change":
        key = headers.get("x-delivery-id")
    return str(key)[:200] if key else "sha256:" + hashlib.sha256(body).hexdigest()


# -- persisting and processing deliveries --------------------------------------------------------------

# start() checks for an open investigation and then creates one; two threads with the same
# fingerprint in between would both create. Serialise per fingerprint within this process.
_LOCKS = [threading.Lock() for _ in range(64)]


def _lock_for(fingerprint: str | None) -> threading.Lock:
    return _LOCKS[int(hashlib.md5((fingerprint or "").encode()).hexdigest(), 16) % len(_LOCKS)]


@dataclass(frozen=True)
class Accepted:
    """A stored delivery: its row id and whether it had been received before."""

    delivery_id: int
    duplicate: bool
    status: str


def process(*, runtime: Any, delivery_id: int, rules: WebhookRules, deploy_scheduler: Any = None) -> dict[str, Any]:
    """Turn a stored delivery into investigations (or a scheduled deploy check) and mark it done.

    Safe to call again for a row that was accepted but not finished: ``start`` attaches a
    repeat to the investigation the first attempt opened (same fingerprint).

    Args:
        runtime: the pipeline runtime (``session()``, ``enqueue``).
        delivery_id: the InboundDelivery row.
        rules: filters and routing.
        deploy_scheduler: ``callable(deploy: dict) -> None`` that schedules the post-deploy check.

    Returns:
        ``{"status", "investigations": [{"id", "created"}], "ignored"?: reason}``.
    """
    with runtime.session() as session:
        row = session.get(InboundDelivery, delivery_id)
        if row is None:
            raise BadRequest(f"no inbound delivery {delivery_id}; nothing to process")
        source, payload, status = row.source, dict(row.payload), row.status
    if status in ("processed", "ignored", "scheduled", "recorded"):
        return {"status": status, "investigations": []}
    result = normalise(source, payload, rules)
    started: list[StartResult] = []
    if result.history:
        _keep_history(runtime, result)
    resolved: str | None = None
    if result.deploy is not None:
        if deploy_scheduler is None:
            raise BadRequest("no deploy scheduler configured; run the listener through bot.http.create_app")
        deploy_scheduler(result.deploy)
        status = "scheduled"
    elif result.resolution is not None:
        fed = on_ticket_resolution(runtime=runtime, resolution=result.resolution)
        resolved = fed["investigation_id"] if fed else None
        status = "recorded" if fed else "ignored"
        if fed is None:
            result = Normalised(ignored=f"no finished investigation was published to {result.resolution.ticket}")
    elif result.requests:
        refused = None
        for request in result.requests:
            with _lock_for(request.fingerprint):
                try:
                    started.append(start(runtime=runtime, request=request))
                except (BudgetStopped, UnknownTrigger) as exc:
                    # kept as "refused" with why (a budget: an admin approves, the sender retries; an
                    # alert id no source knows and the body did not date: nothing to investigate)
                    refused = str(exc)
                    log.warning("webhook delivery %s not started: %s", delivery_id, exc)
        status = "refused" if refused and not started else "processed"
    else:
        status = "recorded" if source == "change" else "ignored"
    with runtime.session() as session:
        row = session.get(InboundDelivery, delivery_id)
        row.status = status
        if started:
            row.investigation_id = started[0].investigation_id
        elif resolved:
            row.investigation_id = resolved
        session.commit()
    out: dict[str, Any] = {
        "status": status,
        "investigations": [{"id": s.investigation_id, "created": s.created} for s in started],
    }
    if result.ignored:
        out["ignored"] = result.ignored
    return out


def _keep_history(runtime: Any, result: Normalised) -> None:
    with runtime.session() as session:
        _history_in(session, result)
        session.commit()


def _history_in(session: Session, result: Normalised) -> None:
    """Keep a delivery's alerts and changes in ``source_events`` (the caller commits)."""
    for kind in events.KINDS:
        events.record(session=session, kind=kind, records=[r for k, r in result.history if k == kind])


#: Default of PM_WEBHOOK_MAX_ATTEMPTS: failed processing attempts before a stored delivery is dead-lettered.
MAX_ATTEMPTS = 5


def record_failure(*, runtime: Any, delivery_id: int, error: BaseException, max_attempts: int = MAX_ATTEMPTS) -> str:
    """Count a failed processing attempt of a stored delivery; ``dead`` after ``max_attempts``.

    Returns:
        The row's status afterwards (``accepted``: retry it later; ``dead``: parked).
    """
    line = (str(error).strip().splitlines() or [""])[0]
    with runtime.session() as session:
        status, attempts, source = inbound.record_failure(session=session, delivery_id=delivery_id,
                                                  error=f"{type(error).__name__}: {line}"[:300],
                                                  max_attempts=max_attempts)
        session.commit()
    if status == inbound.DEAD:
        metrics.WEBHOOK_DEAD.labels(source=source).inc()
        log.error("webhook delivery %s dead-lettered after %d failed attempts (%s); fix the cause, then run "
                  "`pm deliveries retry`", delivery_id, attempts, type(error).__name__)
    return status


def resume_pending(*, runtime: Any, rules: WebhookRules, deploy_scheduler: Any = None,
                   max_attempts: int = MAX_ATTEMPTS) -> int:
    """Process every delivery that was accepted but never finished (e.g. the listener crashed).

    A delivery whose processing raises is counted (:func:`record_failure`) and dead-lettered after
    ``max_attempts`` failures, so a row that cannot be processed stops being retried at every start.

    Returns:
        How many deliveries were processed.
    """
    with runtime.session() as session:
        ids = list(
            session.execute(
                select(InboundDelivery.id)
                .where(InboundDelivery.status == "accepted", InboundDelivery.source.in_(SOURCES))
                .order_by(InboundDelivery.id)
            ).scalars()
        )
    for delivery_id in ids:
        try:
            process(runtime=runtime, delivery_id=delivery_id, rules=rules, deploy_scheduler=deploy_scheduler)
        except PayloadError:
            # Only rows stored by an older listener can fail here (new ones are validated before
            # storing); park them instead of retrying forever.
            _mark(runtime, delivery_id, "failed")
        except Exception as exc:  # the database or a bug: count it, dead-letter it after max_attempts
            log.exception("processing webhook delivery %s failed", delivery_id)
            record_failure(runtime=runtime, delivery_id=delivery_id, error=exc, max_attempts=max_attempts)
    return len(ids)


def _mark(runtime: Any, delivery_id: int, status: str) -> None:
    with runtime.session() as session:
        row = session.get(InboundDelivery, delivery_id)
        if row is not None:
            row.status = status
            session.commit()


# -- the listener's batched path: one transaction for many deliveries ------------------------------------

#: A delivery to store: (source, delivery key, payload).
Incoming = tuple[str, str, Mapping[str, Any]]


def _insert_ignoring_conflicts(session: Session):  # noqa: ANN202 - a dialect-specific Insert
    """``INSERT ... ON CONFLICT DO NOTHING`` for the session's database (SQLite or PostgreSQL).

    Both dialects spell it the same way (SQLite >= 3.24, PostgreSQL >= 9.5), and both return
    only the rows actually inserted from ``RETURNING`` (SQLite >= 3.35), which is what tells a new
    delivery from a replay without a SELECT per delivery.
    """
    dialect = session.get_bind().dialect.name
    module = {"sqlite": sqlite, "postgresql": postgresql}.get(dialect)
    if module is None:
        raise BadRequest(f"database dialect {dialect!r} is not supported; use SQLite or PostgreSQL")
    # The Core table, not the mapped class: an ORM-enabled bulk INSERT costs more Python per row.
    table = InboundDelivery.__table__
    return module.insert(table).on_conflict_do_nothing(index_elements=[table.c.source, table.c.delivery_key])


def accept_many(*, session: Session, deliveries: list[Incoming]) -> list[Accepted]:
    """Store many deliveries in the session's transaction; replays (same source and key) keep their row.

    The caller commits; the deliveries are persisted only then (and only then may it answer 2xx).
    One multi-row INSERT plus, when there are replays, one SELECT: the cost of a batch hardly grows
    with its size, which is what lets the listener commit concurrent requests together.

    Args:
        session: the session whose transaction holds the inserts.
        deliveries: ``(source, key, payload)`` in arrival order; a key may repeat within the batch.

    Returns:
        One :class:`Accepted` per delivery, in order. The first occurrence of a new key is
        ``duplicate=False``; later ones in the batch and keys stored earlier are ``duplicate=True``.
    """
    if not deliveries:
        return []
    now = utcnow()
    unique: dict[tuple[str, str], Mapping[str, Any]] = {}
    for source, key, payload in deliveries:
        unique.setdefault((source, key), payload)
    rows = [
        {"source": s, "delivery_key": k, "payload": dict(p), "status": "accepted", "received_at": now}
        for (s, k), p in unique.items()
    ]
    columns = InboundDelivery.__table__.c
    stmt = _insert_ignoring_conflicts(session).values(rows).returning(columns.id, columns.source, columns.delivery_key)
    inserted = {(s, k): i for i, s, k in session.execute(stmt)}
    known: dict[tuple[str, str], tuple[int, str]] = {pair: (i, "accepted") for pair, i in inserted.items()}
    replays = [pair for pair in unique if pair not in inserted]
    if replays:
        found = session.execute(
            select(InboundDelivery.id, InboundDelivery.source, InboundDelivery.delivery_key, InboundDelivery.status)
            .where(tuple_(InboundDelivery.source, InboundDelivery.delivery_key).in_(replays))
        )
        known.update({(s, k): (i, st) for i, s, k, st in found})
    out = []
    fresh = set(inserted)
    for source, key, _payload in deliveries:
        delivery_id, status = known[(source, key)]
        out.append(Accepted(delivery_id, duplicate=(source, key) not in fresh, status=status))
        fresh.discard((source, key))
    return out


def _start_in(
    session: Session, request: InvestigationRequest, open_by_fp: dict[str, str], attached: list[Any]
) -> StartResult:
    """:func:`commands.investigate.open_or_attach` for a batch: ``attached`` events are collected
    for the caller to append in bulk; ``open_by_fp`` holds the batch's open investigations."""
    result, attach = open_or_attach(session=session, request=request, open_by_fp=open_by_fp)
    if attach is not None:
        attached.append((result.investigation_id, "attached", attach))
    return result


def process_many(
    *, runtime: Any, delivery_ids: list[int], rules: WebhookRules, deploy_scheduler: Any = None
) -> dict[int, str]:
    """Process many stored deliveries in one transaction, then enqueue what it opened.

    Equivalent to :func:`process` for each id, at a fraction of the commits. Rows already finished
    are skipped; a row whose stored payload no longer normalises is marked ``failed``; deploy
    deliveries go through :func:`process` one by one after the commit (they schedule a message,
    which must not be sent for a transaction that could still roll back and be retried), and so do
    Jira resolutions (feedback written in its own transaction, then to the knowledge base).

    Raises:
        Exception: whatever the database raised; nothing of the batch is then committed (the
            caller may retry the ids one by one with :func:`process` to isolate a bad row).

    Returns:
        delivery id -> its status afterwards (ids not found are left out).
    """
    statuses: dict[int, str] = {}
    created: list[tuple[str, str]] = []
    later: list[int] = []  # deploy checks and Jira resolutions: process() each after the commit
    with runtime.session() as session:
        rows = session.execute(
            select(InboundDelivery).where(InboundDelivery.id.in_(delivery_ids)).order_by(InboundDelivery.id)
        ).scalars()
        todo: list[tuple[InboundDelivery, Normalised]] = []
        for row in rows:
            if row.status != "accepted":
                statuses[row.id] = row.status
                continue
            try:
                result = normalise(row.source, row.payload, rules)
            except PayloadError:
                row.status = statuses[row.id] = "failed"  # stored by an older, laxer listener: do not retry
                continue
            if result.deploy is not None or result.resolution is not None:
                later.append(row.id)
            else:
                _history_in(session, result)
                todo.append((row, result))
        fingerprints = {r.fingerprint for _row, result in todo for r in result.requests if r.fingerprint}
        open_by_fp = open_by_fingerprint(session, fingerprints)
        attached: list[Any] = []
        for row, result in todo:
            started = []
            refused = None
            for request in result.requests:
                try:
                    outcome = _start_in(session, request, open_by_fp, attached)
                except BudgetStopped as exc:  # the gate refused before writing anything: the batch goes on
                    refused = str(exc)
                    log.warning("webhook delivery %s not started: %s", row.id, exc)
                    continue
                started.append(outcome)
                if outcome.created:
                    created.append((outcome.investigation_id, request.priority))
            row.status = statuses[row.id] = "processed" if started else ("refused" if refused else (
                "recorded" if row.source == "change" else "ignored"))
            if started:
                row.investigation_id = started[0].investigation_id
        # In order, after every "created" of this chunk: each investigation's events keep their order.
        outbox.append_many(session=session, events=attached)
        session.commit()
    # After the commit, as start() does: a worker must find the investigation it is sent.
    for investigation_id, priority in created:
        runtime.enqueue(investigation_id, priority=priority)
    for delivery_id in later:
        statuses[delivery_id] = process(
            runtime=runtime, delivery_id=delivery_id, rules=rules, deploy_scheduler=deploy_scheduler
        )["status"]
    return statuses
