"""Shared by the change providers (github, git, kubernetes): the query window and the filters.

``changes.list(service?, kind?, start?, end?)`` is answered the same way by each: the window is
half-open ``[start, end)``; a missing ``end`` is now and a missing ``start`` is ``end`` minus the
sources file's look-back; results are sorted by time and shaped like the world format's
``changes.jsonl`` records.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sandbox.args import opt_str, opt_time
from sandbox.errors import ToolArgumentError

CAP = "changes.list"

#: The kinds of change the contract knows.
CHANGE_KINDS = ("deploy", "feature_flag", "config", "db_migration", "infra")


@dataclass(frozen=True)
class ChangeQuery:
    """One ``changes.list`` call's arguments, checked.

    Attributes:
        service: only changes of this (mapped) service, or None.
        kind: only changes of this kind, or None.
        start, end: the half-open window in epoch seconds.
    """

    service: str | None
    kind: str | None
    start: float
    end: float

    def wants(self, service: str | None, kind: str) -> bool:
        """Whether a change of ``service`` and ``kind`` passes the service and kind filters."""
        return (self.service is None or service == self.service) and (self.kind is None or kind == self.kind)

    def wants_kind(self, kind: str) -> bool:
        """Whether changes of ``kind`` can pass at all (so a provider may skip asking its source)."""
        return self.kind is None or self.kind == kind

    def holds(self, ts: float) -> bool:
        """Whether ``ts`` is inside the half-open window."""
        return self.start <= ts < self.end


def change_query(lookback_s: float, service: Any = None, kind: Any = None, start: Any = None,
                 end: Any = None) -> ChangeQuery:
    """Check ``changes.list``'s arguments.

    Args:
        lookback_s: the window's length when ``start`` is not given (the sources file's look-back).

    Raises:
        ToolArgumentError: a bad argument (the message says what to pass).
    """
    service, kind = opt_str(CAP, "service", service), opt_str(CAP, "kind", kind)
    if kind is not None and kind not in CHANGE_KINDS:
        raise ToolArgumentError(f"{CAP}: 'kind' {kind!r} unknown; use one of {', '.join(CHANGE_KINDS)}")
    t1 = opt_time(CAP, "end", end)
    t1 = time.time() if t1 is None else t1
    t0 = opt_time(CAP, "start", start)
    t0 = t1 - lookback_s if t0 is None else t0
    if t0 > t1:
        raise ToolArgumentError(f"{CAP}: 'start' is after 'end'; pass start <= end")
    return ChangeQuery(service, kind, t0, t1)


def epoch(value: Any) -> float | None:
    """Epoch seconds of a vendor timestamp: a ``datetime`` (naive = UTC) or an ISO-8601 string; None if neither."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    return None


def sort_changes(changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Changes by time, then id (so equal times come back in a stable order)."""
    return sorted(changes, key=lambda c: (c["ts"], c["id"]))
