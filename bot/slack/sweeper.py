"""A small loop that drains the Slack outbox while deliveries are pending.

The publish job runs on every progress event and re-schedules itself one second after a
429. A delivery whose Retry-After is longer than that (or that lands a moment after the
re-run) would otherwise wait for the investigation's next event, which after the final
report never comes. This loop is the safety net: every ``interval_s`` it drains when
something is pending for the sink.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from store import outbox

log = logging.getLogger(__name__)


class Sweeper:
    """Background thread: ``runtime.publish_now()`` whenever ``sink`` has pending deliveries."""

    def __init__(self, runtime: Any, sink: str = "slack", interval_s: float = 0.5) -> None:
        self.runtime, self.sink, self.interval_s = runtime, sink, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pm-slack-sweeper", daemon=True)

    def start(self) -> Sweeper:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                with self.runtime.session() as s:
                    pending = outbox.pending_count(session=s, sink=self.sink)
                if pending:
                    self.runtime.publish_now()
            except Exception:  # noqa: BLE001 - keep sweeping; the next round retries
                log.exception("slack outbox sweep failed")
