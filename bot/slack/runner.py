"""The Slack bot's composition root: settings → runtime → publisher → Bolt app → socket mode."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.adapter.socket_mode import SocketModeHandler

from bot.slack.app import create_app
from bot.slack.context import BotContext
from bot.slack.settings import SlackSettings
from bot.slack.sweeper import Sweeper
from publishers.slack import SlackPublisher, make_web_client
from store.errors import ConfigError

log = logging.getLogger(__name__)


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
            from store.db import upgrade

            upgrade(settings.effective_database_url)
            runtime = build_runtime(settings)
        self.runtime = runtime
        # The publisher gets its own client: a 429 there must become RetryLater, not a sleep.
        self.runtime.register_publisher("slack", SlackPublisher(make_web_client(
            token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url)))
        self.ctx = BotContext(runtime=runtime, settings=settings, slack=slack, client=self.client,
                              sources=dict(sources or {}))
        self.app = create_app(self.ctx, verify_token=verify_token)
        self.handler = SocketModeHandler(self.app, app_token=settings.slack_app_token.get_secret_value(),
                                         web_client=self.client)
        self._want_worker = worker
        self._worker: Any = None
        self._sweeper: Sweeper | None = None

    def start(self) -> SlackBot:
        """Start the worker and sweeper, open the socket-mode connection; returns at once."""
        if self._want_worker:
            self._worker = self.runtime.start_worker()
        self._sweeper = Sweeper(self.runtime).start()
        self.handler.connect()
        log.info("slack bot connected (api %s)", self.client.base_url)
        return self

    def stop(self) -> None:
        """Close the connection, then stop the sweeper and the worker."""
        self.handler.close()
        if self._sweeper:
            self._sweeper.stop()
        if self._worker:
            self._worker.stop(timeout_ms=10_000)
