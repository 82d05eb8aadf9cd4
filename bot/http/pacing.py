"""How much of the listener's database thread processing may take while deliveries pour in.

The thread that stores deliveries also turns them into investigations. Storing answers a waiting
sender; processing does not, and costs several times more per delivery (an ``attached`` event is
five statements). While requests keep arriving, processing therefore gets a bounded share of the
time, in chunks short enough that a request arriving meanwhile waits little; once intake has been
quiet for a moment, processing runs flat out to drain the backlog. Every chunk processes at least
one delivery, so processing never starves, and it takes stored deliveries oldest first.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Pacer:
    """Decides when the next processing chunk may run and for about how long.

    Attributes:
        share: the fraction of time processing may take while intake is busy (0 < share <= 1).
        busy_chunk_s: about how long one chunk may take while intake is busy.
        idle_chunk_s: about how long one chunk may take once intake is quiet.
        quiet_s: intake counts as quiet when no delivery was stored for this long.
    """

    share: float = 0.25
    busy_chunk_s: float = 0.008
    idle_chunk_s: float = 0.05
    quiet_s: float = 0.1
    _last_intake: float = float("-inf")
    _not_before: float = float("-inf")

    def __post_init__(self) -> None:
        if not 0 < self.share <= 1:
            raise ValueError(f"processing share {self.share} must be in (0, 1]")

    def intake(self, now: float) -> None:
        """Deliveries were stored at ``now``."""
        self._last_intake = now

    def next_chunk(self, now: float) -> tuple[float, float]:
        """``(budget_s, 0)`` when a chunk may run now, else ``(0, seconds to wait)``."""
        if now - self._last_intake >= self.quiet_s:
            return self.idle_chunk_s, 0.0
        if now >= self._not_before:
            return self.busy_chunk_s, 0.0
        return 0.0, self._not_before - now

    def ran(self, now: float, elapsed_s: float) -> None:
        """A chunk ended at ``now`` after ``elapsed_s``: while busy, rest so the share holds."""
        # A chunk of t followed by a rest of t * (1/share - 1) uses exactly ``share`` of the time.
        self._not_before = now + elapsed_s * (1 / self.share - 1)
