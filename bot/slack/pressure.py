"""Back-pressure from the ack path: background work steps aside while envelopes wait for their ack."""

from __future__ import annotations

import threading


class AckPressure:
    """Counts envelopes received but not yet acked, so background work can step aside for them.

    The bot's background threads (hand-off work, outbox lanes) share one GIL with the ack path.
    Under a burst they hold it most of the time (profiled with py-spy: ~85% of GIL samples
    were creating investigations and posting to Slack while 500 acks waited), and every wait
    for the GIL costs an ack up to the 5 ms switch interval per busy thread. Background work
    calls :meth:`wait_quiet` before each unit, which returns once no envelope is waiting for its
    ack, or after ``max_wait_s`` so a steady stream of envelopes cannot starve it.

    Args:
        max_wait_s: the longest a background unit defers to the acks.
    """

    def __init__(self, max_wait_s: float = 0.5) -> None:
        self.max_wait_s = max_wait_s
        self._cond = threading.Condition()
        self._pending = 0

    @property
    def pending(self) -> int:
        """Envelopes received and not yet acked."""
        return self._pending

    def arrived(self) -> None:
        """An envelope came off the socket (called on the socket's receiver thread)."""
        with self._cond:
            self._pending += 1

    def acked(self) -> None:
        """An envelope was acked (or dropped); wakes background work when none is left."""
        with self._cond:
            self._pending = max(0, self._pending - 1)
            if not self._pending:
                self._cond.notify_all()

    def wait_quiet(self, timeout: float | None = None) -> bool:
        """Block while envelopes wait for their ack, at most ``timeout`` (default ``max_wait_s``).

        Returns:
            True when no envelope was pending on return, False when the wait timed out.
        """
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending,
                                       self.max_wait_s if timeout is None else timeout)
