"""One-statement reads of hot paths on the event loop (PostgreSQL): the admin API's status view.

A status read through the synchronous engine costs a thread hand-off to a worker thread and back and
SQLAlchemy's execution and result machinery around psycopg (~0.4 ms of CPU together, bench/api_load.py),
several times the read itself. :class:`AsyncReader` keeps a few psycopg ``AsyncConnection`` objects in
AUTOCOMMIT on the serving event loop and runs a SELECT that SQLAlchemy compiled once
(:func:`compile_read`) as a server-side prepared statement: one round trip, no thread, no ORM.

Rows come back as named tuples with the values SQLAlchemy would give: the same column labels and each
column's ``TypeDecorator`` (``UTCDateTime``) applied. A connection the server dropped (restart, idle
timeout) fails its read; the idle connections are let go with it and the read is asked once more on a new
connection, as :func:`store.db.read_with_retry` does for the synchronous engine.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import Select, TypeDecorator
from sqlalchemy.engine import Dialect, make_url

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompiledRead:
    """A SELECT compiled for PostgreSQL once, with how to turn its raw values into SQLAlchemy's.

    Attributes:
        sql: the statement text with ``%(name)s`` placeholders (psycopg's named style).
        row: the named tuple type of a result row (fields = the statement's column labels).
        converters: per column, None or a function applied to the raw value (a ``TypeDecorator``'s
            ``process_result_value``).
    """

    sql: str
    row: Any
    converters: tuple[Callable[[Any], Any] | None, ...]

    def rows(self, raw: list[tuple[Any, ...]]) -> list[Any]:
        """``raw`` tuples as named rows with the columns' conversions applied."""
        conv = self.converters
        if not any(conv):
            return [self.row._make(r) for r in raw]
        return [self.row._make([v if f is None or v is None else f(v) for f, v in zip(conv, r, strict=True)])
                for r in raw]


def compile_read(stmt: Select[Any], dialect: Dialect) -> CompiledRead:
    """Compile ``stmt`` (bound parameters as ``bindparam(name)``) for ``dialect`` (PostgreSQL with psycopg).

    Raises:
        ValueError: ``dialect`` is not psycopg's PostgreSQL dialect (its placeholders would not be psycopg's).
    """
    if dialect.name != "postgresql" or dialect.driver != "psycopg":
        raise ValueError(f"compile_read needs postgresql+psycopg, not {dialect.name}+{dialect.driver}")
    sql = str(stmt.compile(dialect=dialect))
    columns = list(stmt.selected_columns)
    names = [str(c.key) for c in columns]
    converters: list[Callable[[Any], Any] | None] = []
    for col in columns:
        type_ = col.type
        if isinstance(type_, TypeDecorator):
            converters.append(_decorated(type_, dialect))
        else:
            converters.append(None)
    return CompiledRead(sql=sql, row=collections.namedtuple("Row", names, rename=True),
                        converters=tuple(converters))


def _decorated(type_: TypeDecorator[Any], dialect: Dialect) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        return type_.process_result_value(value, dialect)
    return convert


def conninfo(url: str) -> str:
    """A libpq connection URI for psycopg from a SQLAlchemy ``postgresql[+psycopg]://`` URL (query kept)."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


class AsyncReader:
    """At most ``size`` AUTOCOMMIT psycopg connections of one event loop, each lent to one read at a time.

    Create it, ``await open()`` on the loop that will use it (a psycopg async connection belongs to
    the loop it was made on), ``await fetch(...)``, ``await close()``.

    Args:
        url: the SQLAlchemy database URL (``postgresql+psycopg://...``).
        size: connections at most (opened by :meth:`open`, or on demand).
    """

    def __init__(self, url: str, size: int = 8) -> None:
        self._conninfo = conninfo(url)
        self.size = size
        self._idle: collections.deque[psycopg.AsyncConnection[Any]] = collections.deque()
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._count = 0  # connections open or being opened
        self._closed = False

    @property
    def idle(self) -> int:
        """Connections open and not lent out."""
        return len(self._idle)

    async def open(self) -> None:
        """Open every connection now, so the first reads under load do not each wait for a new
        PostgreSQL backend. A failure is logged: reads then open their connections on demand (or fail
        saying why)."""
        try:
            for _ in range(self.size - self._count):
                self._count += 1
                try:
                    conn = await self._connect()
                except BaseException:
                    self._count -= 1
                    raise
                self._give_back(conn)
        except psycopg.Error as exc:
            log.warning("could not open the read connections now: %s", type(exc).__name__)

    async def fetch(self, read: CompiledRead, params: dict[str, Any]) -> list[Any]:
        """Run ``read`` with ``params``; its rows (see :meth:`CompiledRead.rows`).

        Raises:
            psycopg.Error: the database fails (a dropped connection is replaced and the read asked once more).
        """
        conn = await self._take()
        try:
            raw = await self._run(conn, read, params)
        except psycopg.OperationalError:
            dropped = conn.closed
            self._discard(conn)
            if not dropped:
                raise
            # the others most likely went with it (a server restart): the retry takes a new connection,
            # as SQLAlchemy's pool invalidates all its connections on a disconnect
            while self._idle:
                self._discard(self._idle.pop())
            conn = await self._take()
            try:
                raw = await self._run(conn, read, params)
            except BaseException:
                self._discard(conn)
                raise
        except BaseException:
            # cancelled or failed with the statement perhaps still in flight: never lend it again
            self._discard(conn)
            raise
        self._give_back(conn)
        return read.rows(raw)

    @staticmethod
    async def _run(conn: psycopg.AsyncConnection[Any], read: CompiledRead,
                   params: dict[str, Any]) -> list[tuple[Any, ...]]:
        cur = await conn.execute(read.sql, params, prepare=True)
        return await cur.fetchall()

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)

    async def _take(self) -> psycopg.AsyncConnection[Any]:
        while True:
            if self._closed:
                raise psycopg.OperationalError("the status reader is closed (the app is stopping)")
            while self._idle:
                conn = self._idle.pop()
                if not conn.closed:
                    return conn
                self._count -= 1
            if self._count < self.size:
                self._count += 1
                try:
                    return await self._connect()
                except BaseException:
                    self._count -= 1
                    self._wake()
                    raise
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # pass the wake-up this task will not use on
                raise

    def _give_back(self, conn: psycopg.AsyncConnection[Any]) -> None:
        if self._closed:
            self._close_soon(conn)
            self._count -= 1
            return
        self._idle.append(conn)
        self._wake()

    def _discard(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._close_soon(conn)
        self._count -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _close_soon(self, conn: psycopg.AsyncConnection[Any]) -> None:
        if conn.closed:
            return
        with contextlib.suppress(Exception):
            # closing sends a Terminate message; a broken socket just closes
            asyncio.get_running_loop().create_task(conn.close())

    async def close(self) -> None:
        """Close every idle connection; connections lent out are closed when they come back."""
        self._closed = True
        while self._idle:
            conn = self._idle.pop()
            self._count -= 1
            with contextlib.suppress(Exception):
                await conn.close()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
