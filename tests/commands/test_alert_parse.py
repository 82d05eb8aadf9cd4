"""Alert posts in the shapes PagerDuty, Grafana and Alertmanager use in Slack → triggers."""

from __future__ import annotations

import pytest

from commands.alert_parse import parse_alert_message, slack_ts_to_iso
from commands.errors import BadRequest


def test_pagerduty_attachment_with_service_field_and_incident_link() -> None:
    msg = {"ts": "1790957880.000100", "bot_profile": {"name": "PagerDuty"}, "text": "", "attachments": [{
        "title": "Triggered #4411: Checkout latency above SLO", "title_link": "https://acme.pagerduty.com/incidents/Q2XYZ",
        "fields": [{"title": "Service", "value": "checkout"}, {"title": "Urgency", "value": "high"}]}]}
    t = parse_alert_message(msg)
    assert t == {"alert": "pd-q2xyz", "service": "checkout", "title": "Checkout latency above SLO",
                 "ts": "2026-10-02T16:18:00Z", "source": "pagerduty"}


def test_grafana_blocks_with_labels_and_time() -> None:
    msg = {"ts": "1.0", "blocks": [
        {"type": "header", "text": {"type": "plain_text", "text": "[Alerting] Error budget burn"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "Labels:\n- alertname = ErrorBudgetBurn\n"
                                                               "- service = catalog\nStarted 2026-10-02 16:19:00"}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "Grafana v11"}]}]}
    t = parse_alert_message(msg)
    assert t["service"] == "catalog" and t["title"] == "Error budget burn" and t["source"] == "grafana"
    assert t["ts"] == "2026-10-02T16:19:00Z" and t["text"] == "Error budget burn" and "alert" not in t


def test_alertmanager_default_template_text() -> None:
    msg = {"ts": "1.0", "attachments": [{"title": "[FIRING:1] HighErrorRate", "text":
            "*Alert:* High error rate - `critical`\n*Details:*\n • *alertname:* `HighErrorRate`\n"
            " • *service:* `pricing`\n • *id:* am-2d06975d"}]}
    t = parse_alert_message(msg)
    assert (t["alert"], t["service"], t["title"], t["source"]) == ("am-2d06975d", "pricing", "HighErrorRate",
                                                                   "alertmanager")


def test_plain_text_alert_from_the_sandbox_chat() -> None:
    t = parse_alert_message({"ts": "1790957910.0", "text": "[FIRING] High error rate on pricing (pd-3975)"})
    assert (t["alert"], t["service"], t["title"]) == ("pd-3975", "pricing", "High error rate on pricing")
    assert t["ts"] == "2026-10-02T16:18:30Z"


def test_a_person_describing_a_problem_becomes_a_text_trigger() -> None:
    t = parse_alert_message({"ts": "1.5", "text": "checkout is throwing 500s for everyone"})
    assert t["text"] == "checkout is throwing 500s for everyone" and t["service"] is None and t["source"] is None


def test_an_empty_message_is_refused_with_what_to_do() -> None:
    with pytest.raises(BadRequest, match="react on an alert"):
        parse_alert_message({"ts": "1.0", "text": "", "attachments": [{}]})
    with pytest.raises(BadRequest, match="expected seconds"):
        slack_ts_to_iso("yesterday")
