"""Faults injected into real worker processes (issue #11, findings 1–3).

Real parts only: PostgreSQL, Redis, ``python -m pipeline.worker`` / ``pm worker`` subprocesses,
the evidence engine on a shared example world, and the stand-in Slack Web API
(tests/fakes/slack_server.py) for the publisher. Short leases and periods (PM_LEASE_S,
PM_RECONCILE_INTERVAL_S, PM_OUTBOX_CLAIM_S, PM_OUTBOX_SWEEP_S) keep each test under a minute.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline import phases as P
from pipeline.runtime import build_runtime
from store import agent_runs, checkpoints, outbox
from store import investigations as invs
from store.config import Settings
from store.db import upgrade
from tests.fakes.slack_server import FakeSlack
from tests.paths import SHARED

WORLD = SHARED / "worlds/example-1"
ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not WORLD.is_dir(), reason="the shared example world is not present")]


def _env(pg_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PM_", "DATABASE_URL", "REDIS_URL", "RABBITMQ", "SLACK_", "JIRA_"))}
    env.update({"DATABASE_URL": pg_url, "PM_HOME": str(tmp_path / "pm"), "PM_WORKER_THREADS": "1",
                "PYTHONPATH": str(ROOT), **extra})
    return env


def _start(env: dict[str, str], log: Path, module: tuple[str, ...] = ("pipeline.worker",)) -> subprocess.Popen:
    # a session of its own, so the test can signal the worker together with any child it started
    return subprocess.Popen([sys.executable, "-m", *module], cwd=ROOT, env=env, start_new_session=True,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)


def _signal(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def _stop(*procs: subprocess.Popen | None) -> None:
    for proc in procs:
        if proc is None or proc.poll() is not None:
            continue
        _signal(proc, signal.SIGCONT)
        _signal(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            _signal(proc, signal.SIGKILL)
            proc.wait(timeout=5)


def _wait_for(predicate, timeout_s: float, what: str, logs: tuple[Path, ...] = ()) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2500:]}" for p in logs if p.exists())
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}\n{tails}")
        time.sleep(0.1)


def _create(rt, n: int = 1, **origin) -> list[str]:
    ids = []
    for i in range(n):
        with rt.session() as s:
            ids.append(invs.create(session=s, trigger={"alert": "pd-8240"},
                                   origin={"kind": "cli", **{k: (v.format(i=i) if isinstance(v, str) else v)
                                                             for k, v in origin.items()}},
                                   sources={"world": str(WORLD)}).id)
    return ids


def _row(rt, inv_id: str) -> dict:
    with rt.session() as s:
        inv = invs.get(session=s, investigation_id=inv_id)
        return {"status": inv.status, "owner": inv.lease_owner}


def _running(rt, inv_id: str, phase: str, attempts: int = 1) -> bool:
    with rt.session() as s:
        cp = checkpoints.get(session=s, investigation_id=inv_id, phase=phase)
        return cp is not None and cp.status == "running" and cp.attempts >= attempts


def test_a_worker_paused_past_its_lease_writes_nothing_after_the_take_over(pg_url, redis_url, redis_namespace,
                                                                            tmp_path):
    """Finding 1: SIGSTOP mid-EVIDENCE past the lease, another worker takes over, SIGCONT."""
    upgrade(pg_url)
    env = _env(pg_url, tmp_path, REDIS_URL=redis_url, PM_REDIS_NAMESPACE=redis_namespace,
               PM_REDIS_HEARTBEAT_MS="1500", PM_LEASE_S="3")
    rt = build_runtime(Settings(DATABASE_URL=pg_url, REDIS_URL=redis_url, PM_HOME=str(tmp_path / "pm")),
                       namespace=redis_namespace)
    log_x, log_y = tmp_path / "x.log", tmp_path / "y.log"
    x = _start({**env, "PM_TEST_PHASE_DELAY_S": f"{P.EVIDENCE}=8"}, log_x)
    y = None
    try:
        [inv_id] = _create(rt)
        rt.enqueue(inv_id)
        _wait_for(lambda: _running(rt, inv_id, P.EVIDENCE), 30, "EVIDENCE to start in worker X", (log_x,))
        x_owner = _row(rt, inv_id)["owner"]
        _signal(x, signal.SIGSTOP)
        # Y's EVIDENCE is slow too, so X wakes up while Y is in the middle of it
        y = _start({**env, "PM_TEST_PHASE_DELAY_S": f"{P.EVIDENCE}=6"}, log_y)
        _wait_for(lambda: _running(rt, inv_id, P.EVIDENCE, attempts=2), 40, "worker Y to take over",
                  (log_x, log_y))
        assert _row(rt, inv_id)["owner"] not in (None, x_owner)
        time.sleep(1)  # X's own EVIDENCE delay (8 s) has run out by now: it would finish at once
        _signal(x, signal.SIGCONT)
        final = rt.wait(inv_id, 60)
        time.sleep(2)  # give a stale X every chance to write after Y finished
        assert x.poll() is None, "worker X died instead of stopping its stale run"
    finally:
        _stop(x, y)
        rt.close()
    assert final["status"] == "COMPLETE", log_y.read_text()[-3000:]
    events = rt.events(inv_id)
    finished = collections.Counter((e["payload"]["phase"], e["payload"]["round"])
                                   for e in events if e["kind"] == "phase_finished")
    assert [e["kind"] for e in events].count("report") == 1
    assert set(finished.values()) == {1}, finished  # no phase written twice (X's EVIDENCE was refused)
    with rt.session() as s:
        attempts = {(c.phase, c.round): c.attempts for c in checkpoints.list_for(session=s, investigation_id=inv_id)}
    assert attempts.pop((P.EVIDENCE, 0)) == 2 and set(attempts.values()) == {1}
    with rt.session() as s:
        runs = [(r.phase, r.status) for r in agent_runs.list_for(session=s, investigation_id=inv_id)]
    assert runs.count((P.EVIDENCE, "abandoned")) == 1 and runs.count((P.EVIDENCE, "done")) == 1
    x_log = log_x.read_text(errors="replace")
    assert "lost" in x_log and inv_id in x_log, x_log[-3000:]


def test_a_flushed_redis_namespace_is_rebuilt_by_the_reconciler(pg_url, redis_url, redis_namespace, tmp_path):
    """Finding 2: every queued message deleted from Redis while a worker runs; all still complete."""
    import redis

    upgrade(pg_url)
    lease_s, period_s, n = 2.0, 1.0, 5
    env = _env(pg_url, tmp_path, REDIS_URL=redis_url, PM_REDIS_NAMESPACE=redis_namespace, PM_LEASE_S=str(lease_s),
               PM_RECONCILE_INTERVAL_S=str(period_s), PM_TEST_PHASE_DELAY_S=f"{P.EVIDENCE}=1.5")
    rt = build_runtime(Settings(DATABASE_URL=pg_url, REDIS_URL=redis_url, PM_HOME=str(tmp_path / "pm")),
                       namespace=redis_namespace)
    log = tmp_path / "worker.log"
    worker = _start(env, log)
    try:
        ids = _create(rt, n)
        for inv_id in ids:
            rt.enqueue(inv_id)
        _wait_for(lambda: _running(rt, ids[0], P.EVIDENCE), 30, "the first investigation to run", (log,))
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{redis_namespace}*"))
        assert keys, "the queue should hold the waiting investigations"
        client.delete(*keys)
        client.close()
        flushed = time.monotonic()
        # the documented bound: lease + one period (+ jitter) to be picked up again, then each runs
        # (one worker thread, ~3 s each on this machine; generous for a loaded CI box)
        bound = lease_s + 1.2 * period_s + 0.25 * period_s + n * 8.0
        _wait_for(lambda: all(_row(rt, i)["status"] == "COMPLETE" for i in ids), bound, "every investigation",
                  (log,))
        took = time.monotonic() - flushed
    finally:
        _stop(worker)
        rt.close()
    assert took <= bound
    assert "re-enqueued" in log.read_text(errors="replace")


def test_an_embedded_worker_killed_after_taking_an_investigation_finishes_it_after_one_restart(pg_url, tmp_path):
    """Finding 2 (the bot's case): the in-process queue dies with its process while the lease is live."""
    upgrade(pg_url)
    env = _env(pg_url, tmp_path, PM_LEASE_S="3", PM_RECONCILE_INTERVAL_S="1")  # no REDIS_URL: in-process queue
    rt = build_runtime(Settings(DATABASE_URL=pg_url, PM_HOME=str(tmp_path / "pm")))
    log = tmp_path / "worker.log"
    [inv_id] = _create(rt)  # accepted and recorded; the embedded worker takes it at start
    first = _start({**env, "PM_TEST_PHASE_DELAY_S": f"{P.EVIDENCE}=60"}, log)
    second = None
    try:
        _wait_for(lambda: _running(rt, inv_id, P.EVIDENCE), 30, "the embedded worker to take it", (log,))
        _signal(first, signal.SIGKILL)
        first.wait(10)
        assert _row(rt, inv_id)["owner"] is not None  # killed while holding a live lease
        second = _start(env, log)  # restarted at once, and never again
        final = rt.wait(inv_id, 45)
    finally:
        _stop(first, second)
        rt.close()
    assert final["status"] == "COMPLETE", log.read_text(errors="replace")[-3000:]


def _claimed_now(rt) -> bool:
    """Some delivery is claimed by a drainer right now (taken, not yet marked)."""
    from sqlalchemy import func, select

    from store.models import Delivery, utcnow

    with rt.session() as s:
        return bool(s.scalar(select(func.count(Delivery.id)).where(
            Delivery.status == "pending", Delivery.first_claimed_at.is_not(None),
            Delivery.next_attempt_at > utcnow())))


def test_a_slow_slack_and_a_killed_drainer_post_nothing_twice_and_leave_nothing_pending(
        pg_url, redis_url, redis_namespace, tmp_path):
    """Finding 3: Slack answers late (a batch outlasts its claim); the worker draining is SIGKILLed
    mid-send and another worker takes over. Every message is posted once and nothing stays pending."""
    upgrade(pg_url)
    n = 4
    with FakeSlack() as slack:
        slack.delay_s = 0.15
        env = _env(pg_url, tmp_path, REDIS_URL=redis_url, PM_REDIS_NAMESPACE=redis_namespace,
                   PM_REDIS_HEARTBEAT_MS="1500", PM_LEASE_S="3", PM_RECONCILE_INTERVAL_S="1",
                   PM_OUTBOX_CLAIM_S="0.6", PM_OUTBOX_SWEEP_S="1", PM_WORKER_THREADS="2",
                   SLACK_BOT_TOKEN="xoxb-test", SLACK_API_URL=slack.api_url)
        rt = build_runtime(Settings(DATABASE_URL=pg_url, REDIS_URL=redis_url, PM_HOME=str(tmp_path / "pm")),
                           namespace=redis_namespace)
        logs = (tmp_path / "a.log", tmp_path / "b.log")
        a = _start(env, logs[0], ("bot.cli", "worker"))
        b = None
        try:
            ids = _create(rt, n, channel="C{i}", user="U1")
            for inv_id in ids:
                rt.enqueue(inv_id)
            _wait_for(lambda: slack.count_calls("chat.update") >= 4 and _claimed_now(rt), 60,
                      "worker A to be sending a batch", logs)
            _signal(a, signal.SIGKILL)  # mid-send: its claims must come back, its runs must finish elsewhere
            a.wait(10)
            b = _start(env, logs[1], ("bot.cli", "worker"))

            def settled() -> bool:
                with rt.session() as s:
                    return (all(_row(rt, i)["status"] == "COMPLETE" for i in ids)
                            and outbox.pending_count(session=s) == 0)

            # well under the time a dead drainer's claim used to block its investigations (60 s)
            _wait_for(settled, 50, "every investigation complete and nothing pending", logs)
        finally:
            _stop(a, b)
            rt.close()
        roles: collections.Counter[tuple[str, str]] = collections.Counter()
        for msg in slack.bot_messages():
            body = (msg.get("metadata") or {}).get("event_payload") or {}
            if body.get("investigation_id"):
                roles[(body["investigation_id"], body["role"])] += 1
    dupes = {k: v for k, v in roles.items() if v > 1}
    assert not dupes, f"posted twice: {dupes}"
    for inv_id in ids:
        assert roles[(inv_id, "parent")] == roles[(inv_id, "status")] == roles[(inv_id, "report")] == 1
    with rt.session() as s:
        assert outbox.pending_count(session=s) == 0
