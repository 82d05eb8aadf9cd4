"""The `events` source: changes posted to /webhooks/change (and deploys, and alerts received on the alert
webhooks) kept as history, answered through the provider and through MCP + the gateway.

A real listener (uvicorn in a thread) on a real SQLite file; the provider reads the same database.
"""

from __future__ import annotations

import json

import pytest

from agents.gateway import open_gateway
from agents.sources_gateway import gateway_config
from sandbox.errors import NotFoundError
from sources.registry import build_provider
from store.sources_file import load_sources
from tests.bot.test_http import API_KEY, Listener
from tests.commands.test_webhooks import alert_group_payload

CHANGES = [
    {"id": "chg-1", "ts": "2026-02-20T07:40:00Z", "kind": "deploy", "service": "payments", "author": "ci",
     "summary": "payments 2.4.1", "details": {"version": "2.4.1", "previous_version": "2.4.0", "commit": "abc"}},
    {"id": "chg-2", "ts": "2026-02-20T07:55:00+01:00", "kind": "feature_flag", "service": "checkout",
     "author": "ops", "summary": "flag on", "details": {"flag": "x", "from": False, "to": True}},
]


@pytest.fixture()
def listener(tmp_path, sqlite_url):
    app = Listener(tmp_path, sqlite_url, PM_ALERT_NAME_PATTERNS="NothingMatches*")
    yield app
    app.close()


def _sources(tmp_path, monkeypatch, url: str):
    monkeypatch.setenv("PM_TEST_EVENTS_DB", url)
    path = tmp_path / "sources.yaml"
    path.write_text("changes: [{kind: events, database_url: {env: PM_TEST_EVENTS_DB}}]\n"
                    "alerts: [{kind: events, database_url: {env: PM_TEST_EVENTS_DB}}]\n")
    return path


@pytest.mark.integration
def test_changes_posted_are_kept_once_and_listed_by_window(listener, tmp_path, monkeypatch, sqlite_url):
    first = listener.bearer("/webhooks/change", CHANGES)  # type: ignore[arg-type]
    assert first.status_code == 202, first.text
    again = listener.client.post("/webhooks/change", json=CHANGES[0], headers={"Authorization": f"Bearer {API_KEY}"})
    assert again.status_code in (200, 202), again.text
    listener.settle()
    deploy = listener.bearer("/webhooks/deploy", {"service": "pricing", "environment": "production",
                                                  "version": "9.1", "id": "dep-77",
                                                  "deployed_at": "2026-02-20T07:50:00Z"})
    assert deploy.status_code == 202, deploy.text
    doc = load_sources(_sources(tmp_path, monkeypatch, sqlite_url))
    provider = build_provider(doc.entry("changes.0"), doc)
    got = provider.call("changes.list", start="2026-02-20T07:00:00Z", end="2026-02-20T08:00:00Z")["changes"]
    # chg-2's +01:00 time is 06:55Z: outside the window; the repeat of chg-1 is kept once.
    assert [c["id"] for c in got] == ["chg-1", "dep-77"]
    assert got[0]["details"]["previous_version"] == "2.4.0"
    assert got[1]["kind"] == "deploy" and got[1]["service"] == "pricing" and got[1]["details"]["version"] == "9.1"
    every = provider.call("changes.list", start="2026-02-20T06:00:00Z")["changes"]
    assert [c["id"] for c in every] == ["chg-2", "chg-1", "dep-77"] and every[0]["ts"] == "2026-02-20T06:55:00Z"
    assert [c["id"] for c in provider.call("changes.list", service="checkout")["changes"]] == ["chg-2"]
    assert [c["id"] for c in provider.call("changes.list", kind="feature_flag")["changes"]] == ["chg-2"]


@pytest.mark.integration
@pytest.mark.parametrize("body, field", [
    ({"id": "x", "ts": "yesterday", "kind": "deploy", "service": "a"}, "changes[0].ts"),
    ({"id": "x", "ts": "2026-02-20T07:00:00Z", "kind": "rollout", "service": "a"}, "changes[0].kind"),
    ({"ts": "2026-02-20T07:00:00Z", "kind": "deploy", "service": "a"}, "changes[0].id"),
    ({"id": "x\u0000y", "ts": "2026-02-20T07:00:00Z", "kind": "deploy", "service": "a"}, "changes[0].id"),
    ([{"id": "ok", "ts": "2026-02-20T07:00:00Z", "kind": "deploy", "service": "a"}, "junk"], "changes[1]"),
    ({"id": "x", "ts": "2026-02-20T07:00:00Z", "kind": "deploy", "service": ["a"]}, "changes[0].service"),
    ({"id": "x", "ts": "2026-02-20T07:00:00Z", "kind": "deploy", "service": "a", "details": []}, "changes[0].details"),
])
def test_bad_change_records_get_400_naming_the_field_and_nothing_is_kept(listener, tmp_path, monkeypatch,
                                                                          sqlite_url, body, field):
    resp = listener.client.post("/webhooks/change", content=json.dumps(body),
                                headers={"Authorization": f"Bearer {API_KEY}"})
    assert resp.status_code == 400, resp.text
    assert resp.json()["field"] == field
    doc = load_sources(_sources(tmp_path, monkeypatch, sqlite_url))
    assert build_provider(doc.entry("changes.0"), doc).call("changes.list")["changes"] == []


@pytest.mark.integration
def test_change_webhook_needs_the_bearer_key(listener):
    resp = listener.client.post("/webhooks/change", json=CHANGES)
    assert resp.status_code == 401


@pytest.mark.integration
def test_alerts_are_kept_even_when_no_investigation_starts(listener, tmp_path, monkeypatch, sqlite_url):
    payload = alert_group_payload()
    resp = listener.bearer("/webhooks/alertmanager", payload)
    assert resp.status_code == 202 and resp.json()["status"] == "ignored", resp.text
    assert listener.investigations() == []
    doc = load_sources(_sources(tmp_path, monkeypatch, sqlite_url))
    provider = build_provider(doc.entry("alerts.0"), doc)
    alerts = provider.call("alerts.list")["alerts"]
    firing = [a for a in payload["alerts"] if a.get("status", "firing") == "firing"]
    assert len(alerts) == len(firing) > 0
    first = alerts[0]
    assert first["id"].startswith("am-") and first["source"] == "alertmanager"
    assert provider.call("alerts.get", id=first["id"]) == first
    with pytest.raises(NotFoundError):
        provider.call("alerts.get", id="am-nope")
    # Through MCP and the gateway, as an investigation reads it.
    with open_gateway(gateway_config(doc)) as gw:
        assert gw.call("alerts.list")["alerts"] == alerts
        assert gw.call("changes.list")["changes"] == []


def test_a_database_that_never_received_anything_is_an_empty_history_and_check_says_why(tmp_path, monkeypatch):
    empty = tmp_path / "empty.sqlite3"
    doc = load_sources(_sources(tmp_path, monkeypatch, f"sqlite:///{empty}"))
    provider = build_provider(doc.entry("changes.0"), doc)
    assert provider.call("changes.list") == {"changes": []}
    assert "no changes received yet" in provider.check() and "start `pm serve`" in provider.check()
    with pytest.raises(NotFoundError):
        build_provider(doc.entry("alerts.0"), doc).call("alerts.get", id="am-1")


def test_an_unreachable_database_is_a_source_error(tmp_path, monkeypatch):
    doc = load_sources(_sources(tmp_path, monkeypatch, "postgresql://nobody:secret@127.0.0.1:1/none"))
    provider = build_provider(doc.entry("changes.0"), doc)
    with pytest.raises(Exception, match="database error") as err:
        provider.call("changes.list")
    assert "secret" not in str(err.value)
