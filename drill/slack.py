"""The stand-in Slack for ``--slack``: ``pm serve`` publishes to it and the drill times the first message.

It is ``tests.fakes.slack_server.FakeSlack`` (the Slack Web API's wire protocol on loopback), run in
the drill's process; ``pm serve`` gets ``SLACK_BOT_TOKEN``, ``SLACK_API_URL`` and
``PM_DEFAULT_CHANNEL`` pointing at it (drill/stack.py).
"""

from __future__ import annotations

import time
from datetime import datetime

from tests.fakes.slack_server import FakeSlack

CHANNEL = "C0DRILL"


class StandInSlack:
    """A running stand-in Slack; ``url`` is its Web API base, ``first_message_after`` the figure."""

    def __init__(self) -> None:
        self.fake = FakeSlack()
        # The stand-in stamps posts with perf_counter; this turns them into wall-clock seconds.
        self._offset = time.time() - time.perf_counter()
        self.url = ""

    def start(self) -> StandInSlack:
        self.fake.start()
        self.fake.add_channel(CHANNEL, "drill")
        self.url = self.fake.api_url
        return self

    def first_message_after(self, created_at: str, timeout_s: float = 10.0) -> float | None:
        """Seconds from ``created_at`` (ISO-8601) to the first message posted in the drill's channel after it."""
        since = datetime.fromisoformat(created_at.replace("Z", "+00:00")).timestamp()
        deadline = time.monotonic() + timeout_s
        while True:
            with self.fake.lock:
                posted = sorted(t + self._offset for (channel, _ts), t in self.fake.post_times.items()
                                if channel == CHANNEL)
            after = [t for t in posted if t >= since - 0.5]
            if after:
                return round(after[0] - since, 2)
            if time.monotonic() > deadline:
                return None
            time.sleep(0.1)

    def stop(self) -> None:
        self.fake.stop()
