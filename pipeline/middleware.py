"""Cross-cutting job behaviour as Dramatiq middleware (STYLE habit 7): correlation ids,
timing, and database session cleanup."""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from dramatiq.middleware import Middleware

#: The investigation the current job works on; log records carry it (see CorrelationFilter).
current_investigation: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "current_investigation", default=None
)
#: The correlation id of the current job (its message id) or HTTP request (see pipeline/logs.py).
current_correlation: contextvars.ContextVar[str | None] = contextvars.ContextVar("current_correlation", default=None)
log = logging.getLogger("pipeline.jobs")


class CorrelationFilter(logging.Filter):
    """Adds ``investigation_id`` to every log record (``-`` outside a job)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.investigation_id = current_investigation.get() or "-"
        return True


class CorrelationId(Middleware):
    """Sets :data:`current_investigation` from the message's first argument for the job's duration."""

    def __init__(self) -> None:
        self._tokens = threading.local()

    def before_process_message(self, broker, message) -> None:  # noqa: ANN001
        inv = message.args[0] if message.args else None
        self._tokens.token = current_investigation.set(inv if isinstance(inv, str) else None)
        self._tokens.correlation = current_correlation.set(message.message_id)

    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:  # noqa: ANN001
        token = getattr(self._tokens, "token", None)
        if token is not None:
            current_investigation.reset(token)
            self._tokens.token = None
        correlation = getattr(self._tokens, "correlation", None)
        if correlation is not None:
            current_correlation.reset(correlation)
            self._tokens.correlation = None

    after_skip_message = after_process_message


class Timing(Middleware):
    """Measures each job; keeps per-actor counts and total milliseconds in :attr:`stats`."""

    def __init__(self) -> None:
        self._start = threading.local()
        self._lock = threading.Lock()
        self.stats: dict[str, dict[str, float]] = {}

    def before_process_message(self, broker, message) -> None:  # noqa: ANN001
        self._start.t = time.perf_counter()

    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:  # noqa: ANN001
        started = getattr(self._start, "t", None)
        if started is None:
            return
        ms = (time.perf_counter() - started) * 1000
        with self._lock:
            entry = self.stats.setdefault(message.actor_name, {"count": 0, "total_ms": 0.0, "errors": 0})
            entry["count"] += 1
            entry["total_ms"] += ms
            entry["errors"] += 1 if exception is not None else 0
        log.info("%s(%s) took %.0f ms%s", message.actor_name, ",".join(map(str, message.args)), ms,
                 f" and raised {type(exception).__name__}" if exception else "")


class SessionCleanup(Middleware):
    """Closes (rolling back) any database session a job left open, so no connection leaks
    from a job that raised halfway through a transaction."""

    def __init__(self, cleanup: Callable[[], Any]) -> None:
        self._cleanup = cleanup

    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:  # noqa: ANN001
        self._cleanup()

    after_skip_message = after_process_message
