"""Issue #12, item 5: no stuck work after the bot crashes between the ack and the first phase.

The real bot (``python -m bot.cli bot``: Bolt in socket mode, embedded SQLite, in-process queue,
its own worker with the reconciler) in a subprocess, against the stand-in Slack in this process.
A ``/investigate`` is acked, the bot is SIGKILLed a moment later (before the start is recorded,
right after it, after the parent and status went out, mid-run), and a new bot starts at once, as a
supervisor would. Every investigation must complete within lease + one reconcile period (plus its
own running time), each Slack message must be posted once, and the thread must show progress soon
after the restart rather than a minute of "Starting…".
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from store.db import make_engine, make_session_factory
from store.models import Investigation
from tests.fakes.slack_server import FakeSlack
from tests.paths import SHARED

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
WORLD = SHARED / "worlds" / "example-2"
LEASE_S, RECONCILE_S = 4.0, 2.0
#: Restart to the investigation's end: the lease left by the dead run, one reconcile period with its
#: jitter and its quarter-period delay, the run itself (~3 s here), and the new process's start-up.
BOUND_S = LEASE_S + RECONCILE_S * 1.2 * 1.25 + 25.0


def _start_bot(fake: FakeSlack, home: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PM_HOME": str(home), "SLACK_BOT_TOKEN": "xoxb-crash",
           "SLACK_APP_TOKEN": "xapp-crash", "SLACK_API_URL": fake.api_url, "PM_WORLD": str(WORLD),
           "PM_LEASE_S": str(LEASE_S), "PM_RECONCILE_INTERVAL_S": str(RECONCILE_S), "PM_WORKER_THREADS": "2"}
    env.pop("DATABASE_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "bot"], cwd=ROOT, env=env, start_new_session=True,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)
    fake.wait_for(lambda: bool(fake._ws_connections) or proc.poll() is not None, 60, "the bot to connect")
    assert proc.poll() is None, log.read_text()[-3000:]
    return proc


def _kill(fake: FakeSlack, proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    fake.wait_for(lambda: not fake._ws_connections, 10, "the dead bot's socket to close")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _investigations(home: Path) -> list[dict[str, Any]]:
    engine = make_engine(f"sqlite:///{home / 'pm.sqlite3'}")
    try:
        with make_session_factory(engine)() as s:
            return [{"id": i.id, "status": i.status, "trigger": i.trigger, "origin": i.origin}
                    for i in s.scalars(select(Investigation))]
    finally:
        engine.dispose()


# seconds between the ack and the SIGKILL: before the start is recorded, 30-120 ms after the ack
# (parent and "QUEUED" status on their way or out), and mid-run
KILL_AFTER_S = (0.0, 0.03, 0.06, 0.12, 1.5)


def test_a_bot_killed_between_ack_and_first_phase_finishes_every_investigation_once(tmp_path: Path) -> None:
    home = tmp_path / "pm"
    log = tmp_path / "bot.log"
    report: list[str] = []
    with FakeSlack() as fake:
        proc = _start_bot(fake, home, log)
        try:
            for n, delay in enumerate(KILL_AFTER_S):
                channel = f"CK{n}"
                fake.wait_ack(fake.slash_command(f"pricing errors since 16:15 run {n} fast", user="U1",
                                                 channel=channel))
                time.sleep(delay)
                _kill(fake, proc)
                restarted = time.monotonic()
                proc = _start_bot(fake, home, log)

                def parent(c: str = channel) -> dict[str, Any] | None:
                    return next((m for m in fake.bot_messages(c) if not m.get("thread_ts")), None)

                first = fake.wait_for(parent, 30, f"the thread of run {n} after the restart")
                shown = time.monotonic() - restarted

                def status(c: str = channel) -> dict[str, Any] | None:
                    p = parent(c)
                    return next((m for m in fake.thread(c, p["ts"]) if m["text"].startswith("Investigation inv-")
                                 and "COMPLETE" in m["text"]), None) if p else None

                fake.wait_for(status, BOUND_S, f"run {n} (killed {delay}s after its ack) to complete")
                done = time.monotonic() - restarted
                report.append(f"killed {delay:.2f}s after ack: thread {shown:.1f}s, complete {done:.1f}s after restart")
                assert shown < 20.0, f"run {n}: a thread only {shown:.1f}s after the restart"
                time.sleep(2.5)  # the last (coalesced) status edit
                thread = fake.thread(channel, first["ts"])
                mine = [m for m in thread if m.get("user") == "UBOT"]
                parents = [m for m in fake.bot_messages(channel) if not m.get("thread_ts")]
                assert len(parents) == 1, f"run {n}: {len(parents)} parents"
                statuses = [m for m in mine if m["text"].startswith("Investigation inv-")]
                reports = [m for m in mine if any(b.get("type") == "header" for b in m.get("blocks") or [])]
                assert len(statuses) == 1 and len(reports) == 1, f"run {n}: {[m['text'][:60] for m in mine]}"
                assert sum(1 for m in thread if m.get("files")) == 1
        finally:
            _stop(proc)
    invs = _investigations(home)
    assert len(invs) == len(KILL_AFTER_S), invs
    assert {i["status"] for i in invs} == {"COMPLETE"}
    print("\n".join(report))
