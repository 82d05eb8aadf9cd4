"""Jira as the ticket source of CONTEXT_GATHERING: the real `jira` client against the stand-in Jira,
wrapped around the real MCP gateway on the sandbox servers (example-1)."""

from __future__ import annotations

import socket

import pytest

from pipeline import phases as P
from pipeline.errors import TriggerNotFound
from pipeline.plan import PhaseState, engine_plan
from pipeline.runtime import build_runtime
from pipeline.tools import JiraTickets, open_tools
from store import checkpoints
from store import investigations as invs
from store.config import Settings
from store.db import upgrade
from tests.fakes.jira_server import FakeJira
from tests.paths import WORLDS

WORLD = WORLDS / "example-1"
KEY = "SCHED-57756"  # also in example-1's tickets.jsonl, with a different summary


@pytest.fixture()
def jira():
    fake = FakeJira().start()
    fake.add_incident_issue(KEY, summary="Orders page returns 502 since 12:07",
                            description="Customers cannot place orders. Started around 12:07 UTC.",
                            labels=("production-bug",), components=("orders", "gateway"), status="In Progress",
                            reporter="Dana Support", created="2026-02-15T13:17:00.000+0100")
    yield fake
    fake.stop()


def _settings(jira_url: str, **kw) -> Settings:
    return Settings(PM_WORLD=str(WORLD), JIRA_URL=jira_url, JIRA_USER="bot@example.com", JIRA_API_TOKEN="jira-token",
                    **kw)


def _context(settings: Settings, key: str = KEY) -> dict:
    inv = {"id": "inv-jira-ctx", "trigger": {"ticket": key}, "sources": {}}
    tools = open_tools(inv, settings)
    try:
        state = PhaseState(investigation=inv, trigger=inv["trigger"], window=None, outputs={},
                           _tools_factory=lambda: tools)
        return engine_plan()[P.CONTEXT_GATHERING](state)
    finally:
        tools.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.integration
def test_the_jira_ticket_is_the_context(jira):
    ctx = _context(_settings(jira.url))
    t = ctx["ticket"]
    assert (t["source"], t["key"], t["summary"]) == ("jira", KEY, "Orders page returns 502 since 12:07")
    assert t["labels"] == ["production-bug"] and t["components"] == ["orders", "gateway"]
    assert (t["status"], t["reporter"], t["ts"]) == ("In Progress", "Dana Support", "2026-02-15T12:17:00Z")
    assert t["url"] == f"{jira.url}/browse/{KEY}"
    assert ctx["trigger_service"] == "orders" and "Customers cannot place orders" in ctx["trigger_text"]
    assert not any(m.startswith(("jira", "tickets")) for m in ctx["missing_sources"])
    assert ("GET", f"/rest/api/2/issue/{KEY}") in jira.requests


@pytest.mark.integration
def test_a_jira_404_is_permanent_and_said_instead_of_investigating_the_world_s_ticket(jira):
    # Issue #12: a ticket Jira answers 404 for was investigated (the world's ticket) and the 404 retried.
    jira.issues.pop(KEY)
    with pytest.raises(TriggerNotFound) as err:
        _context(_settings(jira.url))
    assert f"no ticket {KEY} in Jira — check the key" in str(err.value)
    assert jira.requests.count(("GET", f"/rest/api/2/issue/{KEY}")) == 1  # asked once, not retried


@pytest.mark.integration
def test_an_unknown_key_of_the_tool_servers_is_said_without_jira():
    settings = Settings(PM_WORLD=str(WORLD))
    with pytest.raises(TriggerNotFound, match="no ticket NOPE-99999 in the tickets source — check the key"):
        _context(settings, "NOPE-99999")
    inv = {"id": "inv-alert", "trigger": {"alert": "pd-0000"}, "sources": {}}
    tools = open_tools(inv, settings)
    try:
        state = PhaseState(investigation=inv, trigger=inv["trigger"], window=None, outputs={},
                           _tools_factory=lambda: tools)
        with pytest.raises(TriggerNotFound, match="no alert pd-0000 in the observability source"):
            engine_plan()[P.CONTEXT_GATHERING](state)
    finally:
        tools.close()


def test_without_jira_settings_the_gateway_is_not_wrapped():
    inv = {"id": "inv-x", "trigger": {"ticket": KEY}, "sources": {}}
    tools = open_tools(inv, Settings(PM_WORLD=str(WORLD)))
    try:
        assert not isinstance(tools, JiraTickets)
    finally:
        tools.close()
    tools = open_tools({**inv, "trigger": {"alert": "pd-8240"}}, _settings("http://127.0.0.1:9"))
    try:
        assert not isinstance(tools, JiraTickets)
    finally:
        tools.close()


@pytest.mark.integration
def test_jira_down_degrades_the_investigation_instead_of_failing_it(pg_url, tmp_path):
    upgrade(pg_url)
    url = f"http://127.0.0.1:{_closed_port()}"
    rt = build_runtime(_settings(url, DATABASE_URL=pg_url, PM_HOME=str(tmp_path / "pm")))
    try:
        with rt.session() as s:
            inv_id = invs.create(session=s, trigger={"ticket": KEY}, origin={"kind": "cli"}).id
        assert rt.machine.advance(inv_id) == P.COMPLETE
        inv = rt.wait(inv_id, 5)
        note = f"jira (tickets.get {KEY} failed: ConnectionError)"
        assert note in inv["report"]["missing_sources"]
        with rt.session() as s:
            cp = checkpoints.get(session=s, investigation_id=inv_id, phase=P.CONTEXT_GATHERING)
            ctx = cp.output if cp.output is not None else rt.artifacts.get_json(cp.output_ref)
        assert ctx["ticket"]["summary"] == "orders: errors since this morning" and note in ctx["missing_sources"]
    finally:
        rt.close()
