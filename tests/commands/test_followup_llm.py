"""Follow-up answers written by Claude, end to end: a real investigation on PostgreSQL, the real
`anthropic` client against the stand-in Messages API, the deterministic fallback when Claude fails.

The investigation runs the evidence engine on example-1 through ``sandbox.tools.WorldTools`` (the
reference implementation of the MCP tools), so the prompt carries real checkpoints.
"""

from __future__ import annotations

import logging

import pytest

from agents.followup import FollowupAnswerer
from agents.llm import AnthropicLLM
from commands import followup
from pipeline import phases as P
from pipeline.runtime import build_runtime
from sandbox.tools import WorldTools
from store import agent_runs, investigations, outbox
from store.config import Settings
from store.db import upgrade
from tests.fakes.anthropic_server import FakeAnthropic
from tests.paths import WORLDS

WORLD = WORLDS / "example-1"


@pytest.fixture()
def runtime(pg_url, tmp_path):
    upgrade(pg_url)
    rt = build_runtime(Settings(DATABASE_URL=pg_url, PM_HOME=str(tmp_path / "pm")),
                       tools_factory=lambda inv: WorldTools(WORLD))
    yield rt
    rt.close()


@pytest.fixture()
def claude():
    fake = FakeAnthropic().start()
    yield fake
    fake.stop()


def _investigated(rt, budget_usd: float | None = None) -> str:
    with rt.session() as s:
        inv_id = investigations.create(session=s, trigger={"alert": "pd-8240"}, origin={"kind": "cli"},
                                       budget_usd=budget_usd).id
    assert rt.machine.advance(inv_id) == P.COMPLETE
    return inv_id


def _answerer(fake: FakeAnthropic) -> FollowupAnswerer:
    return FollowupAnswerer(AnthropicLLM(api_key=fake.api_key, base_url=fake.url, model="claude-sonnet-4-6",
                                         attempts=2, sleep=lambda s: None))


def _last_followup(rt, inv_id: str) -> dict:
    with rt.session() as s:
        evs = [outbox.event_to_dict(e) for e in outbox.events(session=s, investigation_id=inv_id)]
    return [e for e in evs if e["kind"] == "milestone" and e["payload"].get("followup")][-1]["payload"]


@pytest.mark.integration
def test_claude_answers_and_tokens_and_cost_are_recorded(runtime, claude, caplog):
    inv_id = _investigated(runtime)
    claude.reply("The gateway errors (`Connection refused: mysql-legacy`) began at 12:08.",
                 input_tokens=2500, output_tokens=40)
    caplog.set_level(logging.DEBUG)
    text = followup.ask(runtime=runtime, investigation_id=inv_id, question="show the errors", user="U1",
                        message_ts="1.2", answerer=_answerer(claude))
    assert text.startswith("The gateway errors")
    payload = _last_followup(runtime, inv_id)
    assert payload["text"] == text and payload["answered_by"] == "claude" and payload["user"] == "U1"
    cost = 2500 * 3e-6 + 40 * 15e-6
    assert payload["cost_usd"] == pytest.approx(cost)
    with runtime.session() as s:
        (run,) = [r for r in agent_runs.list_for(session=s, investigation_id=inv_id) if r.agent == "followup"]
        assert (run.status, run.model, run.tokens_in, run.tokens_out) == ("done", "claude-sonnet-4-6", 2500, 40)
        assert run.cost_usd == pytest.approx(cost) and run.trace_ref.startswith("msg_")
        inv = investigations.get(session=s, investigation_id=inv_id)
        assert inv.tokens_in >= 2500 and inv.cost_usd == pytest.approx(cost)
    # The prompt carries this investigation's real evidence: its log templates and changes.
    user = claude.requests[0]["body"]["messages"][0]["content"]
    assert "mysql-legacy" in user and "chg-8646" in user and '<record source="logs"' in user
    assert claude.api_key not in caplog.text


@pytest.mark.integration
def test_api_errors_fall_back_to_the_deterministic_answer(runtime, claude):
    inv_id = _investigated(runtime)
    claude.fail(529, retry_after=0, count=2)
    text = followup.ask(runtime=runtime, investigation_id=inv_id, question="what changed in checkout?",
                        answerer=_answerer(claude))
    assert "chg-8646" in text and "Claude could not answer: Claude API error 529 (overloaded_error)" in text
    assert claude.api_key not in text
    payload = _last_followup(runtime, inv_id)
    assert payload["answered_by"] == "evidence" and "529" in payload["llm_error"]
    claude.fail(400, message="prompt is too long")
    assert "400 (invalid_request_error)" in followup.ask(runtime=runtime, investigation_id=inv_id,
                                                         question="status?", answerer=_answerer(claude))
    with runtime.session() as s:
        runs = [r for r in agent_runs.list_for(session=s, investigation_id=inv_id) if r.agent == "followup"]
        assert [r.status for r in runs] == ["failed", "failed"] and all(r.cost_usd == 0 for r in runs)
    assert len(claude.requests) == 3


@pytest.mark.integration
def test_spent_budget_skips_claude(runtime, claude):
    inv_id = _investigated(runtime, budget_usd=0.0001)
    text = followup.ask(runtime=runtime, investigation_id=inv_id, question="what's the root cause?",
                        answerer=_answerer(claude))
    assert "budget" in text and "Claude could not answer" in text and claude.requests == []


@pytest.mark.integration
def test_without_an_answerer_the_answer_is_deterministic(runtime, claude):
    inv_id = _investigated(runtime)
    text = followup.ask(runtime=runtime, investigation_id=inv_id, question="what changed in checkout?")
    assert "chg-8646" in text and "Claude" not in text and claude.requests == []
    assert _last_followup(runtime, inv_id)["answered_by"] == "evidence"
