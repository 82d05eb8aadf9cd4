"""Processes stored webhook deliveries on one background thread, so the HTTP answer waits only for
the delivery's own commit (persist, then ack) and never for investigation bookkeeping.

One thread also means deliveries of the same fingerprint are never processed concurrently in this
process (start() checks for an open investigation, then creates one).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from contextlib import AbstractContextManager
from typing import Any

from commands.webhooks import WebhookRules, process, resume_pending

log = logging.getLogger(__name__)
_RESUME = "resume"  # queue item: sweep rows an earlier process accepted but never processed


class DeliveryProcessor:
    """A daemon thread draining delivery ids through :func:`commands.webhooks.process`.

    Args:
        runtime: the pipeline runtime.
        rules: filters and routing.
        deploy_scheduler: queues post-deploy checks.
        write_lock: held while processing one delivery (see ListenerContext.write_lock).
    """

    def __init__(
        self, runtime: Any, rules: WebhookRules, deploy_scheduler: Any,
        write_lock: AbstractContextManager[Any] | None = None,
    ) -> None:
        self.runtime, self.rules, self.deploy_scheduler = runtime, rules, deploy_scheduler
        self.write_lock = write_lock or contextlib.nullcontext()
        self._queue: queue.Queue[int | str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="pm-webhook-processor", daemon=True)

    def start(self) -> DeliveryProcessor:
        """Finish what an earlier process left (rows still ``accepted``), then serve new ids."""
        self._queue.put(_RESUME)
        self._thread.start()
        return self

    def submit(self, delivery_id: int) -> None:
        """Process ``delivery_id`` soon (it is already committed)."""
        self._queue.put(delivery_id)

    def wait_idle(self, timeout_s: float = 60.0) -> None:
        """Block until every submitted id has been processed (tests and the bench use it).

        Raises:
            TimeoutError: still busy after ``timeout_s``.
        """
        done = threading.Event()
        threading.Thread(target=lambda: (self._queue.join(), done.set()), daemon=True).start()
        if not done.wait(timeout_s):
            raise TimeoutError(f"webhook processor still busy after {timeout_s:.0f}s")

    def stop(self, timeout_s: float = 30.0) -> None:
        """Process what is queued, then end the thread."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=timeout_s)

    def _resume(self) -> None:
        try:
            resumed = resume_pending(runtime=self.runtime, rules=self.rules, deploy_scheduler=self.deploy_scheduler)
            if resumed:
                log.info("resumed %d webhook deliveries left unprocessed", resumed)
        except Exception:  # the database may be briefly away; new deliveries still get processed
            log.exception("resuming unprocessed webhook deliveries failed")

    def _loop(self) -> None:
        while True:
            delivery_id = self._queue.get()
            try:
                if delivery_id is None:
                    return
                if delivery_id == _RESUME:
                    self._resume()
                    continue
                assert isinstance(delivery_id, int)
                with self.write_lock:
                    process(runtime=self.runtime, delivery_id=delivery_id, rules=self.rules,
                            deploy_scheduler=self.deploy_scheduler)
            except Exception:
                # The row stays "accepted": a redelivery or the next startup sweep finishes it.
                log.exception("processing webhook delivery %s failed", delivery_id)
            finally:
                self._queue.task_done()
