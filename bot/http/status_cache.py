"""An optional, short-lived cache of the admin API's status views (``PM_API_STATUS_CACHE_MS``, off by default).

Clients poll ``GET /api/v1/investigations/{id}``; when many poll the same investigations, most reads
answer what the previous read answered. With a bound of ``ttl_s`` seconds a read's answer is reused
for that long, measured from when the read was *sent* to the database, so an answer is never older than
``ttl_s`` + the read's own duration than the database (without the cache: the read's duration). Per
app process: replicas keep their own caches, so two replicas can answer states up to ``ttl_s`` apart
(a client switching replicas may see a state it already saw again within the bound).

Never cached: unknown ids (404; an investigation created a moment later is answered at once). Reads
this process's own writes invalidate: a DELETE forgets the entry and reads afresh. Authentication,
the role check and the rate limit run on every request before the cache is asked.

``elapsed_seconds`` of an unfinished investigation keeps running on a reused answer (it is the read's
value plus the time since the read), as it would on a fresh read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class StatusCache:
    """Status views of recently read investigations, each reused for at most ``ttl_s`` seconds.

    Args:
        ttl_s: how long a read's answer is reused (> 0).
        max_entries: entries kept at most; the least recently stored go first.
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(self, ttl_s: float, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be > 0; without a bound, do not make a cache")
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.clock = clock
        self._views: dict[str, tuple[float, dict[str, Any]]] = {}
        self.hits = 0
        self.misses = 0

    def get(self, investigation_id: str) -> dict[str, Any] | None:
        """The view a read sent less than ``ttl_s`` ago answered (a copy, ``elapsed_seconds`` brought up to
        now for an unfinished investigation), or None."""
        entry = self._views.get(investigation_id)
        if entry is None:
            self.misses += 1
            return None
        sent, view = entry
        age = self.clock() - sent
        if age >= self.ttl_s:
            del self._views[investigation_id]
            self.misses += 1
            return None
        self.hits += 1
        out = dict(view)
        if out.get("finished_at") is None and isinstance(out.get("elapsed_seconds"), int | float):
            out["elapsed_seconds"] = round(out["elapsed_seconds"] + age, 3)
        return out

    def put(self, investigation_id: str, view: dict[str, Any], sent: float) -> None:
        """Keep ``view``, read by a query sent at ``sent`` (this cache's clock)."""
        self._views.pop(investigation_id, None)
        self._views[investigation_id] = (sent, view)
        while len(self._views) > self.max_entries:
            del self._views[next(iter(self._views))]

    def forget(self, investigation_id: str) -> None:
        """Drop the entry (this process changed the investigation)."""
        self._views.pop(investigation_id, None)
