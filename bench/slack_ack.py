"""Bench: 500 /investigate commands in a burst through the stand-in Slack (socket mode).

Prints ack latency p50/p99 (target p99 < 100 ms), time from command to the first message of
its investigation in Slack (target < 1 s), and how many were dropped (target 0).
The bot runs without a worker (as next to a separate `pm worker`): the figures are the front
door's (ack, persist, dedup, record, enqueue, publish the parent/status), not the investigation's.

The stand-in Slack runs in a child process (tests/fakes/slack_server_proc.py), as Slack is
remote in production: its websocket and HTTP work does not share the bot's GIL. The child
measures both ends (envelope sent → ack received; envelope sent → first chat.postMessage).

Run: PYTHONPATH=. .venv/bin/python bench/slack_ack.py [--n 500] [--runs 2]
     [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/<db>]   (default: embedded SQLite)
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import create_engine, make_url, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.slack.runner import SlackBot  # noqa: E402
from bot.slack.settings import SlackSettings  # noqa: E402
from store.config import load_settings  # noqa: E402
from tests.fakes.slack_server_proc import SlackServerProcess  # noqa: E402


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered)) - 1))]


@contextlib.contextmanager
def fresh_database(server_url: str | None) -> Iterator[str | None]:
    """A new, uniquely named PostgreSQL database on ``server_url``'s server, dropped afterwards.

    Each run starts empty: rows left by an earlier run (its stand-in Slack is gone) would
    otherwise be retried by the sweeper and charged to this run.
    """
    if not server_url:
        yield None
        return
    name = f"pm_slack_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def run_once(n: int, server_url: str | None) -> dict[str, object]:
    """One burst of ``n`` commands against a fresh bot (and a fresh database); returns the child's measurements."""
    with tempfile.TemporaryDirectory() as tmp, SlackServerProcess() as fake, \
            fresh_database(server_url) as database_url:
        extra = {"DATABASE_URL": database_url} if database_url else {}
        settings = load_settings(PM_HOME=tmp, SLACK_BOT_TOKEN="xoxb-b", SLACK_APP_TOKEN="xapp-b",
                                 SLACK_API_URL=fake.api_url, **extra)
        bot = SlackBot(settings, SlackSettings(), worker=False, verify_token=False,
                       sources={"world": "/work/shared/worlds/example-2"}).start()
        try:
            fake.order("wait_connected")
            return fake.order("burst", n=n, timeout=120)
        finally:
            bot.stop()
            bot.runtime.close()


def report(n: int, result: dict[str, object]) -> int:
    """Print one run's figures; returns how many commands got no ack or no message."""
    acks = [a for a in result["ack_ms"] if a is not None]  # type: ignore[union-attr]
    firsts = [f for f in result["first_s"] if f is not None]  # type: ignore[union-attr]
    print(f"slash commands: {n} sent in {float(result['send_s']):.2f}s (stand-in Slack in a child process)")
    if acks:
        print(f"ack latency: p50 {statistics.median(acks):.1f} ms, p99 {pct(acks, 99):.1f} ms, "
              f"max {max(acks):.1f} ms (target p99 < 100 ms)")
    if firsts:
        print(f"time to first message: p50 {statistics.median(firsts):.2f} s, p99 {pct(firsts, 99):.2f} s, "
              f"max {max(firsts):.2f} s (target < 1 s)")
    dropped = n - len(firsts)
    print(f"dropped: {dropped} (acks received {len(acks)})")
    return dropped + (n - len(acks))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--runs", type=int, default=1, help="repeat the burst against a fresh bot")
    parser.add_argument("--database-url", default=None,
                        help="PostgreSQL URL of a database to connect to; each run creates and drops its own "
                             "database on that server (default: embedded SQLite)")
    args = parser.parse_args()
    print(f"database: {'PostgreSQL' if args.database_url else 'embedded SQLite'}")
    bad = 0
    for i in range(args.runs):
        if args.runs > 1:
            print(f"-- run {i + 1}/{args.runs}")
        bad += report(args.n, run_once(args.n, args.database_url))
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
