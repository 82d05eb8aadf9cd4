"""The in-process scheduler of the embedded mode: runs the scheduled jobs at their intervals.

In a cluster, Kubernetes CronJobs call ``pm schedule run <job>`` instead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

# job -> seconds between runs (the design's hourly / daily / weekly).
INTERVALS: Mapping[str, float] = {
    "health-check": 3600.0,
    "stale-ticket-review": 86400.0,
    "knowledge-update": 7 * 86400.0,
}


class Scheduler:
    """A daemon thread that calls ``run(job)`` every interval (the first run after one interval).

    Args:
        run: runs one job by name; exceptions are logged, never kill the thread.
        intervals: job -> seconds.
    """

    def __init__(self, run: Callable[[str], object], intervals: Mapping[str, float] = INTERVALS) -> None:
        self._run = run
        self._intervals = dict(intervals)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pm-scheduler", daemon=True)

    def start(self) -> Scheduler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        import time

        due = {job: time.monotonic() + every for job, every in self._intervals.items()}
        while not self._stop.is_set():
            now = time.monotonic()
            for job, at in due.items():
                if now >= at:
                    try:
                        log.info("scheduled job %s: %s", job, self._run(job))
                    except Exception:  # a failing job must not stop the others
                        log.exception("scheduled job %s failed", job)
                    due[job] = now + self._intervals[job]
            self._stop.wait(min(1.0, max(0.0, min(due.values()) - time.monotonic())))
