"""Bench: how calm is an investigation's Slack thread? chat.update calls per investigation.

Starts ``--n`` investigations with ``/investigate`` through the stand-in Slack (socket mode) into the
real bot with its embedded worker (embedded SQLite, in-process broker) on the sandbox world example-2,
asks one follow-up question in each thread once it is finished, and prints per investigation:
the ``chat.update`` calls on its status message, how many of them were byte-identical to the
content before, the shortest gap between two edits of the same message, the calls made by the
follow-up, and whether the status message ends showing the final state (COMPLETE).

Targets (issue #12): no identical edit, at most one edit per message per ~2 s (the final one may
come sooner), the final state always shown, no edit for a follow-up.

Run: PYTHONPATH=. .venv/bin/python bench/slack_thread.py [--n 5]
     (to measure another checkout, put it first on PYTHONPATH: this file only appends its own root)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parents[1]))

from bot.slack.runner import SlackBot  # noqa: E402
from bot.slack.settings import SlackSettings  # noqa: E402
from store.config import load_settings  # noqa: E402
from tests.fakes.slack_server import FakeSlack  # noqa: E402
from tests.paths import SHARED  # noqa: E402

WORLD = SHARED / "worlds" / "example-2"


class TimedSlack(FakeSlack):
    """The stand-in Slack, also noting when each Web API call arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.call_times: list[float] = []

    def call(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.call_times.append(time.perf_counter())
            return super().call(method, args)


def _status_updates(fake: TimedSlack, channel: str, ts: str) -> list[tuple[float, str]]:
    with fake.lock:
        return [(t, json.dumps([a.get("text"), a.get("blocks")], sort_keys=True))
                for t, (m, a) in zip(fake.call_times, fake.calls, strict=True)
                if m == "chat.update" and a.get("channel") == channel and a.get("ts") == ts]


def run(n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    with TimedSlack() as fake, tempfile.TemporaryDirectory() as home:
        settings = load_settings(PM_HOME=home, SLACK_BOT_TOKEN="xoxb-bench", SLACK_APP_TOKEN="xapp-bench",
                                 SLACK_API_URL=fake.api_url, PM_WORKER_THREADS=2)
        bot = SlackBot(settings, SlackSettings(), sources={"world": str(WORLD)}, verify_token=False).start()
        try:
            fake.wait_connected()
            channels = [f"CB{i}" for i in range(n)]
            for i, channel in enumerate(channels):
                fake.wait_ack(fake.slash_command("PAY-44706 fast",
                                                 user=f"U{i}", channel=channel))
                # one at a time: the same ticket twice would attach to the open investigation
                parent = fake.wait_for(lambda c=channel: next(
                    (m for m in fake.bot_messages(c) if not m.get("thread_ts")), None), 60, "a parent")
                status = fake.wait_for(lambda c=channel, p=parent: next(
                    (m for m in fake.thread(c, p["ts"]) if m["text"].startswith("Investigation inv-")), None),
                    60, "a status message")
                fake.wait_for(lambda c=channel, p=parent: any(
                    any(b.get("type") == "header" for b in m.get("blocks") or []) for m in fake.thread(c, p["ts"])),
                    180, "the report")
                time.sleep(3.0)  # let the last status edits land
                before_q = fake.count_calls("chat.update")
                q = fake.add_message(channel, "what changed in pricing?", user=f"U{i}", thread_ts=parent["ts"])
                fake.wait_ack(fake.event({"type": "message", "channel": channel, "user": f"U{i}",
                                          "text": "what changed in pricing?", "ts": q["ts"],
                                          "thread_ts": parent["ts"]}))
                fake.wait_for(lambda c=channel, p=parent, q=q: any(
                    m.get("user") == "UBOT" and float(m["ts"]) > float(q["ts"]) for m in fake.thread(c, p["ts"])),
                    30, "the answer")
                time.sleep(1.0)
                updates = _status_updates(fake, channel, status["ts"])
                identical = sum(1 for a, b in zip(updates, updates[1:], strict=False) if a[1] == b[1])
                gaps = [b[0] - a[0] for a, b in zip(updates, updates[1:], strict=False)]
                out.append({"updates": len(updates), "identical": identical,
                            "min_gap_s": min(gaps) if gaps else None,
                            "gaps_under_2s": sum(1 for g in gaps[:-1] if g < 1.9),
                            "followup_updates": fake.count_calls("chat.update") - before_q,
                            "final": "COMPLETE" in (fake.thread(channel, parent["ts"])[1]["text"])})
        finally:
            bot.stop()
            bot.runtime.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5)
    args = parser.parse_args()
    started = time.perf_counter()
    rows = run(args.n)
    print(f"{'#':>2} {'chat.update':>11} {'identical':>9} {'gaps<2s (not last)':>18} {'min gap s':>9} "
          f"{'follow-up edits':>15} {'final shown':>11}")
    for i, r in enumerate(rows):
        gap = f"{r['min_gap_s']:.2f}" if r["min_gap_s"] is not None else "-"
        print(f"{i:>2} {r['updates']:>11} {r['identical']:>9} {r['gaps_under_2s']:>18} {gap:>9} "
              f"{r['followup_updates']:>15} {str(r['final']):>11}")
    print(f"chat.update per investigation: mean {statistics.mean(r['updates'] for r in rows):.1f}, "
          f"max {max(r['updates'] for r in rows)}; identical: {sum(r['identical'] for r in rows)}; "
          f"follow-up edits: {sum(r['followup_updates'] for r in rows)}; "
          f"final state shown: {sum(r['final'] for r in rows)}/{len(rows)} "
          f"({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
