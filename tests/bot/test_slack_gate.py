"""The in-process SQLite write gate and the ack back-pressure, on a real SQLite database and real threads."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy import text

from bot.slack import gate
from bot.slack.gate import WriteGate
from bot.slack.pressure import AckPressure
from store.db import make_engine


def _engine(tmp_path: Path):  # noqa: ANN202 - a SQLAlchemy Engine
    engine = make_engine(f"sqlite:///{tmp_path / 'gate.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (who TEXT)"))
    return engine


def test_the_journal_thread_goes_before_background_writers_waiting_for_the_gate(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    wg = WriteGate().install(engine)
    holding, release = threading.Event(), threading.Event()
    order: list[str] = []

    def writer(name: str, priority: str, hold: bool = False) -> None:
        gate.join(priority)
        with engine.begin() as conn:
            order.append(name)
            conn.execute(text("INSERT INTO t VALUES (:w)"), {"w": name})
            if hold:
                holding.set()
                release.wait(5)

    first = threading.Thread(target=writer, args=("holder", "low", True))
    first.start()
    assert holding.wait(5)
    low = threading.Thread(target=writer, args=("background", "low"))
    low.start()
    time.sleep(0.1)  # the background writer is now waiting for the gate
    high = threading.Thread(target=writer, args=("journal", "high"))
    high.start()
    deadline = time.monotonic() + 5
    while wg._high_waiting == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    release.set()
    for t in (first, low, high):
        t.join(5)
    engine.dispose()
    assert order == ["holder", "journal", "background"]


def test_a_nested_transaction_on_the_same_thread_and_ungated_threads_do_not_block(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    wg = WriteGate().install(engine)
    done: list[str] = []

    def nested() -> None:
        gate.join("low")
        with engine.begin() as outer:
            outer.execute(text("INSERT INTO t VALUES ('outer')"))
            with engine.connect() as inner:  # a second connection, same thread: reentrant, no deadlock
                inner.execute(text("SELECT count(*) FROM t")).scalar()
                inner.rollback()
        done.append("nested")

    t = threading.Thread(target=nested)
    t.start()
    t.join(5)
    assert done == ["nested"] and wg._owner is None, "the gate is free again after the outer commit"

    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        gate.join("low")
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            holding.set()
            release.wait(5)
            conn.rollback()

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(5)
    ungated: list[bool] = []

    def read() -> None:  # never called gate.join: not gated, so it gets in while the gate is held
        with engine.connect() as conn:
            ungated.append(conn.execute(text("SELECT count(*) FROM t")).scalar() == 1)

    reader = threading.Thread(target=read)
    reader.start()
    reader.join(2)
    release.set()
    holder.join(5)
    engine.dispose()
    assert ungated == [True]
    assert wg._owner is None


def test_background_work_waits_for_pending_acks_but_not_forever() -> None:
    pressure = AckPressure(max_wait_s=0.2)
    assert pressure.wait_quiet() is True, "nothing pending: no wait"
    pressure.arrived()
    pressure.arrived()
    started = time.monotonic()
    assert pressure.wait_quiet() is False, "acks still due after max_wait_s: go ahead anyway"
    assert time.monotonic() - started >= 0.19
    woke: list[bool] = []
    waiter = threading.Thread(target=lambda: woke.append(pressure.wait_quiet(5)))
    waiter.start()
    pressure.acked()
    time.sleep(0.05)
    assert not woke, "one ack still due"
    pressure.acked()
    waiter.join(5)
    assert woke == [True] and pressure.pending == 0
    pressure.acked()  # an extra ack (a dropped repeat) never drives the count below zero
    assert pressure.pending == 0
