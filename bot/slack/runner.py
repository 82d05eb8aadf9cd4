"""The Slack bot's composition root: settings → runtime → publisher → Bolt app → socket mode."""

from __future__ import annotations

import gc
import logging
import os
import sys
from pathlib import Path
from typing import Any

from agents.followup import make_answerer
from bot.slack.app import create_app
from bot.slack.context import BotContext
from bot.slack.front import SocketFront
from bot.slack.gate import WriteGate
from bot.slack.handoff import Handoff
from bot.slack.journal import MAX_BATCH, PG_MAX_BATCH, InboundJournal
from bot.slack.listeners import command_investigate
from bot.slack.pressure import AckPressure
from bot.slack.replay import replay_unfinished
from bot.slack.settings import SlackSettings
from bot.slack.starts import StartBatcher
from bot.slack.sweeper import Sweeper
from publishers.slack import make_slack_alarm, make_slack_publisher, make_web_client
from store import outbox
from store.errors import ConfigError

log = logging.getLogger(__name__)

#: The bot process's GIL switch interval (see SlackBot.start).
SWITCH_INTERVAL_S = 0.001


#: A delivery still "accepted" this long after its ack is replayed: work in flight in a live bot
#: process links its row within a second or two, even in a burst of 500 (docs/slack.md).
REPLAY_GRACE_S = 10.0
#: How often the sweeper looks for such deliveries.
REPLAY_PERIOD_S = 5.0


class SlackBot:
    """The running bot: socket-mode connection, embedded worker (optional) and outbox sweeper.

    Args:
        settings: store.config.Settings (SLACK_BOT_TOKEN, SLACK_APP_TOKEN, SLACK_API_URL).
        slack: PM_SLACK_* settings.
        runtime: a pipeline runtime; built from ``settings`` (after migrating the database) when None.
        sources: sources given to every investigation (tests pass ``{"world": dir}``).
        worker: run a dramatiq worker in this process (embedded mode); off when `pm worker` runs apart.
        verify_token: call auth.test at start-up.

    Raises:
        ConfigError: a token is missing (the message says which variable to set).
    """

    def __init__(self, settings: Any, slack: SlackSettings, *, runtime: Any = None,
                 sources: dict[str, Any] | None = None, worker: bool = True, verify_token: bool = True) -> None:
        for name, value in (("SLACK_BOT_TOKEN", settings.slack_bot_token), ("SLACK_APP_TOKEN", settings.slack_app_token)):
            if value is None:
                raise ConfigError(f"{name} is unset; create the app from app_manifest.yaml (see docs/slack.md) "
                                  "and set SLACK_BOT_TOKEN=xoxb-… and SLACK_APP_TOKEN=xapp-…")
        self.client = make_web_client(token=settings.slack_bot_token.get_secret_value(),
                                      base_url=settings.slack_api_url)
        # Listener-side calls (views.open, ephemerals) wait out one 429 instead of failing.
        from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

        self.client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=2))
        if runtime is None:
            from pipeline.runtime import build_runtime
            from store.db import upgrade_on_start

            upgrade_on_start(settings)
            from store.config import load_cost_settings

            runtime = build_runtime(settings, cost=load_cost_settings())
        self.runtime = runtime
        # The publisher gets its own client: a 429 there must become RetryLater, not a sleep.
        self.runtime.register_publisher("slack", make_slack_publisher(settings))
        self.runtime.alarm = make_slack_alarm(settings)  # dead-lettered deliveries, when PM_ADMIN_CHANNEL is set
        if runtime.engine.dialect.name == "sqlite":
            WriteGate().install(runtime.engine)  # one writer: the ack path's commit goes first
        pg = runtime.engine.dialect.name == "postgresql"
        self.journal = InboundJournal(runtime.session, max_batch=PG_MAX_BATCH if pg else MAX_BATCH,
                                      engine=runtime.engine if pg else None)
        # Background work (starts, outbox lanes) steps aside while envelopes wait for their ack.
        self.pressure = AckPressure()
        self.sweeper = Sweeper(runtime, periodic=self.replay, period_s=REPLAY_PERIOD_S, pressure=self.pressure)
        self.handoff = Handoff(self.journal, threads=2, on_done=self.sweeper.poke, pressure=self.pressure)
        self.starts = StartBatcher(runtime, self.journal, self.client, on_done=self.sweeper.poke,
                                   pressure=self.pressure)
        self.ctx = BotContext(runtime=runtime, settings=settings, slack=slack, client=self.client,
                              sources=dict(sources or {}), handoff=self.handoff,
                              followup_answerer=make_answerer(settings), starts=self.starts)
        self.app = create_app(self.ctx, verify_token=verify_token)
        self.front = SocketFront(self.app, journal=self.journal, reaction=slack.reaction,
                                 app_token=settings.slack_app_token.get_secret_value(),
                                 api_url=settings.slack_api_url, quick=self._quick, pressure=self.pressure)
        self._want_worker = worker
        self._worker: Any = None
        self.settings = settings
        self._home_lock: int | None = None

    def start(self) -> SlackBot:
        """Start the worker, journal and sweeper, replay unfinished deliveries, connect; returns at once."""
        # The socket thread, the journal and the background threads hand the GIL to each other at
        # every database or socket call; with the default 5 ms switch interval a burst's commits
        # waited up to 5 ms per round trip for a busy thread. 1 ms cut the ack p99 of
        # bench/slack_ack.py by ~10% in paired runs (docs/slack.md).
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
        # The only bot on its embedded database (SQLite under PM_HOME, and no other live bot holds the
        # home's lock): outbox claims still held, and deliveries still "accepted", were a dead
        # predecessor's. Waiting out their lease and the replay grace kept a killed-and-restarted bot's
        # threads silent (issue #12). Anywhere else a sibling may still be working on them.
        sole = self.runtime.engine.dialect.name == "sqlite" and self._lock_home()
        if sole:
            with self.runtime.session() as s:
                if outbox.release_claims(session=s):
                    log.warning("released outbox claims left by a previous bot process")
                s.commit()
        if self._want_worker:
            self._worker = self.runtime.start_worker()
        self.journal.start()
        self.starts.start()
        self.sweeper.start()
        # Embedded SQLite belongs to this one bot (PM_HOME): whatever is still "accepted" now was acked
        # by a process that died, so it is replayed at once instead of after the grace a sibling on a
        # shared database gets (issue #12: a minute of "Starting…" after a crash and restart).
        self.replay(0.0 if sole else REPLAY_GRACE_S)
        # Everything alive now (modules, the app, the runtime: ~200,000 objects) lives as long as
        # the process. A full collection walks all of them and holds the GIL while it does: at
        # load ~3 one took 90–150 ms, and the one a burst of envelopes set off stopped every ack
        # behind it. Frozen objects are left out of every later collection (docs.python.org,
        # gc.freeze); only what the bot allocates from here on is ever scanned (docs/slack.md).
        gc.collect()
        gc.freeze()
        self.front.connect()
        log.info("slack bot connected (api %s)", self.client.base_url)
        return self

    def _quick(self, body: dict[str, Any]) -> Any:
        """Commands acked without the Bolt app (see :mod:`bot.slack.front`)."""
        if body.get("command") == "/investigate":
            return command_investigate.quick_ack(body, self.ctx)
        return None

    def replay(self, older_than_s: float = REPLAY_GRACE_S) -> int:
        """Re-run deliveries acked by an earlier process that died before their work finished.

        Returns:
            How many were replayed (see :mod:`bot.slack.replay`).
        """
        return replay_unfinished(app=self.app, runtime=self.runtime, journal=self.journal,
                                 older_than_s=older_than_s)

    def _lock_home(self) -> bool:
        """Take PM_HOME's bot lock (``slack-bot.lock``, an flock the kernel drops when the process
        dies, even by SIGKILL); False when another live bot holds it or the home is not writable."""
        try:
            import fcntl

            home = Path(self.settings.home)
            home.mkdir(parents=True, exist_ok=True)
            fd = os.open(home / "slack-bot.lock", os.O_RDWR | os.O_CREAT, 0o600)
        except (ImportError, OSError):
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            log.info("another bot runs on %s: unfinished work is left to it for %.0f s", self.settings.home,
                     REPLAY_GRACE_S)
            return False
        self._home_lock = fd
        return True

    def stop(self) -> None:
        """Close the connection, finish handed-off work, then stop the journal, sweeper and worker."""
        self.front.close()
        self.handoff.stop()
        self.starts.stop()
        self.journal.stop()
        self.sweeper.stop()
        if self._worker:
            self._worker.stop(timeout_ms=10_000)
        if self._home_lock is not None:
            os.close(self._home_lock)  # releases the home's bot lock
            self._home_lock = None
        gc.unfreeze()  # what start() froze may be collected again (a process that runs bots in turn: tests)
