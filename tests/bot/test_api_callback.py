"""callback_url end to end: POST /api/v1/investigate → worker → outbox → the callback sink → a local
HTTP receiver (issue #13 item 2). Real HTTP both ways, a real database, the in-process broker."""

from __future__ import annotations

import hashlib
import hmac
import time

import pytest

from bot.http.settings import load_http_settings
from bot.http.wiring import configure_runtime
from tests.bot.test_api import Api
from tests.fakes.callback_receiver import CallbackReceiver

CALLBACK_ENV = {"PM_CALLBACK_ALLOW_PRIVATE": "1", "PM_CALLBACK_SECRET": "hook-secret", "PM_API_RATE_PER_S": "0"}


def _api(tmp_path, url) -> Api:
    api = Api(tmp_path, url, **CALLBACK_ENV)
    configure_runtime(api.runtime, api.settings, load_http_settings(**CALLBACK_ENV))  # as pm serve does
    return api


def _deliveries(api: Api, inv_id: str) -> list[tuple[str, str, str]]:
    import sqlalchemy as sa

    with api.runtime.engine.connect() as c:
        return [tuple(r) for r in c.execute(sa.text(
            "select e.kind, d.sink, d.status from deliveries d join progress_events e on e.id = d.event_id "
            "where e.investigation_id = :i and d.sink = 'callback' order by e.seq"), {"i": inv_id})]


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_the_report_reaches_the_callback_once_after_retries(tmp_path, db, request):
    url = request.getfixturevalue("sqlite_url" if db == "sqlite" else "pg_url")
    with CallbackReceiver([500, 502]) as rx:  # the receiver fails twice, then takes it
        api = _api(tmp_path, url)
        try:
            resp = api.client.post("/api/v1/investigate", headers=api.as_("operator"), json={
                "ticket_id": "PAY-44706", "mode": "fast", "domain": "payments", "callback_url": rx.url})
            assert resp.status_code == 202, resp.text
            inv_id = resp.json()["investigation_id"]
            api.worker = api.runtime.start_worker(sweep_interval_s=0.5)
            final = api.runtime.wait(inv_id, timeout_s=180)
            assert final["status"] == "COMPLETE", final
            rx.wait_for(3, timeout_s=60)
            time.sleep(2.0)  # a few more sweeps: nothing else may arrive
            posts = list(rx.received)
            deliveries = _deliveries(api, inv_id)
        finally:
            api.close()
    assert [p["status"] for p in posts] == [500, 502, 200], [p["status"] for p in posts]
    # the same delivery id every time (receivers dedupe on it), and only the end of the investigation
    ids = {p["headers"]["x-pm-delivery"] for p in posts}
    assert len(ids) == 1 and ids.pop().startswith(f"{inv_id}:"), ids
    assert all(p["headers"]["x-pm-event"] == "report" for p in posts)
    last = posts[-1]
    mac = hmac.new(b"hook-secret", last["headers"]["x-pm-timestamp"].encode() + b"." + last["raw"], hashlib.sha256)
    assert last["headers"]["x-pm-signature"] == "sha256=" + mac.hexdigest()
    body = last["json"]
    assert body["investigation_id"] == inv_id and body["status"] == "COMPLETE"
    assert body["report"]["verdict"] == final["report"]["verdict"] == body["verdict"]
    assert body["status_url"] == f"/api/v1/investigations/{inv_id}"
    # the outbox made one callback delivery, for the report only, and it is done
    assert deliveries == [("report", "callback", "done")], deliveries


def test_a_cancelled_investigation_tells_its_callback(tmp_path, sqlite_url):
    with CallbackReceiver() as rx:
        api = _api(tmp_path, sqlite_url)
        try:
            resp = api.client.post("/api/v1/investigate", headers=api.as_("operator"),
                                   json={"text": "checkout is failing", "callback_url": rx.url})
            inv_id = resp.json()["investigation_id"]
            assert api.client.delete(f"/api/v1/investigations/{inv_id}", headers=api.as_("operator")).status_code < 300
            api.worker = api.runtime.start_worker(sweep_interval_s=0.5)
            (post,) = rx.wait_for(1, timeout_s=60)
            time.sleep(1.5)
            assert len(rx.received) == 1
        finally:
            api.close()
    assert post["json"]["status"] == "CANCELLED" and post["json"]["report"] is None
    assert post["headers"]["x-pm-event"] == "cancelled"


def test_an_investigation_without_callback_url_has_no_callback_delivery(tmp_path, sqlite_url):
    api = _api(tmp_path, sqlite_url)
    try:
        resp = api.client.post("/api/v1/investigate", headers=api.as_("operator"),
                               json={"text": "checkout is failing"})
        inv_id = resp.json()["investigation_id"]
        assert api.client.delete(f"/api/v1/investigations/{inv_id}", headers=api.as_("operator")).status_code < 300
        api.worker = api.runtime.start_worker(sweep_interval_s=0.5)
        api.runtime.wait(inv_id, timeout_s=60)
        assert _deliveries(api, inv_id) == []
    finally:
        api.close()
