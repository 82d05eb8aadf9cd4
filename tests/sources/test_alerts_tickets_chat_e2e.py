"""End to end through MCP: one sources.yaml with a REAL Alertmanager, the stand-in Jira and the stand-in
Slack, each entry served by its provider's MCP server (sources.server) and reached through the gateway."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from agents.errors import ToolError
from agents.gateway import open_gateway
from agents.sources_gateway import gateway_config
from sandbox.world import parse_ts
from sources.base import iso
from store.sources_file import load_sources
from tests.fakes.jira_server import FakeJira
from tests.fakes.slack_server import FakeSlack
from tests.sources.am_process import Alertmanager

pytestmark = pytest.mark.integration


@pytest.fixture()
def vendors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Alertmanager, FakeJira, FakeSlack]]:
    am = Alertmanager(tmp_path)
    jira = FakeJira("bot@example.com", "jira-token").start()
    slack = FakeSlack()
    slack.start()
    try:
        monkeypatch.setenv("JIRA_URL", jira.url)
        monkeypatch.setenv("JIRA_USER", "bot@example.com")
        monkeypatch.setenv("JIRA_API_TOKEN", "jira-token")
        monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
        monkeypatch.setenv("SLACK_API_URL", slack.api_url)
        yield am, jira, slack
    finally:
        slack.stop()
        jira.stop()
        am.stop()


def test_alerts_tickets_and_chat_through_the_gateway(tmp_path: Path, vendors: tuple[Alertmanager, FakeJira,
                                                                                      FakeSlack]) -> None:
    am, jira, slack = vendors
    now = float(int(time.time()))
    am.post([{"labels": {"alertname": "CheckoutErrors", "service": "checkout", "severity": "critical"},
              "annotations": {"summary": "checkout 5xx above 5%"}, "startsAt": iso(now - 900)}])
    fingerprint = am.fingerprints()["CheckoutErrors"]
    jira.add_incident_issue("PAY-7", summary="Checkout 502", description="card payments fail",
                            labels=("incident",), components=("checkout",), created="2026-02-15T11:10:00.000+0000")
    slack.add_channel("C0INCIDNT", "incidents")
    slack.add_channel("C0PAYMNTS", "payments")
    slack.add_channel("C0SECRET1", "secret", is_member=False)
    slack.users["U1"] = {"id": "U1", "name": "alice", "profile": {"display_name": "alice"}}
    slack.add_message("C0INCIDNT", "checkout 502s, looking", ts=f"{now - 600:.6f}", user="U1")
    slack.add_message("C0PAYMNTS", "payments v2.3 deployed", ts=f"{now - 1200:.6f}", user="U1")
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump({
        "alerts": [{"kind": "alertmanager", "url": am.url}],
        "tickets": [{"kind": "jira", "projects": ["PAY"]}],
        "chat": [{"kind": "slack", "channels": ["#incidents", "#secret"]},
                 {"kind": "slack", "name": "payments-chat", "channels": ["#payments"]}],
    }))
    window = {"start": iso(now - 3600), "end": iso(now + 60)}
    with open_gateway(gateway_config(load_sources(path))) as gw:
        alert = {"id": f"am-{fingerprint}", "ts": iso(now - 900), "source": "alertmanager", "service": "checkout",
                 "severity": "critical", "title": "checkout 5xx above 5%",
                 "labels": {"alertname": "CheckoutErrors", "service": "checkout", "severity": "critical"}}
        assert gw.call("alerts.list", service="checkout", **window) == {"alerts": [alert]}
        assert gw.call("alerts.get", id=f"am-{fingerprint}") == alert
        ticket = gw.call("tickets.get", key="PAY-7")
        assert ticket["ts"] == "2026-02-15T11:10:00Z" and ticket["components"] == ["checkout"]
        assert ticket["url"] == f"{jira.url}/browse/PAY-7"
        assert gw.call("tickets.search", text="checkout") == {"tickets": [ticket]}
        with pytest.raises(ToolError, match="has no issue 'PAY-404'"):
            gw.call("tickets.get", key="PAY-404")
        chat = gw.call("chat.search", **window)
        assert chat["messages"] == [
            {"ts": iso(now - 1200), "channel": "#payments", "user": "alice", "text": "payments v2.3 deployed"},
            {"ts": iso(now - 600), "channel": "#incidents", "user": "alice", "text": "checkout 502s, looking"},
        ]
        (note,) = chat["missing_sources"]
        assert "cannot read #secret: the bot is not in it; invite the bot to #secret" in note
        assert parse_ts(chat["messages"][0]["ts"]) < parse_ts(chat["messages"][1]["ts"])
