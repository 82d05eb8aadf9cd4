"""store.async_reads: prepared reads on the event loop, a bounded set of connections, cancellation and drops."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import psycopg
import pytest
from sqlalchemy import bindparam, cast, func, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import psycopg as pg_psycopg

from store.async_reads import AsyncReader, compile_read, conninfo
from store.models import UTCDateTime

DIALECT = pg_psycopg.dialect()
#: the backend that answers, after sleeping ``s`` seconds
PID_AFTER = compile_read(select(func.pg_backend_pid().label("pid"), cast(func.pg_sleep(bindparam("s")), postgresql.TEXT)
                                .label("slept")), DIALECT)


def test_compiled_rows_carry_labels_and_the_columns_type_decorators():
    read = compile_read(select(literal(1).label("n"), cast(literal(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
                                                               UTCDateTime).label("at")), DIALECT)
    assert "%(s)s" in PID_AFTER.sql  # psycopg's named placeholder
    naive = datetime(2026, 1, 2, 3, 4, 5)
    (row,) = read.rows([(1, naive)])
    assert row.n == 1 and row.at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with pytest.raises(ValueError):
        compile_read(select(literal(1)), sqlite.dialect())


def test_conninfo_keeps_the_query_and_drops_the_driver():
    assert conninfo("postgresql+psycopg://u:p%40w@db:5433/pm?sslmode=require") == \
        "postgresql://u:p%40w@db:5433/pm?sslmode=require"


def test_reads_share_at_most_size_connections(pg_url):
    async def run() -> set[int]:
        reader = AsyncReader(pg_url, 3)
        try:
            rows = await asyncio.gather(*(reader.fetch(PID_AFTER, {"s": 0.02}) for _ in range(20)))
            return {r[0].pid for r in rows}
        finally:
            await reader.close()

    pids = asyncio.run(run())
    assert 1 <= len(pids) <= 3


def test_a_cancelled_read_never_lends_its_busy_connection_again(pg_url):
    """A read cancelled while its statement runs (a client gone, a timeout) must not hand that
    connection, still busy with the statement, to the next read."""
    async def run() -> list[int]:
        reader = AsyncReader(pg_url, 1)
        await reader.open()
        try:
            slow = asyncio.ensure_future(reader.fetch(PID_AFTER, {"s": 5}))
            await asyncio.sleep(0.3)
            slow.cancel()
            with pytest.raises(asyncio.CancelledError):
                await slow
            rows = await asyncio.wait_for(asyncio.gather(*(reader.fetch(PID_AFTER, {"s": 0}) for _ in range(3))), 4)
            return [r[0].pid for r in rows]
        finally:
            await reader.close()

    assert len(set(asyncio.run(run()))) == 1


def test_dropped_connections_are_replaced_and_the_read_answered(pg_url):
    dbname = pg_url.rsplit("/", 1)[1]

    async def run() -> tuple[set[int], set[int]]:
        reader = AsyncReader(pg_url, 4)
        await reader.open()
        try:
            before = {r[0].pid for r in await asyncio.gather(*(reader.fetch(PID_AFTER, {"s": 0.05}) for _ in range(4)))}
            with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> "
                              "pg_backend_pid()", (dbname,))
            await asyncio.sleep(0.2)
            # one after another: the second read must not be lent another dropped connection
            after = {(await reader.fetch(PID_AFTER, {"s": 0}))[0].pid for _ in range(4)}
            return before, after
        finally:
            await reader.close()

    before, after = asyncio.run(run())
    assert len(before) == 4 and after and not before & after


def test_a_closed_reader_refuses_reads(pg_url):
    async def run() -> None:
        reader = AsyncReader(pg_url, 1)
        await reader.open()
        await reader.close()
        await reader.fetch(PID_AFTER, {"s": 0})

    with pytest.raises(psycopg.OperationalError, match="closed"):
        asyncio.run(run())
