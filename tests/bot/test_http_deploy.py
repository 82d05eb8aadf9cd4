"""POST /webhooks/deploy -> a delayed health-check message -> (a dramatiq worker on that queue) ->
before/after comparison through the tools on a sandbox world -> an investigation only on regression.

The tools are ``sandbox.tools.WorldTools`` on example-2, the reference implementation of the
capabilities; in example-2 the pricing deploy chg-3835 at 16:13:02 raised the error rate ~30x and the
shipping deploy chg-4817 at 15:27:20 changed nothing.
"""

from __future__ import annotations

import time

import httpx
import pytest
from dramatiq import Worker
from sqlalchemy import select

from bot.http.app import create_app
from bot.http.server import ServerThread
from bot.http.settings import load_http_settings
from pipeline.deploy_check import QUEUE
from pipeline.runtime import build_runtime
from sandbox.tools import WorldTools
from store.config import load_settings
from store.db import upgrade
from store.models import InboundDelivery, Investigation
from tests.paths import SHARED

WORLD = (SHARED / "worlds/example-2")


@pytest.fixture()
def deploy_listener(tmp_path, sqlite_url):
    if not WORLD.exists():
        pytest.fail(f"{WORLD} is missing; the deploy test reads its metrics")
    upgrade(sqlite_url)
    settings = load_settings(PM_HOME=str(tmp_path), DATABASE_URL=sqlite_url, API_KEYS="k",
                             POST_DEPLOY_CHECK_DELAY_MS=1000, HEALTH_CHECK_THRESHOLD_MULTIPLIER=2.0)
    runtime = build_runtime(settings)
    app = create_app(settings, runtime, load_http_settings(), tools_factory=lambda spec: WorldTools(WORLD))
    server = ServerThread(app).start()
    # Only the deploy-check queue: the investigations themselves are not run here.
    worker = Worker(runtime.broker, queues={QUEUE}, worker_threads=1, worker_timeout=100)
    worker.start()
    yield server, runtime, app
    worker.stop(timeout=5000)
    server.stop()
    runtime.close()


def _investigations(runtime):
    with runtime.session() as s:
        return list(s.execute(select(Investigation.fingerprint, Investigation.priority, Investigation.trigger)))


def test_regressing_deploy_opens_an_investigation_and_a_healthy_one_does_not(deploy_listener):

    server, runtime, app = deploy_listener
    with httpx.Client(base_url=server.url, headers={"Authorization": "Bearer k"}) as client:
        healthy = client.post("/webhooks/deploy", json={
            "id": "dep-1", "service": "shipping", "environment": "production", "version": "4.18.74",
            "deployed_at": "2026-10-02T15:27:20Z"})
        bad = client.post("/webhooks/deploy", json={
            "id": "dep-2", "service": "pricing", "environment": "production", "version": "7.15.25",
            "deployed_at": "2026-10-02T16:13:02Z"})
    assert healthy.status_code == bad.status_code == 202
    assert bad.json()["status"] == "accepted"
    app.state.context.processor.wait_idle()
    assert _investigations(runtime) == []  # nothing before the delay has passed and the check ran

    deadline = time.monotonic() + 30
    while not _investigations(runtime) and time.monotonic() < deadline:
        time.sleep(0.1)
    runtime.broker.join(QUEUE, timeout=30_000)  # both checks have run
    (row,) = _investigations(runtime)
    assert row.fingerprint == "deploy:pricing:7.15.25" and row.priority == "P1"
    assert row.trigger["service"] == "pricing" and "error_rate" in row.trigger["text"]
    assert row.trigger["window"] == {"start": "2026-10-02T16:08:02Z", "end": "2026-10-02T16:18:02Z"}
    with runtime.session() as s:
        assert set(s.execute(select(InboundDelivery.status)).scalars()) == {"scheduled"}
