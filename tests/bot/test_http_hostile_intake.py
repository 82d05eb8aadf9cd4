"""Hostile webhook bodies (issue #11, findings 4 and 5), over real HTTP, on SQLite and PostgreSQL.

Every shape here made the listener answer 500 with a traceback, answer 503 so the sender retried
forever, store a row that then failed processing forever, or open a junk investigation. Each must
now get a 400 problem+json naming the field, and leave nothing stored.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from commands.signatures import sign
from store.models import InboundDelivery, Investigation
from tests.bot.test_http import API_KEY, JIRA_SECRET, PD_SECRET, Listener
from tests.commands.test_webhooks import alert_group_payload, jira_payload, pagerduty_payload

PATHS = {
    "jira": "/webhooks/jira", "pagerduty": "/webhooks/pagerduty", "grafana": "/webhooks/grafana/alert",
    "alertmanager": "/webhooks/alertmanager", "deploy": "/webhooks/deploy", "change": "/webhooks/change",
}


def post(listener: Listener, source: str, body: bytes, *, jira_id: str | None = None) -> httpx.Response:
    """Send ``body`` to ``source``'s endpoint, authenticated as that sender does."""
    headers = {"Content-Type": "application/json"}
    if source == "jira":
        headers["X-Hub-Signature"] = "sha256=" + sign(body, JIRA_SECRET)
        headers["X-Atlassian-Webhook-Identifier"] = jira_id or uuid.uuid4().hex
    elif source == "pagerduty":
        headers["X-PagerDuty-Signature"] = "v1=" + sign(body, PD_SECRET)
    else:
        headers["Authorization"] = f"Bearer {API_KEY}"
    resp = listener.client.post(PATHS[source], content=body, headers=headers)
    listener.settle()
    return resp


def _pg_database() -> Iterator[str]:
    from tests.conftest import _listening

    if not _listening(5432):
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432 (run scripts/services.sh)")
    import psycopg

    name = f"pm_test_{uuid.uuid4().hex[:12]}"
    admin = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def hostile(request, tmp_path_factory) -> Iterator[Listener]:
    """One listener per database for the whole module (each test checks what it stored)."""
    home = tmp_path_factory.mktemp(f"hostile-{request.param}")
    if request.param == "sqlite":
        urls: Iterator[str] = iter([f"sqlite:///{home / 'pm.sqlite3'}"])
    else:
        urls = _pg_database()
    url = next(urls)
    listener = Listener(home, url, max_body=1 << 20)
    yield listener
    listener.close()
    for _ in urls:  # drops the PostgreSQL database
        pass


def _count(listener: Listener, model: Any) -> int:
    with listener.runtime.session() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def _set(payload: dict, path: str, value: Any) -> dict:
    """A deep copy of ``payload`` with ``path`` (``a.b.0.c``) set to ``value``."""
    out = copy.deepcopy(payload)
    node: Any = out
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return out


def _alerts(path: str, value: Any) -> bytes:
    return json.dumps(_set(alert_group_payload(), path, value)).encode()


def _jira(path: str, value: Any) -> bytes:
    return json.dumps(_set(jira_payload(), path, value)).encode()


def _pd(path: str, value: Any) -> bytes:
    return json.dumps(_set(pagerduty_payload(), path, value)).encode()


DEPLOY = {"service": "booking", "environment": "production", "version": "1.2.3", "id": "d-1"}


def _deploy(path: str, value: Any) -> bytes:
    return json.dumps(_set(DEPLOY, path, value)).encode()


def _deep(source: str, depth: int = 1000) -> bytes:
    inner = "[" * depth + "]" * depth
    key = {"change": "changes", "deploy": "service", "jira": "issue", "pagerduty": "event"}.get(source, "alerts")
    return f'{{"{key}": {inner}}}'.encode()


# (id, source, body, the field the 400 must name)
SHAPES: list[tuple[str, str, bytes, str]] = [
    # Alertmanager / Grafana
    ("am-annotations-string", "alertmanager", _alerts("alerts.0.annotations", "x"), "alerts[0].annotations"),
    ("am-annotations-list", "alertmanager", _alerts("alerts.0.annotations", ["summary"]), "alerts[0].annotations"),
    ("grafana-annotations-number", "grafana", _alerts("alerts.0.annotations", 7), "alerts[0].annotations"),
    ("am-list-in-labels-service", "alertmanager", _alerts("alerts.0.labels.service", ["a", "b"]),
     "alerts[0].labels.service"),
    ("grafana-list-in-labels-service", "grafana", _alerts("alerts.0.labels.service", ["a"]), "alerts[0].labels.service"),
    ("am-object-in-labels-service", "alertmanager", _alerts("alerts.0.labels.service", {"x": 1}),
     "alerts[0].labels.service"),
    ("am-alertname-number", "alertmanager", _alerts("alerts.0.labels.alertname", 42), "alerts[0].labels.alertname"),
    ("am-alertname-bool", "alertmanager", _alerts("alerts.0.labels.alertname", True), "alerts[0].labels.alertname"),
    ("am-startsat-True", "alertmanager", _alerts("alerts.0.startsAt", "True"), "alerts[0].startsAt"),
    ("am-startsat-0", "alertmanager", _alerts("alerts.0.startsAt", "0"), "alerts[0].startsAt"),
    ("am-startsat-brackets", "alertmanager", _alerts("alerts.0.startsAt", "[]"), "alerts[0].startsAt"),
    ("am-startsat-bool", "alertmanager", _alerts("alerts.0.startsAt", True), "alerts[0].startsAt"),
    ("grafana-startsat-list", "grafana", _alerts("alerts.0.startsAt", []), "alerts[0].startsAt"),
    ("am-nul-in-fingerprint", "alertmanager", _alerts("alerts.0.fingerprint", "ab\x00cd"), "alerts[0].fingerprint"),
    ("am-fingerprint-number", "alertmanager", _alerts("alerts.0.fingerprint", 12345), "alerts[0].fingerprint"),
    ("am-lone-surrogate-summary", "alertmanager", _alerts("alerts.0.annotations.summary", "x\ud800y"),
     "alerts[0].annotations.summary"),
    ("grafana-lone-low-surrogate", "grafana", _alerts("alerts.0.labels.service", "\udfff"), "alerts[0].labels.service"),
    ("am-status-list", "alertmanager", _alerts("alerts.0.status", ["firing"]), "alerts[0].status"),
    ("am-nested-1000", "alertmanager", _deep("alertmanager"), "body"),
    ("grafana-nested-100000", "grafana", _deep("grafana", 100_000), "body"),
    # Jira
    ("jira-fields-string", "jira", _jira("issue.fields", "labels"), "issue.fields"),
    ("jira-fields-list", "jira", _jira("issue.fields", [1, 2]), "issue.fields"),
    ("jira-labels-string", "jira", _jira("issue.fields.labels", "auto-investigate"), "issue.fields.labels"),
    ("jira-labels-object", "jira", _jira("issue.fields.labels", {"auto-investigate": 1}), "issue.fields.labels"),
    ("jira-label-number", "jira", _jira("issue.fields.labels", ["auto-investigate", 3]), "issue.fields.labels[1]"),
    ("jira-project-string", "jira", _jira("issue.fields.project", "SCHED"), "issue.fields.project"),
    ("jira-priority-string", "jira", _jira("issue.fields.priority", "High"), "issue.fields.priority"),
    ("jira-key-number", "jira", _jira("issue.key", 45895), "issue.key"),
    ("jira-key-nul", "jira", _jira("issue.key", "SCHED-1\x00"), "issue.key"),
    ("jira-timestamp-True", "jira", _jira("timestamp", "True"), "timestamp"),
    ("jira-timestamp-bool", "jira", _jira("timestamp", True), "timestamp"),
    ("jira-nested-1000", "jira", _deep("jira"), "body"),
    # PagerDuty
    ("pd-title-number", "pagerduty", _pd("event.data.title", 500), "event.data.title"),
    ("pd-priority-string", "pagerduty", _pd("event.data.priority", "P1"), "event.data.priority"),
    ("pd-service-list", "pagerduty", _pd("event.data.service", ["booking"]), "event.data.service"),
    ("pd-occurred-at-0", "pagerduty", _pd("event.occurred_at", "0"), "event.occurred_at"),
    ("pd-event-type-number", "pagerduty", _pd("event.event_type", 1), "event.event_type"),
    ("pd-nul-in-incident-id", "pagerduty", _pd("event.data.id", "Q\x00"), "event.data.id"),
    ("pd-nested-1000", "pagerduty", _deep("pagerduty"), "body"),
    # deploy
    ("deploy-nul-in-id", "deploy", _deploy("id", "d-\x00"), "id"),
    ("deploy-service-list", "deploy", _deploy("service", ["booking"]), "service"),
    ("deploy-service-bool", "deploy", _deploy("service", True), "service"),
    ("deploy-environment-object", "deploy", _deploy("environment", {"name": "production"}), "environment"),
    ("deploy-lone-surrogate-version", "deploy", _deploy("version", "1.\udc00"), "version"),
    ("deploy-nested-1000", "deploy", _deep("deploy"), "body"),
    # change
    ("change-lone-surrogate-summary", "change", json.dumps(
        [{"id": "c1", "ts": "2026-12-06T08:00:00Z", "kind": "config", "service": "booking", "summary": "\ud83d"}]
    ).encode(), "changes[0].summary"),
]


@pytest.mark.parametrize("name, source, body, field", SHAPES, ids=[s[0] for s in SHAPES])
def test_a_hostile_body_gets_400_naming_the_field_and_stores_nothing(hostile, name, source, body, field):
    before = _count(hostile, InboundDelivery), _count(hostile, Investigation)
    resp = post(hostile, source, body)
    assert resp.status_code == 400, f"{name}: {resp.status_code} {resp.text[:300]}"
    assert resp.headers["content-type"].startswith("application/problem+json")
    problem = resp.json()
    assert problem["field"] == field, problem
    assert field in problem["detail"]
    assert (_count(hostile, InboundDelivery), _count(hostile, Investigation)) == before


def test_a_3000_alert_delivery_is_refused_whole_saying_the_cap(hostile):
    fingerprints = tuple(f"storm{i:05d}" for i in range(3000))
    body = json.dumps(alert_group_payload(fingerprints=fingerprints)).encode()
    assert len(body) < 1 << 20  # under the body limit: the alert cap is what refuses it
    before = _count(hostile, InboundDelivery), _count(hostile, Investigation)
    resp = post(hostile, "alertmanager", body)
    assert resp.status_code == 400, resp.text[:300]
    problem = resp.json()
    assert problem["title"] == "Too many alerts" and problem["field"] == "alerts"
    assert problem["alerts"] == 3000 and problem["max_alerts"] == 200
    assert "max_alerts" in problem["detail"] and "PM_WEBHOOK_MAX_ALERTS" in problem["detail"]
    assert (_count(hostile, InboundDelivery), _count(hostile, Investigation)) == before

    at_cap = json.dumps(alert_group_payload(fingerprints=fingerprints[:200])).encode()
    resp = post(hostile, "alertmanager", at_cap)
    assert resp.status_code == 202, resp.text[:300]
    assert _count(hostile, Investigation) == before[1] + 200


def _pd_at(occurred_at: str, event_id: str) -> bytes:
    payload = pagerduty_payload(incident_id=f"R{uuid.uuid4().hex[:8].upper()}", event_id=event_id)
    payload["event"]["occurred_at"] = occurred_at
    return json.dumps(payload).encode()


def test_a_signed_pagerduty_event_dated_2001_is_ignored_as_a_replay(hostile):
    before = _count(hostile, InboundDelivery), _count(hostile, Investigation)
    resp = post(hostile, "pagerduty", _pd_at("2001-09-09T01:46:40Z", "E-old"))
    assert resp.status_code == 202 and resp.json()["status"] == "ignored", resp.text
    assert "replay window" in resp.json()["reason"] and "2001-09-09" in resp.json()["reason"]
    ahead = (datetime.now(UTC).replace(year=datetime.now(UTC).year + 1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    resp = post(hostile, "pagerduty", _pd_at(ahead, "E-future"))
    assert resp.json()["status"] == "ignored" and "ahead" in resp.json()["reason"]
    assert (_count(hostile, InboundDelivery), _count(hostile, Investigation)) == before
    fresh = post(hostile, "pagerduty", _pd_at(datetime.now(UTC).isoformat(), "E-fresh"))
    assert fresh.status_code == 202 and fresh.json()["status"] == "accepted"


def test_an_old_jira_body_is_ignored_and_a_resend_with_a_fresh_identifier_is_a_duplicate(hostile):
    old = jira_payload(key="OPS-7")
    old["timestamp"] = int((time.time() - 2 * 3600) * 1000)
    before = _count(hostile, InboundDelivery), _count(hostile, Investigation)
    resp = post(hostile, "jira", json.dumps(old).encode())
    assert resp.status_code == 202 and resp.json()["status"] == "ignored" and "replay window" in resp.json()["reason"]
    assert (_count(hostile, InboundDelivery), _count(hostile, Investigation)) == before

    body = json.dumps(jira_payload(key="OPS-8")).encode()
    answers = [post(hostile, "jira", body, jira_id=f"fresh-{i}") for i in range(3)]
    assert [a.status_code for a in answers] == [202, 200, 200], [a.text for a in answers]
    assert [a.json()["status"] for a in answers] == ["accepted", "duplicate", "duplicate"]
    with hostile.runtime.session() as s:
        invs = list(s.execute(select(Investigation).where(Investigation.fingerprint == "jira:OPS-8")).scalars())
        assert len(invs) == 1
        invs[0].status = "COMPLETE"  # once it closes, the resend must still not open a new one
        s.commit()
    again = post(hostile, "jira", body, jira_id="fresh-after-close")
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    with hostile.runtime.session() as s:
        n = s.scalar(select(func.count()).select_from(Investigation).where(Investigation.fingerprint == "jira:OPS-8"))
    assert n == 1


def test_the_replay_window_is_configurable(tmp_path, sqlite_url):
    listener = Listener(tmp_path, sqlite_url, PM_WEBHOOK_REPLAY_WINDOW_S=30 * 24 * 3600)
    try:
        week_old = (datetime.now(UTC).timestamp() - 7 * 24 * 3600)
        resp = post(listener, "pagerduty", _pd_at(datetime.fromtimestamp(week_old, UTC).isoformat(), "E-week"))
        assert resp.json()["status"] == "accepted", resp.text
    finally:
        listener.close()


