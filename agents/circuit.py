"""A per-server circuit breaker: stop calling a server that keeps failing, try again after a pause.

The classic closed -> open -> half-open cycle (Nygard, "Release It!", 2nd ed., ch. 5):
``failures`` consecutive failures open the circuit; after ``reset_s`` one trial call
is let through (half-open); its success closes the circuit, its failure re-opens it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class CircuitBreaker:
    """Count consecutive failures of one server and refuse calls while open.

    Args:
        failures: consecutive failures that open the circuit (>= 1).
        reset_s: seconds the circuit stays open before a trial call.
        clock: monotonic clock, injectable so the state machine can be driven in tests.
    """

    def __init__(self, failures: int = 5, reset_s: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self.failures = max(1, int(failures))
        self.reset_s = float(reset_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._count = 0
        self._opened_at: float | None = None
        self._trial = False

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half_open`` (open but due for a trial call)."""
        with self._lock:
            return self._state()

    def _state(self) -> str:
        if self._opened_at is None:
            return CLOSED
        return HALF_OPEN if self._clock() - self._opened_at >= self.reset_s else OPEN

    def allow(self) -> bool:
        """Return whether a call may go out now (in half-open, only one trial at a time)."""
        with self._lock:
            state = self._state()
            if state == CLOSED:
                return True
            if state == HALF_OPEN and not self._trial:
                self._trial = True
                return True
            return False

    def retry_in(self) -> float:
        """Seconds until the next trial call is allowed (0 when closed or due)."""
        with self._lock:
            if self._opened_at is None:
                return 0.0
            return max(0.0, self.reset_s - (self._clock() - self._opened_at))

    def record_success(self) -> None:
        """A call reached the server and got an answer: close the circuit."""
        with self._lock:
            self._count = 0
            self._opened_at = None
            self._trial = False

    def record_failure(self) -> None:
        """A call could not reach the server or timed out: count it, open the circuit at the threshold."""
        with self._lock:
            self._count += 1
            if self._trial or self._count >= self.failures:
                self._opened_at = self._clock()
            self._trial = False
