"""Group commit for inbound Slack deliveries: many envelopes, one transaction, then their acks.

Every envelope must be in ``inbound_deliveries`` before it is acked (Slack re-sends an
unacked envelope, so until the ack the copy at Slack is the safe one). One commit per
envelope serialises a burst on the database's commit (one writer on SQLite, an fsync per
commit on PostgreSQL). Here the socket-mode threads hand their envelopes to one writer
thread, which takes everything queued, inserts it in a single transaction and answers each
caller "new" or "repeat". The caller acks only after that answer, so the guarantee is
unchanged; the cost of a commit is shared by the whole burst. (Group commit: Gray & Reuter,
"Transaction Processing", 1993, §9.4; the same idea as PostgreSQL's ``commit_delay``.)
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import threading
import time
from concurrent.futures import Future
from typing import Any

from sqlalchemy import insert, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from bot.slack import gate
from bot.slack.inbound import SOURCE, claim
from store.models import InboundDelivery, utcnow

log = logging.getLogger(__name__)

#: At most this many envelopes per transaction (keeps SQLite's IN (...) look-up small).
MAX_BATCH = 200
#: PostgreSQL's insert costs the same statement for any batch: a burst of 500 is one commit.
PG_MAX_BATCH = 1000
#: A burst gathers for at most this long before its commit, in steps of GATHER_STEP_S (see _gather).
GATHER_MAX_S = 0.01
GATHER_STEP_S = 0.001
#: Marks held back behind inserts are written anyway once this many have piled up.
MAX_CARRY = 2000

# One statement for any batch size (see InboundJournal._insert_new); the received_at column is
# timestamptz, the payload column json.
_PG_INSERT = text(
    "INSERT INTO inbound_deliveries (source, delivery_key, payload, received_at, status) "
    "SELECT :source, e->>0, e->1, :now, 'accepted' FROM json_array_elements(CAST(:batch AS json)) AS e "
    "ON CONFLICT (source, delivery_key) DO NOTHING RETURNING delivery_key"
)


def take_batch(q: queue.Queue[Any], first: Any, limit: int) -> tuple[list[Any], bool]:
    """``first`` plus whatever is queued already, up to ``limit`` items, without waiting.

    Returns:
        The batch, and True when the stop mark (None) was taken from the queue on the way.
    """
    batch = [first]
    while len(batch) < limit:
        try:
            item = q.get_nowait()
        except queue.Empty:
            break
        if item is None:
            return batch, True
        batch.append(item)
    return batch, False


class JournalClosed(RuntimeError):
    """The journal was stopped; the envelope stays unacked and Slack re-sends it to a live bot."""


class InboundJournal:
    """One writer thread that records inbound deliveries in batches.

    Args:
        session_factory: ``runtime.session`` (a context manager yielding a SQLAlchemy session).
        max_batch: the most envelopes per transaction (:data:`MAX_BATCH`; :data:`PG_MAX_BATCH` on
            PostgreSQL, whose insert does not grow with the batch).
        engine: a PostgreSQL engine: the writer then keeps one connection of its own in autocommit
            and records a batch with one statement, one round trip (see :meth:`_pg_write`).
            None: every batch is a ``session_factory`` transaction (SQLite).
    """

    def __init__(self, session_factory: Any, max_batch: int = MAX_BATCH, engine: Any = None) -> None:
        self._session = session_factory
        self.max_batch = max_batch
        self._engine = engine
        self._conn: Any = None  # the writer's own PostgreSQL connection, opened on first use
        self._queue: queue.Queue[tuple[str, Any, Any] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="pm-slack-journal", daemon=True)
        self._closed = False
        self._carry: list[tuple[str, str]] = []  # marks held back while inserts (acks) are waiting

    def start(self) -> InboundJournal:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Finish what is queued, then stop the writer."""
        self._closed = True
        self._queue.put(None)
        self._thread.join(10)

    def record(self, key: str, payload: dict[str, Any], timeout: float = 10.0) -> bool:
        """Persist one delivery; blocks until it is committed.

        Args:
            key: the delivery key (:func:`bot.slack.inbound.delivery_key`).
            payload: the raw envelope payload.
            timeout: seconds to wait for the commit.

        Returns:
            True when this is the first time the key was seen, False for a repeat.

        Raises:
            JournalClosed: the journal is stopping (do not ack).
            Exception: the database error of the batch (do not ack; Slack re-sends).
        """
        return self.submit(key, payload).result(timeout)

    def submit(self, key: str, payload: dict[str, Any]) -> Future[bool]:
        """Queue one delivery; the future's result is what :meth:`record` returns.

        Raises:
            JournalClosed: the journal is stopping (do not ack).
        """
        if self._closed:
            raise JournalClosed("the Slack bot is stopping; the envelope is left for Slack to re-send")
        done: Future[bool] = Future()
        self._queue.put(("insert", (key[:200], payload), done))
        return done

    def submit_async(self, key: str, payload: dict[str, Any]) -> asyncio.Future[bool]:
        """:meth:`submit` for a coroutine on a running event loop: await the returned future.

        A batch's answers reach each loop in one ``call_soon_threadsafe`` (not one per envelope:
        500 cross-thread wake-ups of a busy loop cost more than the commit they wait for).

        Raises:
            JournalClosed: the journal is stopping (do not ack).
        """
        if self._closed:
            raise JournalClosed("the Slack bot is stopping; the envelope is left for Slack to re-send")
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bool] = loop.create_future()
        self._queue.put(("insert", (key[:200], payload), (loop, done)))
        return done

    def mark(self, key: str, status: str = "processed") -> None:
        """Set a delivery's status without waiting (batched with the next inserts)."""
        if not self._closed:
            self._queue.put(("mark", (key[:200], status), None))

    # -- the writer ----------------------------------------------------------------------------
    def _loop(self) -> None:
        gate.join("high")  # the acks wait for this thread's commits: let it in first
        while True:
            try:
                # Carried marks are written once the queue has been quiet for a moment.
                first = self._queue.get(timeout=0.05 if self._carry else None)
            except queue.Empty:
                self._write([])
                continue
            if first is None:
                if self._carry:
                    self._write([])
                self._drop_connection(broken=False)
                return
            if first[0] == "insert":
                self._gather()
            # Take whatever else arrived meanwhile: the burst shares this commit.
            batch, stopping = take_batch(self._queue, first, self.max_batch)
            if stopping:
                self._queue.put(None)  # stop after this batch
            self._write(batch)

    def _gather(self) -> None:
        """Let a burst gather before committing: wait while the queue is still growing.

        Under a burst the socket thread is still parsing envelopes when the first one reaches the
        journal; committing that one alone costs a whole commit (and, sharing the GIL with the
        busy socket thread, ~5 ms per database round trip) while the rest wait for the next one.
        Sleeping while more keep arriving, at most ``GATHER_MAX_S``, puts the burst in one commit
        (the idea of PostgreSQL's ``commit_delay``); a lone envelope waits one ``GATHER_STEP_S``.
        """
        deadline = time.monotonic() + GATHER_MAX_S
        seen = self._queue.qsize()
        while time.monotonic() < deadline and seen < self.max_batch:
            time.sleep(GATHER_STEP_S)
            now = self._queue.qsize()
            if now == seen:
                return
            seen = now

    def _write(self, batch: list[tuple[str, Any, Any]]) -> None:
        inserts = [(args, fut) for op, args, fut in batch if op == "insert"]
        marks = self._carry + [args for op, args, _ in batch if op == "mark"]
        self._carry = []
        if inserts and len(marks) < MAX_CARRY:
            # Acks wait for this commit; marks do not: keep it small and write them when quiet.
            self._carry, marks = marks, []
        try:
            results = self._commit(inserts, marks)
        except IntegrityError:
            # Another bot process recorded one of these keys between our look-up and our insert:
            # fall back to one transaction per delivery, which tells repeats apart exactly.
            results = self._one_by_one(inserts, marks)
        except Exception as exc:  # noqa: BLE001 - every waiting caller must hear of it
            log.exception("recording %d inbound Slack deliveries failed", len(inserts))
            _answer([(fut, exc) for _, fut in inserts])
            return
        _answer([(fut, new) for (_, fut), new in zip(inserts, results, strict=True)])

    def _commit(self, inserts: list[tuple[tuple[str, Any], Any]], marks: list[tuple[str, str]]) -> list[bool]:
        if self._engine is not None:
            return self._pg_write(inserts, marks)
        keys = [k for (k, _), _ in inserts]
        with self._session() as s:
            if keys and s.get_bind().dialect.name == "postgresql":
                results = self._insert_new(s, inserts)
                self._apply_marks(s, marks)
                return results
            seen = set(s.scalars(select(InboundDelivery.delivery_key).where(
                InboundDelivery.source == SOURCE, InboundDelivery.delivery_key.in_(keys)))) if keys else set()
            results, rows = [], []
            now = utcnow()
            for (key, payload), _ in inserts:
                if key in seen:
                    results.append(False)
                    continue
                seen.add(key)  # the same envelope twice in one batch: the second is a repeat
                rows.append({"source": SOURCE, "delivery_key": key, "payload": payload, "received_at": now,
                             "status": "accepted"})
                results.append(True)
            if rows:
                # one executemany, not the ORM unit of work: the ack path is CPU-bound under a burst
                s.execute(insert(InboundDelivery), rows)
            self._apply_marks(s, marks)
        return results

    @staticmethod
    def _insert_new(session: Any, inserts: list[tuple[tuple[str, Any], Any]]) -> list[bool]:
        """PostgreSQL: the whole batch in one small statement, ``INSERT … SELECT FROM
        json_array_elements(batch) ON CONFLICT DO NOTHING RETURNING delivery_key``; a key not
        returned was recorded before (a repeat).

        The batch travels as one JSON parameter (``[[key, payload], …]``, one C-speed
        ``json.dumps``), so the statement's text is the same for every batch: psycopg caches it and
        the server parses it once. A multi-row ``VALUES`` list has five placeholders per row, and
        psycopg parsed that ~1,000-placeholder text in Python on every commit (about half of a
        200-envelope commit); a text array of payloads cost as much again in per-element quoting
        (docs/slack.md, round 5)."""
        rows: list[tuple[str, Any]] = []
        first: set[str] = set()
        for (key, payload), _ in inserts:
            if key not in first:  # the same envelope twice in one batch: the second is a repeat
                first.add(key)
                rows.append((key, payload))
        new = set(session.execute(_PG_INSERT, {"source": SOURCE, "now": utcnow(),
                                               "batch": json.dumps(rows)}).scalars())
        results = []
        for (key, _), _ in inserts:
            results.append(key in new)
            new.discard(key)
        return results

    def _pg_write(self, inserts: list[tuple[tuple[str, Any], Any]], marks: list[tuple[str, str]]) -> list[bool]:
        """PostgreSQL: each statement in autocommit on the writer's own connection.

        The insert of a batch is one statement, so autocommit makes it its own transaction: it
        returns once it is committed (and flushed to the WAL: ``synchronous_commit`` is left as the
        server has it), so "persisted before ack" holds as before. What goes away is four of the
        five round trips a pooled session paid per batch — the pool's pre-ping, BEGIN, COMMIT and
        the reset-on-return ROLLBACK — each of which, under a burst, also waited for the GIL.
        The marks are idempotent status updates and need no transaction with the insert. A
        statement that failed because the kept connection was gone is retried once on a new
        connection; any other failure drops the connection and is raised to the waiting
        envelopes, which are then left unacked (Slack re-sends them).
        """
        for attempt in (1, 2):
            reused = self._conn is not None
            try:
                if self._conn is None:
                    self._conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                results = self._insert_new(self._conn, inserts) if inserts else []
                self._apply_marks(self._conn, marks)
                return results
            except DBAPIError as exc:
                self._drop_connection()
                # A connection that sat idle may have been closed by the server (a restart, an idle
                # timeout): what the pool's pre-ping did for the pooled path, one retry on a new one
                # does here. Should the lost statement have committed after all, its keys come back
                # as repeats: acked empty, and their "accepted" rows are replayed (bot/slack/replay.py).
                if attempt == 1 and reused and exc.connection_invalidated:
                    log.warning("the journal's database connection was lost; retrying on a new one")
                    continue
                raise
            except Exception:
                self._drop_connection()
                raise
        raise AssertionError("unreachable")

    def _drop_connection(self, broken: bool = True) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                if broken:
                    conn.invalidate()  # never hand a connection that failed back to the pool
                conn.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                log.debug("closing the journal's connection failed", exc_info=True)

    def _one_by_one(self, inserts: list[tuple[tuple[str, Any], Any]], marks: list[tuple[str, str]]) -> list[bool]:
        results = []
        for (key, payload), _ in inserts:
            with self._session() as s:
                results.append(claim(session=s, key=key, payload=payload))
        with self._session() as s:
            self._apply_marks(s, marks)
        return results

    @staticmethod
    def _apply_marks(session: Any, marks: list[tuple[str, str]]) -> None:
        # One UPDATE per status (in practice one: "processed") instead of one per key: under a
        # burst the marks of hundreds of finished deliveries ride along with each group commit.
        by_status: dict[str, list[str]] = {}
        for key, status in marks:
            by_status.setdefault(status, []).append(key)
        for status, keys in by_status.items():
            for i in range(0, len(keys), MAX_BATCH):
                session.execute(update(InboundDelivery)
                                .where(InboundDelivery.source == SOURCE,
                                       InboundDelivery.delivery_key.in_(keys[i:i + MAX_BATCH]),
                                       InboundDelivery.status.in_(("accepted", "replaying")))
                                .values(status=status)
                                # a fresh session holds no rows: skip the ORM's in-Python evaluation
                                .execution_options(synchronize_session=False))


def _answer(answers: list[tuple[Any, Any]]) -> None:
    """Resolve waiting callers: thread futures directly, asyncio futures in one call per loop."""
    by_loop: dict[Any, list[tuple[Any, Any]]] = {}
    for fut, outcome in answers:
        if isinstance(fut, tuple):
            loop, afut = fut
            by_loop.setdefault(loop, []).append((afut, outcome))
        elif isinstance(outcome, BaseException):
            fut.set_exception(outcome)
        else:
            fut.set_result(outcome)
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve, items)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass


def _resolve(items: list[tuple[asyncio.Future[Any], Any]]) -> None:
    for fut, outcome in items:
        if fut.done():
            continue
        if isinstance(outcome, BaseException):
            fut.set_exception(outcome)
        else:
            fut.set_result(outcome)
