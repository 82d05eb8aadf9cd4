"""The one request type every front door normalises into.

A Slack command, a reaction, a Jira webhook, an alert or the CLI all become an
:class:`InvestigationRequest` carrying its :class:`Origin`; downstream code never
sees vendor payloads except as the untouched ``raw`` field.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from commands.errors import BadRequest

MODES = ("fast", "balanced", "deep")
PRIORITIES = ("P1", "P2", "P3")
ORIGIN_KINDS = ("cli", "slack", "jira", "webhook", "schedule", "api")


@dataclass(frozen=True)
class Origin:
    """Where a request came from, and so where its progress and report go."""

    kind: str
    channel: str | None = None
    thread_ts: str | None = None
    message_ts: str | None = None
    user: str | None = None
    jira_key: str | None = None
    source: str | None = None
    #: an API caller's callback_url (SSRF-checked): the final report, or the failure, is POSTed there
    callback_url: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ORIGIN_KINDS:
            raise BadRequest(f"origin kind {self.kind!r} is unknown; use one of {', '.join(ORIGIN_KINDS)}")

    def to_dict(self) -> dict[str, Any]:
        """The origin without empty fields, as stored on the investigation."""
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class InvestigationRequest:
    """A normalised ask to investigate something."""

    trigger: dict[str, Any]
    origin: Origin
    mode: str = "balanced"
    domain: str | None = None
    priority: str = "P2"
    fingerprint: str | None = None
    requested_by: str | None = None
    sources: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        kinds = [k for k in ("ticket", "alert", "text") if self.trigger.get(k)]
        if len(kinds) != 1:
            raise BadRequest("a trigger needs exactly one of: a ticket key, an alert id, or a text")
        if self.mode not in MODES:
            raise BadRequest(f"mode {self.mode!r} is unknown; use one of {', '.join(MODES)}")
        if self.priority not in PRIORITIES:
            raise BadRequest(f"priority {self.priority!r} is unknown; use one of {', '.join(PRIORITIES)}")

    @property
    def trigger_kind(self) -> str:
        return next(k for k in ("ticket", "alert", "text") if self.trigger.get(k))
