"""A writer gate for the bot's own threads on SQLite: the ack path's commit goes first.

SQLite has one writer. A connection that finds the database locked sleeps in SQLite's busy
handler (1, 2, 5, 10 … up to 100 ms between tries; sqlite.org/c3ref/busy_timeout.html and
``sqliteDefaultBusyCallback`` in main.c), so under a burst the journal's commit, which holds
every pending ack, loses to whichever background transaction got the lock first and then
sleeps. Inside one process we can do better: the bot's threads that write (the journal, the
hand-off pool, the outbox lanes) take this gate for each transaction, waiters wake on a
condition instead of polling, and the journal (``high``) is let in before the others.
Threads that did not opt in (an embedded dramatiq worker) are not gated and meet SQLite's
own lock as before. PostgreSQL has row locks and needs none of this: the runner installs the
gate only for SQLite.
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import event

_local = threading.local()


def join(priority: str) -> None:
    """Opt the calling thread in: ``high`` (the journal) or ``low`` (background work)."""
    _local.priority = priority


class WriteGate:
    """A reentrant-per-transaction priority lock taken at BEGIN and released at COMMIT/ROLLBACK."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._owner: int | None = None
        self._depth = 0
        self._high_waiting = 0

    def install(self, engine: Any) -> WriteGate:
        """Hook the engine's transaction events (only threads that called :func:`join` are gated)."""
        event.listen(engine, "begin", self._on_begin)
        event.listen(engine, "commit", self._on_end)
        event.listen(engine, "rollback", self._on_end)
        # Safety net: a connection returned to the pool without a COMMIT/ROLLBACK event
        # (the pool's reset-on-return) must not keep the gate.
        event.listen(engine, "checkin", lambda _dbapi, record: self._release(record.info))
        return self

    def _on_begin(self, conn: Any) -> None:
        priority = getattr(_local, "priority", None)
        if priority is None:
            return
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:  # a nested session on the same thread
                self._depth += 1
                conn.info["pm_gate"] = True
                return
            if priority == "high":
                self._high_waiting += 1
            try:
                while self._owner is not None or (priority != "high" and self._high_waiting):
                    self._cond.wait()
            finally:
                if priority == "high":
                    self._high_waiting -= 1
            self._owner, self._depth = me, 1
        conn.info["pm_gate"] = True

    def _on_end(self, conn: Any) -> None:
        self._release(conn.info)

    def _release(self, info: dict[str, Any]) -> None:
        if not info.pop("pm_gate", False):
            return
        with self._cond:
            self._depth -= 1
            if self._depth <= 0:
                self._owner, self._depth = None, 0
                self._cond.notify_all()
