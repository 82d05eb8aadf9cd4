"""The listener under concurrent deliveries: group commit on its database thread, real uvicorn,
real SQLite and PostgreSQL (a database of this test only), the in-process broker, no worker.

What must hold however requests are batched: each delivery is committed before its 2xx (a second
connection sees the row the moment the answer arrives), replays keep one row, nothing accepted
is lost, and each fingerprint gets exactly one investigation while the others attach to it.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import func, select

from bot.http.app import create_app
from bot.http.server import ServerThread
from bot.http.settings import load_http_settings
from pipeline.runtime import build_runtime
from store.config import load_settings
from store.db import make_engine, make_session_factory, upgrade
from store.models import InboundDelivery, Investigation, ProgressEvent
from tests.commands.test_webhooks import alert_group_payload

API_KEY = "storm-test-key"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request):
    fixture = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return request.getfixturevalue(fixture)


@pytest.fixture
def served(tmp_path, database_url):
    upgrade(database_url)
    settings = load_settings(PM_HOME=str(tmp_path), DATABASE_URL=database_url, API_KEYS=API_KEY)
    runtime = build_runtime(settings)
    app = create_app(settings, runtime, load_http_settings())
    server = ServerThread(app).start()
    engine = make_engine(database_url)  # a second connection pool: what another process would see
    try:
        yield app, server.url, make_session_factory(engine), runtime
    finally:
        server.stop()
        runtime.close()
        engine.dispose()


def _body(fingerprint: str, repeat: int) -> bytes:
    # one service per fingerprint: alike alerts on one service would join one investigation (commands/similar.py)
    payload = alert_group_payload(fingerprints=(fingerprint,), starts_at=f"2026-10-02T15:20:{repeat:02d}Z",
                                  service=f"booking-{fingerprint}")
    return json.dumps(payload).encode()


def test_concurrent_deliveries_are_committed_before_the_answer_and_open_one_investigation_each(served):
    app, url, sessions, runtime = served
    fingerprints, repeats = 12, 6
    bodies = [_body(f"fp{i % fingerprints:03d}", i // fingerprints) for i in range(fingerprints * repeats)]
    bodies += bodies[:10]  # exact replays, sent while the originals may still be in flight
    answers: list[tuple[int, dict, bool]] = []
    lock = threading.Lock()
    local = threading.local()

    def send(body: bytes) -> None:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=url, timeout=30, headers={"Authorization": f"Bearer {API_KEY}"})
        resp = local.client.post("/webhooks/alertmanager", content=body)
        data = resp.json()
        with sessions() as s:  # committed means visible to any other connection right now
            visible = s.get(InboundDelivery, data.get("delivery_id")) is not None
        with lock:
            answers.append((resp.status_code, data, visible))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(send, bodies))
    app.state.context.processor.wait_idle(timeout_s=60)

    assert all(visible for _, _, visible in answers), "a delivery was acknowledged before it was committed"
    assert {status for status, _, _ in answers} <= {200, 202}
    ids = {data["delivery_id"] for _, data, _ in answers}
    assert len(ids) == fingerprints * repeats  # a replay got its original's row, never a new one
    with sessions() as s:
        statuses = dict(s.execute(select(InboundDelivery.status, func.count()).group_by(InboundDelivery.status)).all())
        investigations = s.execute(select(Investigation.fingerprint)).scalars().all()
        attached = s.scalar(select(func.count()).select_from(ProgressEvent).where(ProgressEvent.kind == "attached"))
    assert statuses == {"processed": fingerprints * repeats}
    assert sorted(investigations) == sorted(f"alertmanager:fp{i:03d}" for i in range(fingerprints))
    assert attached == fingerprints * (repeats - 1)
    assert runtime.broker.queues["investigations.fast"].qsize() == fingerprints  # severity critical -> P1


def test_a_stopped_listener_answers_503_and_stores_nothing(served):
    app, url, sessions, _runtime = served
    app.state.context.processor.stop()
    resp = httpx.post(f"{url}/webhooks/alertmanager", content=_body("late", 0),
                      headers={"Authorization": f"Bearer {API_KEY}"})
    assert resp.status_code == 503 and resp.headers["retry-after"] == "5"
    assert "retry" in resp.json()["detail"]
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(InboundDelivery)) == 0
