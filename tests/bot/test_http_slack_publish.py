"""An alert webhook's investigation is published, threaded, into its domain's Slack channel.

Real listener (uvicorn in a thread), real pipeline with a worker (embedded SQLite, in-process broker,
the sandbox world example-2 as the tools), the real Slack publisher against the stand-in Slack.
"""

from __future__ import annotations

import json

import httpx

from bot.http.app import create_app
from bot.http.server import ServerThread
from bot.http.settings import load_http_settings
from bot.http.wiring import configure_runtime
from pipeline.runtime import build_runtime
from store.config import load_settings
from store.db import upgrade
from tests.commands.test_webhooks import alert_group_payload
from tests.fakes.slack_server import FakeSlack
from tests.paths import SHARED

API_KEY = "listener-key"


def test_alert_investigation_is_published_in_the_domain_channel(tmp_path, sqlite_url):
    upgrade(sqlite_url)
    with FakeSlack() as fake:
        settings = load_settings(
            PM_HOME=str(tmp_path), DATABASE_URL=sqlite_url, API_KEYS=API_KEY, SLACK_BOT_TOKEN="xoxb-test",
            SLACK_API_URL=fake.api_url, PM_WORLD=str(SHARED / "worlds" / "example-2"), PM_WORKER_THREADS=2,
        )
        http = load_http_settings(PM_DOMAINS=json.dumps({"booking": "bookings"}),
                                  PM_DOMAIN_CHANNELS=json.dumps({"bookings": "C0BOOK"}))
        runtime = build_runtime(settings)
        configure_runtime(runtime, settings, http)
        assert "slack" in runtime.publishers
        app = create_app(settings, runtime, http)
        server = ServerThread(app).start()
        worker = runtime.start_worker()
        try:
            resp = httpx.post(f"{server.url}/webhooks/alertmanager", json=alert_group_payload(),
                              headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10)
            assert resp.status_code == 202, resp.text
            parent = fake.wait_for(
                lambda: next((m for m in fake.bot_messages("C0BOOK") if not m.get("thread_ts")), None),
                60, "a parent message in the domain channel")
            report = fake.wait_for(
                lambda: next((m for m in fake.thread("C0BOOK", parent["ts"])
                              if any(b.get("type") == "header" for b in m.get("blocks") or [])), None),
                120, "the report in the thread")
            assert "pricing" in report["text"]  # example-2's culprit, found through the sandbox tools
            assert set(fake.messages) == {"C0BOOK"}  # nothing posted anywhere else
        finally:
            worker.stop()
            server.stop()
            runtime.close()
