"""The durable state machine on SQLite and PostgreSQL, driven directly (no broker)."""

from __future__ import annotations

import pytest

from pipeline import phases as P
from pipeline.errors import LeaseHeld
from pipeline.runtime import build_runtime
from store import agent_runs, checkpoints
from store import investigations as invs
from store.config import Settings
from store.db import upgrade
from tests.pipeline.plans import ScriptedPlan, tool_error


@pytest.fixture(params=["sqlite", "pg"])
def make_runtime(request, tmp_path):
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    upgrade(url)
    made = []

    def make(plan, **kw):
        rt = build_runtime(Settings(DATABASE_URL=url, PM_HOME=str(tmp_path / "pm")), plan=plan,
                           tools_factory=lambda inv: None, **kw)
        made.append(rt)
        return rt

    yield make
    for rt in made:
        rt.close()


def _new(rt, **kw) -> str:
    with rt.session() as s:
        return invs.create(session=s, trigger={"ticket": "OPS-1"}, origin={"kind": "cli"}, **kw).id


def _attempts(rt, inv_id) -> dict[tuple[str, int], int]:
    with rt.session() as s:
        return {(c.phase, c.round): c.attempts for c in checkpoints.list_for(session=s, investigation_id=inv_id)}


def _kinds(rt, inv_id) -> list[str]:
    return [e["kind"] for e in rt.events(inv_id)]


@pytest.mark.integration
def test_full_run_with_hypothesis_loop(make_runtime):
    plan = ScriptedPlan(declines={1, 2})
    rt = make_runtime(plan)
    inv_id = _new(rt)
    assert rt.machine.advance(inv_id) == P.COMPLETE
    # rounds 1 and 2 declined: round 2 saw hypothesis 1 rejected, round 3 saw 1 and 2
    assert plan.seen_rejected[2] == [{"statement": "hypothesis 1"}]
    assert [h["statement"] for h in plan.seen_rejected[3]] == ["hypothesis 1", "hypothesis 2"]
    assert (P.HYPOTHESES, 4) not in plan.runs
    assert set(plan.runs.values()) == {1}
    inv = rt.wait(inv_id, 1)
    assert (inv["status"], inv["verdict"], inv["confidence"]) == ("COMPLETE", "CONFIRMED", 80)
    assert inv["root_cause"] == {"service": "payments"} and inv["finished_at"]
    kinds = _kinds(rt, inv_id)
    assert kinds[0] == "created" and kinds[-1] == "report"
    assert kinds.count("phase_started") == kinds.count("phase_finished") == 5 + 6 + 2
    assert kinds.count("milestone") == 3
    assert rt.artifacts.get_json(f"investigations/{inv_id}/report.json")["verdict"] == "CONFIRMED"
    with rt.session() as s:
        runs = agent_runs.list_for(session=s, investigation_id=inv_id)
        assert {(r.agent, r.model, r.cost_usd) for r in runs} == {("evidence-engine", "deterministic", 0.0)}
    assert rt.machine.advance(inv_id) == P.COMPLETE  # a late duplicate message is a no-op
    assert set(plan.runs.values()) == {1}


@pytest.mark.integration
def test_redelivery_resumes_at_first_unfinished_phase_and_big_outputs_survive(make_runtime):
    plan = ScriptedPlan(fail={P.CHANGES: [tool_error()]}, big=P.EVIDENCE)
    rt = make_runtime(plan)
    inv_id = _new(rt)
    with pytest.raises(Exception, match="timed out"):
        rt.machine.advance(inv_id, final_attempt=False)  # the broker would retry this message
    with rt.session() as s:
        inv = invs.get(session=s, investigation_id=inv_id)
        assert (inv.status, inv.phase, inv.lease_owner) == ("RUNNING", P.CHANGES, None)
        cp = checkpoints.get(session=s, investigation_id=inv_id, phase=P.EVIDENCE)
        assert cp.output is None and cp.output_ref == f"investigations/{inv_id}/evidence-r0.json"
    assert rt.machine.advance(inv_id) == P.COMPLETE
    attempts = _attempts(rt, inv_id)
    assert attempts.pop((P.CHANGES, 0)) == 2
    assert set(attempts.values()) == {1}
    assert plan.runs[(P.EVIDENCE, 0)] == 1 and plan.runs[(P.CHANGES, 0)] == 2


@pytest.mark.integration
def test_tool_error_on_last_attempt_fails_with_the_message(make_runtime):
    rt = make_runtime(ScriptedPlan(fail={P.EVIDENCE: [tool_error("observability unreachable; start it")]}))
    inv_id = _new(rt)
    assert rt.machine.advance(inv_id, final_attempt=True) == P.FAILED
    inv = rt.wait(inv_id, 1)
    assert inv["error"] == "EVIDENCE failed: observability unreachable; start it"
    assert _kinds(rt, inv_id)[-1] == "failed"
    with rt.session() as s:
        assert checkpoints.get(session=s, investigation_id=inv_id, phase=P.EVIDENCE).status == "failed"


@pytest.mark.integration
def test_a_bug_fails_at_once_without_retry(make_runtime):
    rt = make_runtime(ScriptedPlan(fail={P.CORRELATION: [KeyError("ctx")]}))
    inv_id = _new(rt)
    assert rt.machine.advance(inv_id, final_attempt=False) == P.FAILED
    assert "CORRELATION failed" in rt.wait(inv_id, 1)["error"]


@pytest.mark.integration
def test_cancel_is_honoured_between_phases(make_runtime):
    holder = {}

    def cancel_now(state):
        with holder["rt"].session() as s:
            invs.request_cancel(session=s, investigation_id=state.investigation["id"])

    plan = ScriptedPlan(hook={P.EVIDENCE: cancel_now})
    rt = holder["rt"] = make_runtime(plan)
    inv_id = _new(rt)
    assert rt.machine.advance(inv_id) == P.CANCELLED
    assert (P.CHANGES, 0) not in plan.runs
    assert rt.wait(inv_id, 1)["status"] == "CANCELLED"
    assert _kinds(rt, inv_id)[-1] == "cancelled"


@pytest.mark.integration
def test_reaching_the_budget_stops_and_publishes_a_partial_report(make_runtime):
    plan = ScriptedPlan(cost={P.EVIDENCE: 0.75, P.CHANGES: 0.5})
    rt = make_runtime(plan)
    inv_id = _new(rt, budget_usd=1.0)
    assert rt.machine.advance(inv_id) == P.COMPLETE
    inv = rt.wait(inv_id, 1)
    report = inv["report"]
    assert report["partial"] is True and report["verdict"] == "INCONCLUSIVE"
    assert report["partial_reason"].startswith("budget reached: spent $1.2500 of the investigation's $1.00")
    assert report["phases_done"] == [P.INITIALIZING, P.CONTEXT_GATHERING, P.EVIDENCE, P.CHANGES]
    assert (inv["tokens_in"], inv["tokens_out"]) == (20, 10)
    assert (P.CORRELATION, 0) not in plan.runs
    assert _kinds(rt, inv_id)[-1] == "report"


@pytest.mark.integration
def test_a_second_worker_cannot_run_a_leased_investigation(make_runtime):
    rt = make_runtime(ScriptedPlan())
    inv_id = _new(rt)
    with rt.session() as s:
        assert invs.acquire_lease(session=s, investigation_id=inv_id, owner="someone-else", ttl_s=30)
    with pytest.raises(LeaseHeld) as info:
        rt.machine.advance(inv_id)
    assert 1.0 <= info.value.retry_after_s <= 30
