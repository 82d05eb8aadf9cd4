"""Soak: many investigations through worker processes while faults are injected (issue #11).

Two (``--workers``) ``pm worker`` processes on PostgreSQL + Redis publish to the stand-in Slack,
which answers every call ``--slack-delay`` seconds late. While the investigations run, a fault
injector SIGKILLs a random worker (a supervisor restarts it at once) or SIGSTOPs one past its
lease and SIGCONTs it later, and once deletes every Redis key of the namespace. At the end it
prints: completed / duplicates (Slack messages posted twice for the same investigation and role)
/ stuck (not finished, or deliveries still pending) / dead letters / max and p50 time to
complete (created → finished), and the faults injected. Target: all completed, 0 / 0.

Run: PYTHONPATH=. .venv/bin/python bench/soak.py [--count 200] [--workers 2] [--slack-delay 1.5]
     [--faults 8] [--timeout 3600] [--seed 1]
     [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres] [--redis-url redis://127.0.0.1:6379/0]

Leases and periods are shortened (``--lease``, default 10 s; reconcile every 5 s; outbox claim
10 s, swept every 2 s; Redis hands a dead worker's messages on after 5 s) so a run takes minutes,
not hours; docs/reliability.md states the bound with the production defaults.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, func, make_url, select, text  # noqa: E402

from pipeline.runtime import build_runtime  # noqa: E402
from store import investigations as invs  # noqa: E402
from store import outbox  # noqa: E402
from store.config import Settings  # noqa: E402
from store.db import upgrade  # noqa: E402
from store.models import TERMINAL_STATUSES, Delivery, Investigation, ProgressEvent  # noqa: E402
from tests.fakes.slack_server import FakeSlack  # noqa: E402
from tests.paths import WORLDS  # noqa: E402


@contextlib.contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new, uniquely named PostgreSQL database on ``server_url``'s server, dropped afterwards."""
    name = f"pm_soak_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class Workers:
    """``pm worker`` processes with a supervisor's restart, and the faults the soak injects."""

    def __init__(self, n: int, env: dict[str, str], logdir: Path) -> None:
        self.env, self.logdir = env, logdir
        self.procs: list[subprocess.Popen] = [self._start(i) for i in range(n)]
        self.faults: collections.Counter[str] = collections.Counter()

    def _start(self, i: int) -> subprocess.Popen:
        log = (self.logdir / f"worker-{i}.log").open("ab")
        return subprocess.Popen([sys.executable, "-m", "bot.cli", "worker"], cwd=ROOT, env=self.env,
                                start_new_session=True, stdout=log, stderr=subprocess.STDOUT)

    def kill(self, i: int) -> None:
        os.killpg(self.procs[i].pid, signal.SIGKILL)
        self.procs[i].wait(10)
        self.procs[i] = self._start(i)  # the supervisor (systemd, Kubernetes) restarts it
        self.faults["sigkill"] += 1

    def pause(self, i: int, seconds: float) -> None:
        os.killpg(self.procs[i].pid, signal.SIGSTOP)
        self.faults["sigstop"] += 1
        time.sleep(seconds)
        os.killpg(self.procs[i].pid, signal.SIGCONT)

    def stop(self) -> None:
        for p in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGCONT)
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


def flush_namespace(redis_url: str, namespace: str) -> int:
    import redis

    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{namespace}*"))
    if keys:
        client.delete(*keys)
    client.close()
    return len(keys)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--slack-delay", type=float, default=1.5)
    ap.add_argument("--faults", type=int, default=8, help="SIGKILL/SIGSTOP faults to inject (plus one Redis flush)")
    ap.add_argument("--lease", type=float, default=10.0)
    ap.add_argument("--timeout", type=float, default=3600.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--world", type=Path, default=WORLDS / "example-1")
    ap.add_argument("--logdir", type=Path, default=None, help="keep the workers' logs here (default: thrown away)")
    ap.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = ap.parse_args()
    if not args.world.is_dir():
        raise SystemExit(f"no world at {args.world}; pass --world DIR (e.g. ../shared/worlds/example-1)")
    rng = random.Random(args.seed)
    namespace = f"pmsoak-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp, fresh_database(args.database_url) as db_url, FakeSlack() as slack:
        upgrade(db_url)
        slack.delay_s = args.slack_delay
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PM_", "DATABASE_URL", "REDIS_URL", "SLACK_"))}
        env.update({
            "DATABASE_URL": db_url, "REDIS_URL": args.redis_url, "PM_REDIS_NAMESPACE": namespace,
            "PM_HOME": str(Path(tmp) / "pm"), "PYTHONPATH": str(ROOT), "PM_WORKER_THREADS": "2",
            "PM_LEASE_S": str(args.lease), "PM_RECONCILE_INTERVAL_S": str(args.lease / 2),
            "PM_OUTBOX_CLAIM_S": str(args.lease), "PM_OUTBOX_SWEEP_S": "2", "PM_REDIS_HEARTBEAT_MS": "5000",
            "SLACK_BOT_TOKEN": "xoxb-soak", "SLACK_API_URL": slack.api_url,
        })
        rt = build_runtime(Settings(DATABASE_URL=db_url, REDIS_URL=args.redis_url, PM_HOME=str(Path(tmp) / "pm")),
                           namespace=namespace)
        stop = threading.Event()
        logdir = args.logdir or Path(tmp)
        logdir.mkdir(parents=True, exist_ok=True)
        workers = Workers(args.workers, env, logdir)
        try:
            started = time.monotonic()
            ids = []
            for i in range(args.count):
                with rt.session() as s:
                    ids.append(invs.create(session=s, trigger={"alert": "pd-8240"}, sources={"world": str(args.world)},
                                           origin={"kind": "slack", "channel": f"Csoak{i}", "user": "U1"}).id)
                rt.enqueue(ids[-1])

            def inject() -> None:
                flushed = False
                for _ in range(args.faults):
                    if stop.wait(rng.uniform(5, 15)):
                        return
                    if not flushed:
                        flush_namespace(args.redis_url, namespace)
                        workers.faults["redis-flush"] += 1
                        flushed = True
                    victim = rng.randrange(len(workers.procs))
                    if rng.random() < 0.6:
                        workers.kill(victim)
                    else:
                        workers.pause(victim, args.lease + rng.uniform(1, 5))

            injector = threading.Thread(target=inject, daemon=True)
            injector.start()

            def state() -> tuple[int, int]:
                with rt.session() as s:
                    open_ = s.scalar(select(func.count(Investigation.id)).where(
                        Investigation.id.in_(ids), Investigation.status.not_in(TERMINAL_STATUSES))) or 0
                    return int(open_), outbox.pending_count(session=s)

            last_print = 0.0
            while time.monotonic() - started < args.timeout:
                open_, pending = state()
                if open_ == 0 and pending == 0 and not injector.is_alive():
                    break
                if time.monotonic() - last_print > 30:
                    last_print = time.monotonic()
                    print(f"  {time.monotonic() - started:6.0f} s: {args.count - open_} finished, {pending} deliveries "
                          f"pending, faults {dict(workers.faults)}", file=sys.stderr)
                time.sleep(1)
            stop.set()
            injector.join(60)
            elapsed = time.monotonic() - started
        finally:
            stop.set()
            workers.stop()
        with rt.session() as s:
            by_id = {r[0]: r[1:] for r in s.execute(
                select(Investigation.id, Investigation.status, Investigation.created_at, Investigation.finished_at)
                .where(Investigation.id.in_(ids))).all()}
            rows = [by_id[i] for i in ids]
            pending = outbox.pending_count(session=s)
            dead = outbox.dead_letters(session=s)
            waiting = set(s.scalars(select(ProgressEvent.investigation_id).join(
                Delivery, Delivery.event_id == ProgressEvent.id).where(Delivery.status == "pending")))
        rt.close()
        roles: collections.Counter[tuple[str, str]] = collections.Counter()
        for msg in slack.bot_messages():
            body = (msg.get("metadata") or {}).get("event_payload") or {}
            if body.get("investigation_id"):
                roles[(body["investigation_id"], body["role"])] += 1
        posts = sum(1 for m, _ in slack.calls if m == "chat.postMessage")
    done = [(f - c).total_seconds() for st, c, f in rows if st == "COMPLETE" and f]
    stuck_runs = {i for i, (st, _c, _f) in zip(ids, rows, strict=True) if st not in TERMINAL_STATUSES}
    reports = sum(1 for (_i, role), _n in roles.items() if role == "report")
    out = {
        "count": args.count, "workers": args.workers, "slack_delay_s": args.slack_delay,
        "completed": len(done), "failed": sum(1 for st, _c, _f in rows if st == "FAILED"),
        "duplicates": sum(n - 1 for n in roles.values() if n > 1),
        # not finished, or finished with deliveries still pending
        "stuck": len(stuck_runs | waiting), "deliveries_pending": pending, "dead_letters": len(dead),
        "reports_posted": reports, "chat_posts": posts,
        "max_time_to_complete_s": round(max(done), 1) if done else None,
        "p50_time_to_complete_s": round(statistics.median(done), 1) if done else None,
        "wall_s": round(elapsed, 1), "faults": dict(workers.faults),
    }
    print(json.dumps(out, indent=2))
    ok = out["completed"] == args.count and out["duplicates"] == 0 and out["stuck"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
