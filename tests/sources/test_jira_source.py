"""The jira provider through the real `jira` library against the stand-in Jira REST API (tests/fakes)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.http.server import free_port
from sandbox.errors import NotFoundError, ToolArgumentError
from sources.errors import SourceError
from sources.jira import JiraProvider, build_jql, jql_string
from sources.registry import build_provider
from store.errors import ConfigError
from store.sources_file import parse_sources
from tests.fakes.jira_server import FakeJira
from tests.sources.canned_http import CannedServer

USER, TOKEN = "bot@example.com", "jira-token"


@pytest.fixture()
def jira(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeJira]:
    fake = FakeJira(USER, TOKEN).start()
    monkeypatch.setenv("JIRA_URL", fake.url)
    monkeypatch.setenv("JIRA_USER", USER)
    monkeypatch.setenv("JIRA_API_TOKEN", TOKEN)
    fake.add_incident_issue("PAY-101", summary="Checkout returns 502 for card payments",
                            description="Since 11:05 every card payment fails with 502 from payments.",
                            labels=("incident", "checkout"), components=("payments", "checkout"),
                            created="2026-02-15T12:17:00.000+0100", priority="Highest")
    fake.add_incident_issue("PAY-102", summary="Refunds slow", description="Refund latency doubled",
                            labels=("incident",), components=("payments",), status="In Progress",
                            created="2026-02-16T08:00:00.000+0000")
    fake.add_incident_issue("OPS-7", summary="Disk full on db-3", description="payments database disk alert",
                            labels=("incident", "infra"), created="2026-02-14T23:59:59.000+0000")
    fake.add_incident_issue("SEC-1", summary="Secret ticket", description="must never leak",
                            labels=("x",), created="2026-02-10T00:00:00.000+0000")
    try:
        yield fake
    finally:
        fake.stop()


def provider(**settings: Any) -> JiraProvider:
    doc = parse_sources({"tickets": [{"kind": "jira", **settings}]}, base_dir=Path.cwd())
    built = build_provider(doc.entries[0], doc)
    assert isinstance(built, JiraProvider)
    return built


def pay101(url: str) -> dict[str, Any]:
    return {"key": "PAY-101", "ts": "2026-02-15T11:17:00Z", "summary": "Checkout returns 502 for card payments",
            "description": "Since 11:05 every card payment fails with 502 from payments.",
            "labels": ["incident", "checkout"], "components": ["payments", "checkout"], "status": "Open",
            "reporter": "Support Bot", "priority": "Highest", "url": f"{url}/browse/PAY-101", "source": "jira"}


def keys(result: dict[str, Any]) -> list[str]:
    return [t["key"] for t in result["tickets"]]


def test_get_maps_the_issue_to_a_world_ticket(jira: FakeJira) -> None:
    assert provider().call("tickets.get", key="PAY-101") == pay101(jira.url)
    assert provider().call("tickets.get", key="pay-101")["key"] == "PAY-101"
    assert ("GET", "/rest/api/2/issue/PAY-101") in jira.requests


def test_get_unknown_bad_and_missing_keys(jira: FakeJira) -> None:
    p = provider()
    with pytest.raises(NotFoundError, match=f"jira {jira.url} has no issue 'PAY-999'"):
        p.call("tickets.get", key="PAY-999")
    with pytest.raises(NotFoundError, match="is not a Jira issue key"):
        p.call("tickets.get", key="PAY-101/comment")
    with pytest.raises(ToolArgumentError, match="'key' is required"):
        p.call("tickets.get")
    assert not any("comment" in path for _, path in jira.requests)


def test_search_by_text_labels_and_projects_writes_escaped_jql(jira: FakeJira) -> None:
    p = provider()
    assert p.call("tickets.search", text="Card payment 502") == {"tickets": [pay101(jira.url)]}
    assert jira.searches[-1] == 'text ~ "card payment 502" ORDER BY created DESC'
    assert keys(p.call("tickets.search", labels=["incident"])) == ["PAY-102", "PAY-101", "OPS-7"]
    assert keys(p.call("tickets.search", labels=["incident", "infra"])) == ["OPS-7"]
    assert jira.searches[-1] == 'labels = "incident" AND labels = "infra" ORDER BY created DESC'
    scoped = provider(projects=["PAY"])
    assert keys(scoped.call("tickets.search", text="payments")) == ["PAY-101"]
    assert jira.searches[-1] == 'project in ("PAY") AND text ~ "payments" ORDER BY created DESC'
    assert keys(scoped.call("tickets.search")) == ["PAY-102", "PAY-101"]
    assert jira.searches[-1] == 'project in ("PAY") ORDER BY created DESC'


def test_outside_text_cannot_break_the_jql(jira: FakeJira) -> None:
    p = provider(projects=["PAY"])
    evil = 'x" OR project = "SEC'
    assert p.call("tickets.search", labels=[evil]) == {"tickets": []}
    assert jira.searches[-1] == 'project in ("PAY") AND labels = "x\\" OR project = \\"SEC" ORDER BY created DESC'
    assert p.call("tickets.search", labels=["incident\\", "x"]) == {"tickets": []}
    assert jira.searches[-1].endswith('labels = "incident\\\\" AND labels = "x" ORDER BY created DESC')
    # Quotes, backslashes and Lucene syntax in text are searched as words, never parsed.
    assert keys(p.call("tickets.search", text='502" OR project = "SEC\\ (card)*')) == []
    assert jira.searches[-1] == 'project in ("PAY") AND text ~ "502 or project = sec card" ORDER BY created DESC'
    assert keys(p.call("tickets.search", text='"card" -payment')) == ["PAY-101"]
    assert p.call("tickets.search", text='"*"') == {"tickets": []}
    assert jql_string('a\n"b"\\') == '"a \\"b\\"\\\\"'
    assert build_jql(text=None, labels=[], projects=[]) == "ORDER BY created DESC"


def test_cap_reached_says_truncated_and_cloud_pages_by_token(jira: FakeJira) -> None:
    got = provider(max_results=2).call("tickets.search", labels=["incident"])
    assert keys(got) == ["PAY-102", "PAY-101"]
    assert got["truncated"] == ("more than 2 issues matched, the newest 2 returned (raise tickets[0].max_results "
                                "or search more narrowly)")
    for n in range(130):
        jira.add_incident_issue(f"BULK-{n}", summary=f"bulk {n}", description="", labels=("bulk",),
                                created=f"2026-01-01T00:{n // 60:02d}:{n % 60:02d}.000+0000")
    jira.requests.clear()
    got = provider(max_results=120).call("tickets.search", labels=["bulk"])
    assert keys(got)[:2] == ["BULK-129", "BULK-128"] and len(got["tickets"]) == 120
    assert "truncated" in got
    assert [p for _, p in jira.requests] == ["/rest/api/2/serverInfo", "/rest/api/2/field",
                                              "/rest/api/2/search/jql", "/rest/api/2/search/jql"]
    got = provider(max_results=500).call("tickets.search", labels=["bulk"])
    assert len(got["tickets"]) == 130 and "truncated" not in got


def test_paging_stops_at_the_time_budget(jira: FakeJira) -> None:
    for n in range(250):
        jira.add_incident_issue(f"BULK-{n:03d}", summary=f"bulk {n}", description="", labels=("bulk",),
                                created=f"2026-01-01T0{n // 60 // 60}:{n // 60 % 60:02d}:{n % 60:02d}.000+0000")
    jira.delay_s = 0.35
    got = provider(max_results=500, timeout_s=0.8, api="cloud").call("tickets.search", labels=["bulk"])
    # Pages of 100, each two requests here (the field list, then the page): one or two fit in 0.8 s.
    n = len(got["tickets"])
    assert n in (100, 200) and got["tickets"][0]["key"] == "BULK-249"
    assert got["truncated"] == (f"stopped paging after 0.8 s with the newest {n} issues (raise tickets[0].timeout_s "
                                "or search more narrowly)")


def test_server_deployment_pages_by_start_at(jira: FakeJira) -> None:
    jira.deployment_type = "Server"
    got = provider(max_results=2).call("tickets.search", labels=["incident"])
    assert keys(got) == ["PAY-102", "PAY-101"] and "truncated" in got
    assert jira.requests[-1] == ("GET", "/rest/api/2/search")
    got = provider(api="server").call("tickets.search", labels=["incident"])
    assert keys(got) == ["PAY-102", "PAY-101", "OPS-7"] and "truncated" not in got


def test_settings_override_the_environment(jira: FakeJira, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JIRA_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("JIRA_API_TOKEN", "wrong")
    monkeypatch.setenv("OTHER_TOKEN", TOKEN)
    p = provider(url=jira.url, user=USER, token={"env": "OTHER_TOKEN"})
    assert p.call("tickets.get", key="OPS-7")["summary"] == "Disk full on db-3"
    monkeypatch.delenv("JIRA_URL")
    with pytest.raises(ConfigError, match="tickets\\[0\\].url: no Jira URL; export JIRA_URL"):
        provider()
    with pytest.raises(ConfigError, match="secrets are not written in sources.yaml"):
        provider(url=jira.url, token="plain")


def test_refused_credentials(jira: FakeJira, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JIRA_API_TOKEN", "wrong")
    with pytest.raises(SourceError, match="HTTP 401 \\(Jira refused bot@example.com\\); check JIRA_USER / "
                                          "JIRA_API_TOKEN"):
        provider().call("tickets.get", key="PAY-101")
    with pytest.raises(SourceError, match="check JIRA_USER / JIRA_API_TOKEN"):
        provider().check()


def test_server_errors_and_rate_limits(jira: FakeJira) -> None:
    jira.fail_next(500)
    with pytest.raises(SourceError, match=f"^jira {jira.url}: issue PAY-101: HTTP 500: Server error.$"):
        provider().call("tickets.get", key="PAY-101")
    jira.fail_next(429, retry_after=30)
    with pytest.raises(SourceError, match="search: rate limited by Jira; retry after 30 s"):
        provider(api="cloud").call("tickets.search", text="x")
    assert provider().call("tickets.get", key="PAY-101")["key"] == "PAY-101"


def test_unreachable_garbage_and_slow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JIRA_USER", USER)
    monkeypatch.setenv("JIRA_API_TOKEN", TOKEN)
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(SourceError, match=f"^jira {url}: cannot connect .*check JIRA_URL / tickets\\[0\\].url$"):
        provider(url=url).call("tickets.get", key="PAY-1")
    with CannedServer(200, b"<html>SSO login</html>", "text/html") as srv:
        with pytest.raises(SourceError, match="is not Jira's JSON"):
            provider(url=srv.url).call("tickets.get", key="PAY-1")
        with pytest.raises(SourceError, match="is not Jira's JSON"):
            provider(url=srv.url, api="cloud").call("tickets.search", text="x")
    with CannedServer(200, b'{"issues": "nope"}') as srv:
        with pytest.raises(SourceError, match="search answered no issues list"):
            provider(url=srv.url, api="server").call("tickets.search", text="x")
    with CannedServer(200, b"{}", delay_s=2.0) as srv:
        started = time.monotonic()
        with pytest.raises(SourceError, match="issue PAY-1 timed out after 0.3 s; raise tickets\\[0\\].timeout_s"):
            provider(url=srv.url, timeout_s=0.3).call("tickets.get", key="PAY-1")
        assert time.monotonic() - started < 1.9  # the stand-in answers after 2 s


def test_check_names_the_server_and_the_user(jira: FakeJira) -> None:
    assert provider().check() == f"Jira Cloud 1001.0.0-SNAPSHOT at {jira.url}, signed in as Production Master"
