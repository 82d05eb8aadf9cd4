"""Drain the Slack outbox from the bot process: right after a start, and as a safety net.

The publish job runs on every progress event and re-schedules itself one second after a
429. A delivery whose Retry-After is longer than that (or that lands a moment after the
re-run) would otherwise wait for the investigation's next event, which after the final
report never comes; and a freshly created investigation has no event that wakes the
publish job until a worker picks it up. So this loop drains whenever it is poked (after a
listener's hand-off recorded something) and every ``interval_s`` anyway.

Each round is one :func:`pipeline.publishing.drain` of up to ``MAX_BATCH`` deliveries: one claim,
one read, one mark, and the Slack calls made by ``lanes`` threads at once. Order within an
investigation still holds: ``outbox.claim_pending`` claims at most one event per investigation
(its earliest undelivered one), so the calls of one round belong to different threads; and the
new threads of a round are all opened (parent messages) before any status message is posted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bot.slack import gate
from pipeline import publishing
from store import outbox

log = logging.getLogger(__name__)

#: The most deliveries one round claims (leased for outbox.DEFAULT_LEASE_S; ~1 s of Slack calls at 4 lanes).
MAX_BATCH = 500


class Sweeper(publishing.WakeLoop):
    """Background thread that drains ``sink`` in parallel lanes when poked or every ``interval_s``.

    Args:
        runtime: the pipeline runtime (``session()``, ``publishers``).
        sink: the outbox sink to drain.
        interval_s: the safety-net period.
        lanes: Slack calls made at once within a round (threads; no database connection each).
        periodic: also call this every ``period_s`` (the runner's replay of unfinished deliveries).
        pressure: an :class:`~bot.slack.pressure.AckPressure`; each lane steps aside while acks are due.
    """

    thread_name = "pm-slack-sweeper"
    join_s = 10.0

    def __init__(self, runtime: Any, sink: str = "slack", interval_s: float = 0.5, lanes: int = 4,
                 periodic: Callable[[], Any] | None = None, period_s: float = 30.0,
                 pressure: Any = None) -> None:
        self.pressure = pressure
        self.runtime, self.sink, self.interval_s = runtime, sink, interval_s
        self.lanes = lanes
        self.periodic, self.period_s = periodic, period_s
        self._pool = ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="pm-slack-drain",
                                        initializer=gate.join, initargs=("low",))
        super().__init__()

    def stop(self) -> None:
        super().stop()
        self._pool.shutdown(wait=True)

    def _loop(self) -> None:
        gate.join("low")  # this thread claims and marks (SQLite: the journal's commits go first)
        last_periodic = time.monotonic()
        while not self._stop.is_set():
            self._wake.wait(self.interval_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                if self.periodic and time.monotonic() - last_periodic >= self.period_s:
                    last_periodic = time.monotonic()
                    self.periodic()
                self.sweep()
            except Exception:  # noqa: BLE001 - keep sweeping; the next round retries
                log.exception("slack outbox sweep failed")

    def sweep(self) -> int:
        """Drain until nothing is due; returns how many deliveries were done."""
        publisher = self.runtime.publishers.get(self.sink)
        if publisher is None:
            return 0
        with self.runtime.session() as s:
            if not outbox.pending_count(session=s, sink=self.sink):
                return 0
        done = 0
        while not self._stop.is_set():
            if self.pressure is not None:
                self.pressure.wait_quiet()
            counts = publishing.drain(self.runtime, self.sink, publisher, MAX_BATCH, pool=self._pool)
            done += counts["done"]
            if counts["done"] + counts["failed"] == 0:
                return done
        return done
