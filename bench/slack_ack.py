"""Bench: 500 /investigate commands in a burst through the stand-in Slack (socket mode).

Prints ack latency p50/p99 (target p99 < 100 ms), time from command to the first message of
its investigation in Slack (target < 1 s), and how many were dropped (target 0).
The bot runs without a worker (as next to a separate `pm worker`): the figures are the front
door's (ack, persist, dedup, record, enqueue, publish the parent/status), not the investigation's.

Run: PYTHONPATH=. .venv/bin/python bench/slack_ack.py [--n 500]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.slack.runner import SlackBot  # noqa: E402
from bot.slack.settings import SlackSettings  # noqa: E402
from store.config import load_settings  # noqa: E402
from tests.fakes.slack_server import FakeSlack  # noqa: E402


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered)) - 1))]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, FakeSlack() as fake:
        settings = load_settings(PM_HOME=tmp, SLACK_BOT_TOKEN="xoxb-b", SLACK_APP_TOKEN="xapp-b",
                                 SLACK_API_URL=fake.api_url)
        bot = SlackBot(settings, SlackSettings(), worker=False, verify_token=False,
                       sources={"world": "/work/shared/worlds/example-2"}).start()
        try:
            fake.wait_connected()
            start = time.perf_counter()
            envelopes = [(f"C{i}", fake.slash_command(f"b{i} bench incident", user=f"U{i}", channel=f"C{i}"))
                         for i in range(args.n)]
            sent = time.perf_counter() - start
            fake.wait_for(lambda: len(fake.acks) >= args.n, 60, "every ack")
            acks = [(fake.ack_times[e] - fake.sent_times[e]) * 1000 for _, e in envelopes]

            def first_posts() -> bool:
                return all(fake.bot_messages(c) for c, _ in envelopes)
            try:
                fake.wait_for(first_posts, 120, "a message for every command")
            except TimeoutError:
                pass
            firsts = []
            with fake.lock:
                posts = list(fake.post_times.items())
            for channel, env in envelopes:
                times = [t for (c, _), t in posts if c == channel]
                if times:
                    firsts.append(min(times) - fake.sent_times[env])
            dropped = args.n - len(firsts)
        finally:
            bot.stop()
            bot.runtime.close()
    print(f"slash commands: {args.n} sent in {sent:.2f}s")
    print(f"ack latency: p50 {statistics.median(acks):.1f} ms, p99 {pct(acks, 99):.1f} ms, max {max(acks):.1f} ms"
          f" (target p99 < 100 ms)")
    if firsts:
        print(f"time to first message: p50 {statistics.median(firsts):.2f} s, p99 {pct(firsts, 99):.2f} s, "
              f"max {max(firsts):.2f} s (target < 1 s)")
    print(f"dropped: {dropped} (acks received {len(acks)})")
    return 0 if dropped == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
