"""Typed intake: what every webhook body must be before it is stored (issue #11, finding 4).

Three gates, cheapest first, each answering :class:`~commands.errors.PayloadError` naming the field:

1. :func:`check_depth` scans the raw bytes for bracket nesting deeper than :data:`MAX_DEPTH`
   *before* the JSON parser runs (the parser recurses once per level and a body nested 1,000 deep
   raised RecursionError -> 500).
2. :func:`check_strings` walks the parsed value for NUL characters and lone surrogates (PostgreSQL
   text cannot hold the first; the second cannot be encoded as UTF-8 and failed deep in storage).
   Both can only come from ``\\u`` escapes (json rejects raw control characters, and raw surrogate
   bytes are not UTF-8), so a body without ``\\u`` skips the walk.
3. One pydantic schema per source (:func:`validate`) types and bounds every field a normaliser
   reads: strings where strings are read, objects where ``.get`` is called, ISO-8601 times where
   times are kept, lengths everywhere. Vendors add fields freely, so unknown fields are allowed;
   they are stored only as ``raw`` and passed gates 1 and 2.

The cap on alerts per delivery (:class:`~commands.errors.TooManyAlerts`) is checked before the
schema, so a 3,000-alert body costs one ``len``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from itertools import accumulate
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from commands.errors import PayloadError, TooManyAlerts

#: Deepest nesting of objects and arrays a body may have.
MAX_DEPTH = 64
#: The Jira events that may start an investigation (others are ignored, so not typed further).
JIRA_EVENTS = ("jira:issue_created", "jira:issue_updated")

# A JSON string literal, unrolled so it runs in linear time (Friedl, "Mastering Regular
# Expressions", 6.6 "unrolling the loop"); possessive so an unterminated one cannot backtrack.
_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"', re.DOTALL)
# After the strings are gone: openers -> +1, closers -> -1 (0xff as a signed byte), the rest dropped.
_BRACKETS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[{]}")
_BAD_CHAR = re.compile("[\x00\ud800-\udfff]")


def check_depth(body: bytes, limit: int = MAX_DEPTH) -> None:
    """Refuse a body whose objects/arrays nest deeper than ``limit``, without parsing it.

    Brackets inside strings do not count. Linear in the body's size; runs in C but for the
    running sum (``itertools.accumulate`` over signed bytes).

    Raises:
        PayloadError: field ``body``.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return
    brackets = _STRING.sub(b"", body).translate(_BRACKETS, _NOT_BRACKETS)
    if brackets and max(accumulate(memoryview(brackets).cast("b"))) > limit:
        raise PayloadError("body", f"body nests objects/arrays deeper than {limit} levels; flatten it")


def check_strings(value: Any, body: bytes | None = None) -> None:
    """Refuse NUL characters and lone surrogates in any string or key of a parsed body.

    Args:
        value: the parsed JSON (at most :data:`MAX_DEPTH` deep: :func:`check_depth` ran first).
        body: the raw bytes; when given and free of ``\\u`` escapes the walk is skipped.

    Raises:
        PayloadError: naming the path of the first bad string, e.g. ``alerts[0].fingerprint``.
    """
    if body is not None and b"\\u" not in body:
        return
    path = _first_bad_string(value, "")
    if path is not None:
        where = path or "body"
        raise PayloadError(where, f"field {where!r} holds a NUL character or a lone UTF-16 surrogate (\\u0000, "
                                  "\\ud800-\\udfff); send valid Unicode text")


def _first_bad_string(value: Any, path: str) -> str | None:
    if isinstance(value, str):
        return path if _BAD_CHAR.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if _BAD_CHAR.search(key):
                return path or "body"
            found = _first_bad_string(item, here)
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _first_bad_string(item, f"{path}[{i}]")
            if found is not None:
                return found
    return None


# -- field types ---------------------------------------------------------------------------------------


def _iso_time(value: str) -> str:
    try:
        datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError("must be an ISO-8601 time, e.g. 2026-12-06T08:00:00Z") from None
    return value


def _no_control(value: str) -> str:
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError("must not hold control characters (newlines, tabs, ...)")
    return value


#: A name that becomes part of a fingerprint, an id or a routing key: one line, 1-200 characters.
Name = Annotated[StrictStr, Field(min_length=1, max_length=200), AfterValidator(_no_control)]
Short = Annotated[StrictStr, Field(max_length=1000)]
Long = Annotated[StrictStr, Field(max_length=20_000)]
Url = Annotated[StrictStr, Field(max_length=4096)]
IsoTime = Annotated[StrictStr, Field(min_length=1, max_length=64), AfterValidator(_iso_time)]
Labels = Annotated[dict[Annotated[StrictStr, Field(max_length=200)], Annotated[StrictStr, Field(max_length=4096)]],
                   Field(max_length=200)]
Annotations = Annotated[dict[Annotated[StrictStr, Field(max_length=200)], Long], Field(max_length=200)]


class _Open(BaseModel):
    """Vendors add fields over time: unknown ones are allowed (and only ever kept as ``raw``)."""

    model_config = ConfigDict(extra="allow", strict=True)


# -- Alertmanager webhook v4 and Grafana unified alerting ----------------------------------------------


class AlertIn(_Open):
    status: Literal["firing", "resolved"] = "firing"
    labels: Labels
    annotations: Annotations | None = None
    startsAt: IsoTime  # noqa: N815 - the vendor's field name
    endsAt: IsoTime | None = None  # noqa: N815
    fingerprint: Annotated[Name, Field(max_length=128)] | None = None
    generatorURL: Url | None = None  # noqa: N815


class AlertGroupIn(_Open):
    groupKey: Annotated[StrictStr, Field(max_length=4096)] | None = None  # noqa: N815
    alerts: list[AlertIn]


# -- PagerDuty v3 ----------------------------------------------------------------------------------------


class _PdEventType(_Open):
    event_type: Annotated[StrictStr, Field(min_length=1, max_length=128)]


class PdEnvelope(_Open):
    event: _PdEventType


class _PdReference(_Open):
    summary: Annotated[StrictStr, Field(max_length=1000)] | None = None


class PdIncident(_Open):
    id: Name
    title: Annotated[StrictStr, Field(min_length=1, max_length=1024)]
    html_url: Url | None = None
    incident_key: Short | None = None
    created_at: IsoTime | None = None
    urgency: Annotated[StrictStr, Field(max_length=32)] | None = None
    priority: _PdReference | None = None
    service: _PdReference | None = None


class _PdTriggeredEvent(_Open):
    event_type: StrictStr
    data: PdIncident
    occurred_at: IsoTime
    id: Name


class PdTriggered(_Open):
    event: _PdTriggeredEvent


# -- Jira ----------------------------------------------------------------------------------------------


class JiraEnvelope(_Open):
    webhookEvent: Annotated[StrictStr, Field(min_length=1, max_length=128)]  # noqa: N815


class _JiraProject(_Open):
    key: Annotated[StrictStr, Field(max_length=64), AfterValidator(_no_control)] | None = None


class _JiraPriority(_Open):
    name: Annotated[StrictStr, Field(max_length=128)] | None = None


_JiraName = Annotated[StrictStr, Field(max_length=255)]


class _JiraNamed(_Open):
    name: _JiraName | None = None


class _JiraStatusCategory(_Open):
    key: Annotated[StrictStr, Field(max_length=64)] | None = None


class _JiraStatus(_Open):
    name: _JiraName | None = None
    statusCategory: _JiraStatusCategory | None = None  # noqa: N815


class _JiraFields(_Open):
    project: _JiraProject | None = None
    labels: Annotated[list[Annotated[StrictStr, Field(max_length=255)]], Field(max_length=500)] | None = None
    priority: _JiraPriority | None = None
    # read when a ticket is resolved (feedback on its investigation)
    resolution: _JiraNamed | None = None
    status: _JiraStatus | None = None
    fixVersions: Annotated[list[_JiraNamed], Field(max_length=200)] | None = None  # noqa: N815


class _JiraChangeItem(_Open):
    field: Annotated[StrictStr, Field(max_length=255)] | None = None
    toString: Annotated[StrictStr, Field(max_length=1000)] | None = None  # noqa: N815


class _JiraChangelog(_Open):
    items: Annotated[list[_JiraChangeItem], Field(max_length=500)] | None = None


class _JiraComment(_Open):
    # Jira Cloud sends wiki text (REST v2); an Atlassian Document (v3) is an object, read for its text.
    body: Annotated[StrictStr, Field(max_length=100_000)] | dict[str, Any] | None = None


class _JiraIssue(_Open):
    key: Annotated[StrictStr, Field(max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_]*-[0-9]{1,18}$")]
    fields: _JiraFields | None = None


class _JiraUser(_Open):
    accountId: Annotated[StrictStr, Field(max_length=128)] | None = None  # noqa: N815
    displayName: Annotated[StrictStr, Field(max_length=255)] | None = None  # noqa: N815


class JiraIssueEvent(_Open):
    issue: _JiraIssue
    user: _JiraUser | None = None
    changelog: _JiraChangelog | None = None
    comment: _JiraComment | None = None
    #: Milliseconds since the epoch, when Jira sent it (the replay window is checked against it).
    timestamp: Annotated[StrictInt, Field(ge=0, le=10**15)]


# -- our deploy hook --------------------------------------------------------------------------------------

_Version = Annotated[StrictStr, Field(max_length=200)] | StrictInt


class DeployIn(_Open):
    service: Name
    environment: Annotated[Name, Field(max_length=64)]
    version: _Version | None = None
    previous_version: _Version | None = None
    commit: Annotated[StrictStr, Field(max_length=200)] | None = None
    deployed_at: IsoTime | None = None
    id: Name | None = None
    domain: Name | None = None
    author: Short | None = None
    deployed_by: Short | None = None


# -- validation ----------------------------------------------------------------------------------------


def _path(loc: tuple[int | str, ...], prefix: str = "") -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("str", "int", "function-after[_no_control(), str]") or "[" in str(part) and "]" in str(part):
            continue  # union branch names pydantic puts in the location
        else:
            out = f"{out}.{part}" if out else str(part)
    return out or "body"


def _check(model: type[BaseModel], data: Any, prefix: str = "") -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        field = _path(tuple(err["loc"]), prefix)
        if err["type"] == "missing":
            raise PayloadError(field, f"missing field {field!r}; the payload does not look like this source's") from None
        raise PayloadError(field, f"field {field!r}: {err['msg']}") from None


def validate(source: str, payload: Mapping[str, Any], *, max_alerts: int) -> None:
    """Check ``payload`` against the schema of ``source`` (the parts its normaliser reads).

    Args:
        source: ``jira`` | ``pagerduty`` | ``grafana`` | ``alertmanager`` | ``deploy`` | ``change``.
        payload: the parsed body (already through :func:`check_depth` and :func:`check_strings`).
        max_alerts: most alerts one Grafana/Alertmanager delivery may carry.

    Raises:
        PayloadError: naming the first bad field (``alerts[3].labels.service``).
        TooManyAlerts: more than ``max_alerts`` alerts.
    """
    if source in ("grafana", "alertmanager"):
        alerts = payload.get("alerts")
        if isinstance(alerts, list) and len(alerts) > max_alerts:
            raise TooManyAlerts(len(alerts), max_alerts)
        group = _check(AlertGroupIn, payload)
        for i, alert in enumerate(group.alerts):  # type: ignore[attr-defined]
            if not alert.labels.get("alertname"):
                field = f"alerts[{i}].labels.alertname"
                raise PayloadError(field, f"missing field {field!r}; every alert needs an alertname label")
    elif source == "pagerduty":
        envelope = _check(PdEnvelope, payload)
        if envelope.event.event_type == "incident.triggered":  # type: ignore[attr-defined]
            _check(PdTriggered, payload)
    elif source == "jira":
        if _check(JiraEnvelope, payload).webhookEvent in JIRA_EVENTS:  # type: ignore[attr-defined]
            _check(JiraIssueEvent, payload)
    elif source == "deploy":
        _check(DeployIn, payload)
