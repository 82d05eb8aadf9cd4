"""Normalising vendor webhook payloads into investigation requests (pure functions, no I/O).

The payload builders here follow the vendors' documented shapes and are reused by the HTTP tests.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest

from commands.webhooks import (
    PayloadError,
    WebhookRules,
    delivery_key,
    normalise,
    parse_json,
)


def jira_payload(key="SCHED-45895", labels=("auto-investigate",), event="jira:issue_created", priority="High"):
    """A Jira Cloud issue webhook body (trimmed to the fields the adapter reads plus some noise)."""
    return {
        "timestamp": int(time.time() * 1000),  # now: older bodies are refused as replays
        "webhookEvent": event,
        "issue_event_type_name": "issue_created",
        "user": {"accountId": "5b10a2844c20165700ede21g", "displayName": "Ann"},
        "issue": {
            "id": "10002",
            "self": "https://example.atlassian.net/rest/api/2/10002",
            "key": key,
            "fields": {
                "summary": "Bookings fail with 500",
                "labels": list(labels),
                "project": {"key": key.split("-")[0], "name": "Scheduler"},
                "priority": {"name": priority},
                "created": "2026-10-02T15:20:00.000+0000",
            },
        },
    }


def pagerduty_payload(incident_id="Q2A0TD1M5NJP9H", priority="P1", event_type="incident.triggered", event_id=None):
    """A PagerDuty v3 webhook body as in PagerDuty's 'Webhook Payload' docs."""
    return {
        "event": {
            "id": event_id or f"01DEN{incident_id}",
            "event_type": event_type,
            "resource_type": "incident",
            "occurred_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "agent": None,
            "client": None,
            "data": {
                "id": incident_id,
                "type": "incident",
                "self": f"https://api.pagerduty.com/incidents/{incident_id}",
                "html_url": f"https://acme.pagerduty.com/incidents/{incident_id}",
                "number": 2,
                "status": "triggered",
                "incident_key": f"key-{incident_id}",
                "created_at": "2026-10-02T15:21:00Z",
                "title": "High error rate on booking",
                "service": {"id": "PF9KMXH", "summary": "booking", "type": "service_reference"},
                "priority": {"id": "PSO75BM", "summary": priority, "type": "priority_reference"} if priority else None,
                "urgency": "high",
            },
        }
    }


def alert_group_payload(fingerprints=("1a2b3c4d5e6f7a8b",), name="BookingErrorRate", severity="critical",
                        status="firing", group_key='{}:{alertname="BookingErrorRate"}',
                        starts_at="2026-10-02T15:20:00Z", version="4", service="booking"):
    """An Alertmanager webhook v4 body (Grafana's unified alerting sends the same core fields)."""
    return {
        "version": version,
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "production-master",
        "groupLabels": {"alertname": name},
        "commonLabels": {"alertname": name, "service": service, "severity": severity},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.local:9093",
        "alerts": [
            {
                "status": status,
                "labels": {"alertname": name, "service": service, "severity": severity},
                "annotations": {"summary": f"{service} 5xx above 5%"},
                "startsAt": starts_at,
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.local/graph",
                "fingerprint": fp,
            }
            for fp in fingerprints
        ],
    }


RULES = WebhookRules(domains={"booking": "bookings", "SCHED": "bookings"}, domain_channels={"bookings": "C0BOOK"})


def test_jira_labelled_issue_becomes_ticket_request():
    (req,) = normalise("jira", jira_payload(priority="Highest"), RULES).requests
    assert req.trigger == {"ticket": "SCHED-45895"}
    assert req.fingerprint == "jira:SCHED-45895"
    assert req.priority == "P1"
    assert req.origin.kind == "jira" and req.origin.jira_key == "SCHED-45895"
    assert req.domain == "bookings" and req.origin.channel == "C0BOOK"
    assert req.raw["issue"]["key"] == "SCHED-45895"


@pytest.mark.parametrize(
    "payload, rules, reason",
    [
        (jira_payload(labels=("frontend",)), RULES, "none of the labels"),
        (jira_payload(event="jira:issue_deleted"), RULES, "not handled"),
        (jira_payload(), WebhookRules(jira_projects=("OPS",)), "JIRA_PROJECT_FILTER"),
    ],
)
def test_jira_filters(payload, rules, reason):
    out = normalise("jira", payload, rules)
    assert not out.requests and reason in out.ignored


def test_jira_label_list_is_configurable():
    rules = WebhookRules(jira_labels=("frontend",), jira_projects=("SCHED",))
    (req,) = normalise("jira", jira_payload(labels=("Frontend",), priority="Low"), rules).requests
    assert req.priority == "P3"


def test_pagerduty_p1_p2_only():
    (req,) = normalise("pagerduty", pagerduty_payload(priority="P2"), RULES).requests
    assert req.priority == "P2" and req.fingerprint == "pagerduty:key-Q2A0TD1M5NJP9H"
    assert req.trigger["alert"] == "pd-q2a0td1m5njp9h" and req.trigger["service"] == "booking"
    assert req.origin.source == "pagerduty" and req.origin.channel == "C0BOOK"
    assert "not one of" in normalise("pagerduty", pagerduty_payload(priority="P3"), RULES).ignored
    assert "not handled" in normalise("pagerduty", pagerduty_payload(event_type="incident.resolved"), RULES).ignored


def test_alert_group_one_request_per_firing_matching_alert():
    payload = alert_group_payload(fingerprints=("aaa111", "bbb222"))
    payload["alerts"][1]["status"] = "resolved"
    (req,) = normalise("alertmanager", payload, RULES).requests
    assert req.fingerprint == "alertmanager:aaa111" and req.priority == "P1"
    assert req.trigger["alert"] == "am-aaa111" and req.trigger["ts"] == "2026-10-02T15:20:00Z"
    (greq,) = normalise("grafana", alert_group_payload(severity="warning"), RULES).requests
    assert greq.fingerprint.startswith("grafana:") and greq.priority == "P2"


def test_alert_name_patterns_filter():
    rules = WebhookRules(alert_name_patterns=("*error_rate*", "*ErrorRate"))
    assert normalise("alertmanager", alert_group_payload(name="BookingErrorRate"), rules).requests
    out = normalise("alertmanager", alert_group_payload(name="DiskFull"), rules)
    assert "match no pattern" in out.ignored


def test_deploy_only_for_configured_environments():
    out = normalise("deploy", {"service": "booking", "environment": "production", "version": "1.2"}, RULES)
    assert out.deploy["service"] == "booking" and out.deploy["domain"] == "bookings"
    assert "not one of" in normalise("deploy", {"service": "booking", "environment": "staging"}, RULES).ignored


@pytest.mark.parametrize(
    "source, payload, field",
    [
        ("jira", {"webhookEvent": "jira:issue_created", "issue": {"fields": {}}}, "issue.key"),
        ("jira", {"issue": {"key": "A-1"}}, "webhookEvent"),
        ("pagerduty", {"event": {"event_type": "incident.triggered"}}, "event.data"),
        ("pagerduty", {"event": {"event_type": "incident.triggered", "occurred_at": "2026-10-02T15:21:00Z", "data": {"id": "X"}}}, "event.data.title"),
        ("alertmanager", {"version": "4"}, "alerts"),
        ("alertmanager", {"alerts": "nope"}, "alerts"),
        ("alertmanager", {"alerts": [{"status": "firing", "labels": {}, "startsAt": "2026-10-02T15:20:00Z"}]},
         "alerts[0].labels.alertname"),
        ("grafana", {"alerts": [{"labels": {"alertname": "X"}}]}, "alerts[0].startsAt"),
        ("deploy", {"environment": "production"}, "service"),
        ("deploy", {"service": "a", "environment": "production", "deployed_at": "yesterday"}, "deployed_at"),
    ],
)
def test_missing_fields_name_the_field(source, payload, field):
    with pytest.raises(PayloadError) as info:
        normalise(source, payload, RULES)
    assert info.value.field == field
    assert field in str(info.value)


def test_parse_json_rejects_non_objects():
    assert parse_json(b'{"a": 1}') == {"a": 1}
    for body in (b"{", b"[1]", b"\xff"):
        with pytest.raises(PayloadError):
            parse_json(body)


def test_delivery_keys():
    body = json.dumps(alert_group_payload()).encode()
    headers = {"x-atlassian-webhook-identifier": "wh-1"}
    # Jira: the body's content, whatever the identifier (a signed body resent with a fresh one is a replay).
    sent = jira_payload()  # one body: its timestamp is "now", so two calls may differ by a millisecond
    jira = delivery_key("jira", sent, headers, b"{}")
    assert jira.startswith("sha256:") and jira == delivery_key("jira", sent, {"x-atlassian-webhook-identifier": "wh-2"}, b"")
    assert jira != delivery_key("jira", {**sent, "issue": jira_payload(priority="Low")["issue"]}, headers, b"{}")
    assert delivery_key("pagerduty", pagerduty_payload(event_id="E1"), {}, b"") == "E1"
    first = delivery_key("alertmanager", alert_group_payload(), {}, body)
    assert first == delivery_key("alertmanager", alert_group_payload(), {}, b"other bytes")
    assert first != delivery_key("alertmanager", alert_group_payload(starts_at="2026-10-02T16:00:00Z"), {}, body)
    assert delivery_key("deploy", {"id": "d-9"}, {}, b"") == "d-9"
