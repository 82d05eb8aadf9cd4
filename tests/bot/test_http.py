"""The webhook listener over real HTTP (uvicorn in a thread), a real SQLite database and the
in-process broker. The worker is not started, so investigations stay queued where we can see them.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from bot.http.app import create_app
from bot.http.server import ServerThread
from bot.http.settings import load_http_settings
from commands.signatures import sign
from pipeline.runtime import QUEUES, build_runtime
from store.config import load_settings
from store.db import upgrade
from store.models import InboundDelivery, Investigation
from tests.commands.test_webhooks import alert_group_payload, jira_payload, pagerduty_payload

JIRA_SECRET = "jira-webhook-secret"
PD_SECRET = "pagerduty-webhook-secret"
API_KEY = "listener-key"
MAX_BODY = 4096


class Listener:
    """A running listener and the runtime behind it."""

    def __init__(self, home: Path, url: str, *, max_body: int = MAX_BODY, **http_overrides: object) -> None:
        upgrade(url)
        self.settings = load_settings(
            PM_HOME=str(home), DATABASE_URL=url, API_KEYS=f"other,{API_KEY}", JIRA_WEBHOOK_SECRET=JIRA_SECRET,
            PAGERDUTY_WEBHOOK_SECRET=PD_SECRET, POST_DEPLOY_CHECK_DELAY_MS=0,
        )
        self.runtime = build_runtime(self.settings)
        http = load_http_settings(PM_WEBHOOK_MAX_BODY_BYTES=max_body, **http_overrides)
        self.app = create_app(self.settings, self.runtime, http)
        self.server = ServerThread(self.app).start()
        self.client = httpx.Client(base_url=self.server.url, timeout=10)
        self.settle()

    def settle(self) -> None:
        """Wait until the background processor has handled everything accepted so far."""
        self.app.state.context.processor.wait_idle(timeout_s=30)

    def close(self) -> None:
        self.client.close()
        self.server.stop()
        self.runtime.close()

    def investigations(self) -> list[Investigation]:
        with self.runtime.session() as s:
            rows = list(s.execute(select(Investigation).order_by(Investigation.created_at)).scalars())
            s.expunge_all()
            return rows

    def queued(self, priority: str) -> int:
        return self.runtime.broker.queues[QUEUES[priority][0]].qsize()

    def jira(self, payload: dict, *, secret: str = JIRA_SECRET, delivery: str = "wh-1", signed: bool = True):
        body = json.dumps(payload).encode()
        headers = {"X-Atlassian-Webhook-Identifier": delivery, "Content-Type": "application/json"}
        if signed:
            headers["X-Hub-Signature"] = "sha256=" + sign(body, secret)
        return self._settled(self.client.post("/webhooks/jira", content=body, headers=headers))

    def _settled(self, resp: httpx.Response) -> httpx.Response:
        self.settle()
        return resp

    def pagerduty(self, payload: dict, *, secret: str = PD_SECRET):
        body = json.dumps(payload).encode()
        # Two signatures, as PagerDuty sends while a secret is rotated; the second is ours.
        header = f"v1={'0' * 64},v1={sign(body, secret)}"
        return self._settled(
            self.client.post("/webhooks/pagerduty", content=body, headers={"X-PagerDuty-Signature": header})
        )

    def bearer(self, path: str, payload: dict, token: str | None = API_KEY):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self._settled(self.client.post(path, json=payload, headers=headers))


@pytest.fixture()
def listener(tmp_path, sqlite_url):
    app = Listener(tmp_path, sqlite_url)
    yield app
    app.close()


def _assert_problem(resp: httpx.Response, status: int, field: str | None = None) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body = resp.json()
    assert body["status"] == status and body["detail"]
    if field is not None:
        assert body["field"] == field and field in body["detail"]
    return body


def test_signed_jira_issue_starts_one_investigation_and_replays_are_deduplicated(listener):
    payload = jira_payload(priority="Highest")
    resp = listener.jira(payload)
    assert resp.status_code == 202, resp.text
    assert resp.json()["status"] == "accepted"
    (inv,) = listener.investigations()
    assert inv.fingerprint == "jira:SCHED-45895" and inv.priority == "P1" and inv.status == "QUEUED"
    assert inv.trigger == {"ticket": "SCHED-45895"} and inv.origin["jira_key"] == "SCHED-45895"
    assert listener.queued("P1") == 1

    replay = listener.jira(payload)
    assert replay.status_code == 200 and replay.json()["status"] == "duplicate"
    assert len(listener.investigations()) == 1 and listener.queued("P1") == 1


def test_repeat_of_an_open_fingerprint_attaches_instead_of_starting_another(listener):
    first = listener.pagerduty(pagerduty_payload(event_id="E-1"))
    second = listener.pagerduty(pagerduty_payload(event_id="E-2"))  # new delivery, same incident
    assert first.status_code == second.status_code == 202
    assert first.json()["delivery_id"] != second.json()["delivery_id"]
    (inv,) = listener.investigations()
    assert inv.priority == "P1" and inv.fingerprint == "pagerduty:key-Q2A0TD1M5NJP9H"
    kinds = [e["kind"] for e in listener.runtime.events(inv.id)]
    assert "attached" in kinds
    assert listener.queued("P1") == 1


def test_priorities_go_to_their_queues(listener):
    listener.bearer("/webhooks/alertmanager", alert_group_payload(fingerprints=("p1",), severity="critical"))
    listener.bearer("/webhooks/grafana/alert", alert_group_payload(fingerprints=("p2",), severity="warning"))
    listener.bearer("/webhooks/alertmanager", alert_group_payload(fingerprints=("p3",), severity="info"))
    assert {i.fingerprint: i.priority for i in listener.investigations()} == {
        "alertmanager:p1": "P1", "grafana:p2": "P2", "alertmanager:p3": "P3",
    }
    assert (listener.queued("P1"), listener.queued("P2"), listener.queued("P3")) == (1, 1, 1)


@pytest.mark.parametrize(
    "send",
    [
        lambda L: L.jira(jira_payload(), signed=False),
        lambda L: L.jira(jira_payload(), secret="wrong"),
        lambda L: L.pagerduty(pagerduty_payload(), secret="wrong"),
        lambda L: L.client.post("/webhooks/pagerduty", json=pagerduty_payload()),
        lambda L: L.bearer("/webhooks/alertmanager", alert_group_payload(), token=None),
        lambda L: L.bearer("/webhooks/grafana/alert", alert_group_payload(), token="nope"),
        lambda L: L.bearer("/webhooks/deploy", {"service": "pricing", "environment": "production"}, token="x"),
    ],
    ids=["jira-unsigned", "jira-wrong", "pd-wrong", "pd-unsigned", "am-no-token", "grafana-bad-token", "deploy-bad"],
)
def test_unauthenticated_deliveries_get_401_and_store_nothing(listener, send):
    _assert_problem(send(listener), 401)
    with listener.runtime.session() as s:
        assert s.scalar(select(func.count()).select_from(InboundDelivery)) == 0


def test_malformed_and_incomplete_bodies_get_400_naming_the_field(listener):
    _assert_problem(listener.bearer("/webhooks/alertmanager", {"version": "4"}), 400, "alerts")
    raw = listener.client.post(
        "/webhooks/alertmanager", content=b"{not json", headers={"Authorization": f"Bearer {API_KEY}"}
    )
    _assert_problem(raw, 400, "body")
    bad_jira = jira_payload()
    del bad_jira["issue"]["key"]
    _assert_problem(listener.jira(bad_jira), 400, "issue.key")
    _assert_problem(listener.bearer("/webhooks/deploy", {"environment": "production"}), 400, "service")
    assert listener.investigations() == []


def test_unknown_events_and_filtered_deliveries_are_ignored_with_202(listener):
    for resp in (
        listener.jira(jira_payload(event="jira:issue_deleted")),
        listener.jira(jira_payload(labels=("frontend",)), delivery="wh-2"),
        listener.pagerduty(pagerduty_payload(event_type="incident.acknowledged")),
        listener.pagerduty(pagerduty_payload(priority="P4")),
        listener.bearer("/webhooks/alertmanager", alert_group_payload(status="resolved")),
        listener.bearer("/webhooks/deploy", {"service": "pricing", "environment": "staging"}),
    ):
        assert resp.status_code == 202 and resp.json()["status"] == "ignored", resp.text
        assert resp.json()["reason"]
    assert listener.investigations() == []


def test_oversized_bodies_get_413_declared_or_streamed(listener):
    big = alert_group_payload(fingerprints=tuple(f"fp{i}" for i in range(200)))
    _assert_problem(listener.bearer("/webhooks/alertmanager", big), 413)

    def chunks():  # no Content-Length: the limit must hold while streaming
        for _ in range(10):
            yield b" " * 1024

    streamed = listener.client.post(
        "/webhooks/alertmanager", content=chunks(), headers={"Authorization": f"Bearer {API_KEY}"}
    )
    _assert_problem(streamed, 413)
    assert listener.investigations() == []


def test_an_accepted_but_unprocessed_delivery_is_finished_on_restart_and_on_redelivery(tmp_path, sqlite_url):
    first = Listener(tmp_path, sqlite_url)
    try:
        # What a crash right after storing leaves behind: the stored row, nothing processed.
        with first.runtime.session() as s:
            s.add(InboundDelivery(source="pagerduty", delivery_key="E-crash", status="accepted",
                                  payload=pagerduty_payload(incident_id="PCRASH1", event_id="E-crash")))
        assert first.investigations() == []
        redelivered = first.pagerduty(pagerduty_payload(incident_id="PCRASH1", event_id="E-crash"))
        assert redelivered.status_code == 202 and redelivered.json()["status"] == "accepted"
        assert [i.fingerprint for i in first.investigations()] == ["pagerduty:key-PCRASH1"]
        with first.runtime.session() as s:
            s.add(InboundDelivery(source="alertmanager", delivery_key="am-crash", status="accepted",
                                  payload=alert_group_payload(fingerprints=("crashfp",))))
    finally:
        first.close()
    second = Listener(tmp_path, sqlite_url)  # startup sweep resumes the alertmanager row
    try:
        assert {i.fingerprint for i in second.investigations()} == {"pagerduty:key-PCRASH1", "alertmanager:crashfp"}
        with second.runtime.session() as s:
            statuses = set(s.execute(select(InboundDelivery.status)).scalars())
        assert statuses == {"processed"}
    finally:
        second.close()


def test_healthz(listener):
    assert listener.client.get("/healthz").json() == {"status": "ok"}
