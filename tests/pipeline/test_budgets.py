"""Budgets end to end on SQLite and PostgreSQL: the 80 % warning (admins' Slack channel through the
stand-in Slack server, and the metric), 90 % only P1, 100 % refused until an admin approves over the
admin API, and an investigation that reaches its own cap publishing a partial report.

Spend is made the way the agents make it: ``Budgets.charge`` / ``state.budget.charge`` with token
usage, priced by the price table (claude-sonnet-4-6: $3 per million input tokens).
"""

from __future__ import annotations

import httpx
import pytest

from agents.pricing import Usage
from bot.http.app import create_app
from bot.http.server import ServerThread
from bot.http.settings import load_http_settings
from commands import investigate
from commands.errors import BudgetStopped
from commands.requests import InvestigationRequest, Origin
from pipeline import metrics
from pipeline import phases as P
from pipeline.errors import BudgetExceeded
from pipeline.runtime import build_runtime
from publishers.slack import SlackPublisher, make_slack_alarm, make_web_client
from store import agent_runs, model_choices
from store import investigations as invs
from store.config import Settings, load_cost_settings, load_settings
from store.db import upgrade
from tests.fakes.slack_server import FakeSlack
from tests.pipeline.plans import ScriptedPlan

SONNET = "claude-sonnet-4-6"
MTOK = 1_000_000


@pytest.fixture(params=["sqlite", "pg"])
def db_url(request):
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    upgrade(url)
    return url


@pytest.fixture
def slack():
    fake = FakeSlack()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def make_runtime(db_url, tmp_path, slack):
    made = []

    def make(plan=None, **cost):
        settings = Settings(DATABASE_URL=db_url, PM_HOME=str(tmp_path / "pm"))
        rt = build_runtime(settings, plan=plan if plan is not None else ScriptedPlan(),
                           tools_factory=lambda inv: None,
                           cost=load_cost_settings(PM_BUDGET_DOMAIN_MONTH_USD=10, PM_BUDGET_STATUS_EVERY_S=0, **cost))
        rt.alarm = make_slack_alarm(Settings(SLACK_BOT_TOKEN="xoxb-t", SLACK_API_URL=slack.api_url,
                                             PM_ADMIN_CHANNEL="CADMIN"))
        made.append(rt)
        return rt

    yield make
    for rt in made:
        rt.close()


def _spend(rt, usd: float, *, domain: str = "payments") -> str:
    """An investigation of ``domain`` whose hypotheses agent spent ``usd`` on Sonnet input tokens."""
    with rt.session() as s:
        inv_id = invs.create(session=s, trigger={"text": "checkout slow"}, origin={"kind": "cli"}, domain=domain).id
    tokens = round(usd / 3 * MTOK)
    rt.budgets.charge(investigation_id=inv_id, agent="hypotheses", phase=P.HYPOTHESES, model=SONNET,
                      usage=Usage(input=tokens))
    return inv_id


def _request(priority: str = "P2", domain: str = "payments") -> InvestigationRequest:
    return InvestigationRequest(trigger={"text": f"errors {priority}"}, origin=Origin(kind="cli", user="cli"),
                                domain=domain, priority=priority)


def _notices(scope: str, level: str) -> float:
    return metrics.BUDGET_NOTICES.labels(scope, level)._value.get()


@pytest.mark.integration
def test_80_percent_warns_the_admins_once_with_the_metric_and_still_starts(make_runtime, slack):
    rt = make_runtime()
    before = _notices("domain", "80")
    _spend(rt, 7.0)
    assert slack.messages.get("CADMIN", []) == []  # 70 %: quiet
    _spend(rt, 1.1)  # 81 %
    [warning] = slack.messages["CADMIN"]
    assert "monthly budget of domain payments has reached 80%" in warning["text"]
    assert "$8.10 of $10.00" in warning["text"]
    assert _notices("domain", "80") == before + 1
    assert metrics.BUDGET_USED.labels("domain", "payments")._value.get() == pytest.approx(0.81)
    _spend(rt, 0.05)  # still above 80 %, below 90 %: said once only
    assert len(slack.messages["CADMIN"]) == 1
    assert investigate.start(runtime=rt, request=_request("P3")).created  # a warning stops nothing


@pytest.mark.integration
def test_90_percent_lets_only_p1_start(make_runtime, slack):
    rt = make_runtime()
    _spend(rt, 9.2)
    with pytest.raises(BudgetStopped) as refused:
        investigate.start(runtime=rt, request=_request("P2"))
    assert "92% used" in str(refused.value) and "only P1 investigations start" in str(refused.value)
    assert "pm budgets approve domain payments" in str(refused.value)
    assert investigate.start(runtime=rt, request=_request("P1")).created
    assert investigate.start(runtime=rt, request=_request("P2", domain="search")).created  # another domain
    texts = [m["text"] for m in slack.messages["CADMIN"]]
    assert any("reached 90%" in t and "only P1 investigations start now" in t for t in texts)


@pytest.mark.integration
def test_100_percent_refuses_until_an_admin_approves_over_the_admin_api(make_runtime, db_url, tmp_path, slack):
    rt = make_runtime()
    _spend(rt, 10.5)
    with pytest.raises(BudgetStopped, match=r"domain payments is spent \(\$10.50 of \$10.00"):
        investigate.start(runtime=rt, request=_request("P1"))
    assert any("reached 100%" in m["text"] and "pm budgets approve domain payments" in m["text"]
               for m in slack.messages["CADMIN"])
    settings = load_settings(PM_HOME=str(tmp_path / "pm"), DATABASE_URL=db_url,
                             API_KEYS="op-key:operator,admin-key:admin,view-key:viewer")
    server = ServerThread(create_app(settings, rt, load_http_settings())).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            start = client.post("/api/v1/investigate", headers={"x-api-key": "op-key"},
                                json={"text": "checkout slow", "domain": "payments", "priority": "P1"})
            assert start.status_code == 403 and "pm budgets approve domain payments" in start.json()["detail"]
            shown = client.get("/api/v1/budgets", headers={"x-api-key": "view-key"}).json()
            [pay] = [d for d in shown["domains"] if d["key"] == "payments"]
            assert (pay["level"], pay["spent_usd"]) == ("stopped", 10.5)
            assert client.post("/api/v1/budgets/approve", headers={"x-api-key": "op-key"},
                               json={"scope": "domain", "domain": "payments"}).status_code == 403  # admins only
            bad = client.post("/api/v1/budgets/approve", headers={"x-api-key": "admin-key"},
                              json={"scope": "domain", "domain": "payments", "usd": -5})
            assert bad.status_code == 400 and "usd must be an amount above 0" in bad.json()["detail"]
            ok = client.post("/api/v1/budgets/approve", headers={"x-api-key": "admin-key"},
                             json={"scope": "domain", "domain": "payments", "usd": 5, "note": "incident week"})
            assert ok.status_code == 200
            assert ok.json()["budget"]["limit_usd"] == 15.0 and ok.json()["by"]
            # $10.50 of $15.00 is 70 %: anything starts again
            again = client.post("/api/v1/investigate", headers={"x-api-key": "op-key"},
                                json={"text": "checkout slow", "domain": "payments", "priority": "P3"})
            assert again.status_code == 202, again.text
    finally:
        server.stop()
    with rt.session() as s:
        assert invs.get(session=s, investigation_id=again.json()["investigation_id"]).budget_usd == 5.0


@pytest.mark.integration
def test_a_lifted_stop_lets_everything_start_for_the_month_and_global_budget_applies(make_runtime):
    rt = make_runtime(PM_BUDGET_GLOBAL_MONTH_USD=12)
    _spend(rt, 12.5, domain="search")  # the platform's budget is spent: every domain stops
    with pytest.raises(BudgetStopped, match="the global monthly budget is spent.*pm budgets approve global"):
        investigate.start(runtime=rt, request=_request("P1"))
    from commands import budgets

    budgets.approve(runtime=rt, body={"scope": "global"}, by="ops-lead")
    assert investigate.start(runtime=rt, request=_request("P3", domain="web")).created
    shown = budgets.show(runtime=rt)
    assert shown["global"]["lifted"] and shown["approvals"][0]["approved_by"] == "ops-lead"


@pytest.mark.integration
def test_an_investigation_at_its_cap_stops_and_publishes_a_partial_report(make_runtime, slack):
    calls = []

    def hypotheses_agent(state):
        # what the tool loop does around each model call
        router = state.budget.router()  # PM_ROUTER_TIGHT_BELOW=0.3 below; every choice recorded
        for _ in range(10):
            remaining = state.budget.before_call()  # raises BudgetExceeded at the cap
            choice = router.choose("hypotheses", mode="balanced", budget_left=state.budget.left())
            calls.append((remaining, choice.tier))
            state.budget.charge("hypotheses", choice.model,
                                Usage(input=100_000, output=10_000, cache_read=300_000, cache_write=50_000))

    plan = ScriptedPlan(hook={P.HYPOTHESES: hypotheses_agent})
    rt = make_runtime(plan, PM_BUDGET_INVESTIGATION_USD=1.0, PM_ROUTER_TIGHT_BELOW=0.3)
    rt.register_publisher("slack", SlackPublisher(make_web_client(token="xoxb-t", base_url=slack.api_url)))
    inv_id = investigate.start(runtime=rt, request=InvestigationRequest(
        trigger={"text": "checkout slow"}, origin=Origin(kind="slack", channel="C1", user="U1"),
        domain="payments")).investigation_id
    assert rt.machine.advance(inv_id) == P.COMPLETE
    # sonnet: 0.1 MTok × $3 + 0.01 × $15 + 0.3 × $0.30 + 0.05 × $3.75 = $0.7275 a call; haiku: $0.2425
    assert [t for _r, t in calls] == ["balanced", "fast", "fast"]  # 27 % left after the first: stepped down
    inv = rt.wait(inv_id, 1)
    report = inv["report"]
    assert inv["status"] == "COMPLETE" and report["partial"] is True and report["verdict"] == "INCONCLUSIVE"
    assert report["partial_reason"].startswith("budget reached: spent $1.2125 of the investigation's $1.00")
    assert P.HYPOTHESES not in report["phases_done"] and P.CORRELATION in report["phases_done"]
    assert inv["cost_usd"] == pytest.approx(1.2125) and (P.VERIFICATION, 1) not in plan.runs
    with rt.session() as s:
        runs = {r.model: r for r in agent_runs.list_for(session=s, investigation_id=inv_id) if r.agent == "hypotheses"}
        assert set(runs) == {SONNET, "claude-haiku-4-5-20251001"}
        haiku = runs["claude-haiku-4-5-20251001"]
        assert (haiku.status, haiku.cache_read_tokens, haiku.cache_write_tokens) == ("stopped", 600_000, 100_000)
        assert haiku.tokens_in == 2 * 450_000 and haiku.tokens_out == 20_000
        assert haiku.cost_usd == pytest.approx(0.485) and runs[SONNET].cost_usd == pytest.approx(0.7275)
        choices = model_choices.list_for(session=s, investigation_id=inv_id)
    assert [c["tier"] for c in choices] == ["balanced", "fast", "fast"]
    assert "stepped down to fast: budget tight" in choices[1]["reason"] and choices[1]["phase"] == P.HYPOTHESES
    from commands import api as api_cmd

    traced = api_cmd.traces(runtime=rt, investigation_id=inv_id)
    assert [c["tier"] for c in traced["model_choices"]] == ["balanced", "fast", "fast"]
    assert {a["model_calls"]["cache_read_tokens"] for a in traced["agents"] if a["agent"] == "hypotheses"} == {
        300_000, 600_000}
    assert api_cmd.cost_breakdown(runtime=rt, investigation_id=inv_id)["cost_breakdown"]["llm_tokens"][
        "cache_write"] == 150_000
    kinds = [e["kind"] for e in rt.events(inv_id)]
    assert "usage" in kinds and kinds[-1] == "report"
    rt.publish_now(inv_id)
    [parent] = [m for m in slack.messages["C1"] if not m.get("thread_ts") or m["thread_ts"] == m["ts"]]
    thread = slack.thread("C1", parent["ts"])
    report_msg = [m for m in thread if "PARTIAL" in str(m.get("blocks"))]
    assert report_msg and "Partial report" in str(report_msg[0]["blocks"])
    status = [m for m in thread if ":abacus:" in str(m.get("blocks"))][0]
    assert f"${inv['cost_usd']:.2f} of $1.00" in str(status["blocks"])
    with pytest.raises(BudgetExceeded):
        rt.budgets.before_call(inv_id)


@pytest.mark.integration
def test_spend_recorded_at_a_phase_end_reaches_the_ledger_the_gate_and_the_admins(make_runtime, slack):
    # a phase that reports its usage the older way (state.record_usage, closed by the machine)
    rt = make_runtime(ScriptedPlan(cost={P.EVIDENCE: 9.5}))
    inv_id = investigate.start(runtime=rt, request=_request("P2")).investigation_id
    with rt.session() as s:
        invs.get(session=s, investigation_id=inv_id).budget_usd = 20.0  # its own cap is not the point here
    assert rt.machine.advance(inv_id) == P.COMPLETE
    from store import budgets as spend

    with rt.session() as s:
        month = spend.month_of(invs.get(session=s, investigation_id=inv_id).created_at)
        assert spend.ledger(session=s, scope="domain", key="payments", month=month) == pytest.approx(9.5)
        assert spend.month_spend(session=s, month=month, domain="payments") == pytest.approx(9.5)
    with pytest.raises(BudgetStopped, match="95% used"):
        investigate.start(runtime=rt, request=_request("P3"))
    [notice] = slack.messages["CADMIN"]  # crossed 80 and 90 % at the phase's end: said once, the highest
    assert "domain payments has reached 90%" in notice["text"]


@pytest.mark.integration
def test_a_slack_start_refused_by_the_budget_tells_the_requester(make_runtime, slack):
    from bot.slack.starts import StartBatcher

    rt = make_runtime()
    _spend(rt, 10.2)
    batcher = StartBatcher(rt, journal=None, client=make_web_client(token="xoxb-t", base_url=slack.api_url)).start()
    try:
        for priority in ("P2", "P1"):  # a burst fails as one batch, then each start is told on its own
            batcher.submit(InvestigationRequest(trigger={"text": f"checkout slow {priority}"}, domain="payments",
                                                priority=priority, requested_by="U7",
                                                origin=Origin(kind="slack", channel="C9", user="U7")), None)
        assert batcher.join(30)
    finally:
        batcher.stop()
    assert [(e["channel"], e["user"]) for e in slack.ephemerals] == [("C9", "U7"), ("C9", "U7")]
    assert all(e["text"].startswith(":no_entry: Not started: the monthly budget of domain payments is spent")
               and "pm budgets approve domain payments" in e["text"] for e in slack.ephemerals)
    with rt.session() as s:
        assert len(invs.list_recent(session=s)) == 1  # only the one that spent the budget
