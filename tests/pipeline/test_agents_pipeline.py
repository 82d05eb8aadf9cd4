"""The agents in the real pipeline: a full investigation whose hypotheses come from the scripted
model (stand-in Messages API, real `anthropic` client), through build_runtime, the in-process
sandbox MCP servers and the embedded database; and `pm investigate` as a newcomer runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from pipeline import phases as P
from pipeline.runtime import build_runtime
from store import agent_runs
from store import investigations as invs
from store.config import Settings
from store.db import upgrade
from tests.fakes import scripted_models as sm
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.openai_server import FakeOpenAI
from tests.paths import ROOT, WORLDS

WORLD = WORLDS / "example-2"


@pytest.fixture()
def claude():
    fake = FakeAnthropic().start()
    yield fake
    fake.stop()


def investigate(tmp_path, mode="balanced", cost=None, **env):
    settings = Settings(PM_HOME=str(tmp_path / "pm"), PM_WORLD=str(WORLD), **env)
    upgrade(settings.effective_database_url)
    rt = build_runtime(settings, cost=cost)
    try:
        with rt.session() as s:
            inv_id = invs.create(session=s, trigger={"ticket": "PAY-44706"}, origin={"kind": "cli"}, mode=mode).id
        assert rt.machine.advance(inv_id) == P.COMPLETE
        inv = rt.wait(inv_id, 5)
        with rt.session() as s:
            runs = [(r.agent, r.phase, r.model, r.status, r.tokens_in, r.tokens_out, r.cost_usd, len(r.tool_calls))
                    for r in agent_runs.list_for(session=s, investigation_id=inv_id)]
        return inv, runs
    finally:
        rt.close()


def test_a_full_investigation_runs_the_agents_and_records_their_cost(claude, tmp_path):
    claude.responder = sm.typical()
    inv, runs = investigate(tmp_path, ANTHROPIC_API_KEY=claude.api_key, ANTHROPIC_BASE_URL=claude.url)
    report = inv["report"]
    agents = report["agents"]
    assert agents["decision"]["case"] == "agree" and report["root_cause"]["service"] == "pricing"
    # the hypotheses and the explanation come from the scripted model, grounded in the pack and its tool results
    (h,) = agents["hypotheses"]
    assert h["statement"] == "chg-3835 broke pricing" and "T1" in h["cites"]
    assert report["root_cause"]["explanation"].startswith("pricing started failing right after chg-3835")
    llm_runs = [r for r in runs if r[0] in ("investigator", "verifier")]
    assert [(r[0], r[1], r[2], r[3]) for r in llm_runs] == [
        ("investigator", P.REPORT, "claude-sonnet-4-6", "done"), ("verifier", P.REPORT, "claude-sonnet-4-6", "done")]
    # each call charged through the budget hooks onto the agent's run (docs/budgets.md); the tool calls are
    # in the report's agents.runs
    assert llm_runs[0][4] > 0 and llm_runs[0][6] > 0 and agents["runs"][0]["tool_calls"] == 2
    assert inv["cost_usd"] == pytest.approx(sum(r[6] for r in runs)) and inv["cost_usd"] > 0
    assert inv["tokens_in"] == sum(r[4] for r in runs)
    assert {r["body"]["model"] for r in claude.requests} == {"claude-sonnet-4-6"}


def test_fast_mode_uses_only_the_fast_tier(claude, tmp_path):
    claude.responder = sm.typical()
    inv, runs = investigate(tmp_path, mode="fast", ANTHROPIC_API_KEY=claude.api_key, ANTHROPIC_BASE_URL=claude.url,
                            PM_MODEL_FAST="claude-haiku-4-5")
    assert [r[0] for r in runs if r[2] != "deterministic"] == ["summary"]
    assert {r["body"]["model"] for r in claude.requests} == {"claude-haiku-4-5"}
    assert inv["report"]["agents"]["decision"]["case"] == "explained"


def test_a_hostile_model_in_the_pipeline_leaves_the_engine_answer(claude, tmp_path):
    plain, _ = investigate(tmp_path / "plain")
    claude.responder = sm.wrong_culprit()
    inv, _ = investigate(tmp_path / "llm", ANTHROPIC_API_KEY=claude.api_key, ANTHROPIC_BASE_URL=claude.url)
    for key in ("verdict", "confidence", "root_cause", "hypotheses"):
        want = plain["report"][key]
        assert inv["report"][key] == want, key
    assert inv["report"]["agents"]["decision"]["case"] == "disagree"


def test_overload_falls_back_to_the_openai_compatible_provider(claude, tmp_path):
    claude.fail(529, retry_after=0, count=50)
    gpt = FakeOpenAI().start()
    try:
        def respond(body):
            # the same scripted behaviour, spoken in chat-completions (the adapter translates back)
            from tests.fakes.openai_server import call
            sys_text = body["messages"][0]["content"]
            conv = {"system": sys_text, "messages": [{"role": "user", "content": body["messages"][1]["content"]}]}
            if "Your role: the investigator" in sys_text and not any(m["role"] == "tool" for m in body["messages"]) \
                    and body.get("tool_choice") in (None, "auto"):
                return {"tool_calls": [call("changes_list", {"service": "pricing"})]}
            out = sm.typical()({**conv, "tool_choice": {"type": "tool"}})["content"][0]
            return {"tool_calls": [call(out["name"], out["input"])]}

        gpt.responder = respond
        inv, runs = investigate(tmp_path, ANTHROPIC_API_KEY=claude.api_key, ANTHROPIC_BASE_URL=claude.url,
                                OPENAI_API_KEY=gpt.api_key, OPENAI_BASE_URL=gpt.base_url)
    finally:
        gpt.stop()
    agents = inv["report"]["agents"]
    assert agents["status"] == "done" and agents["decision"]["case"] == "agree"
    assert {r[2] for r in runs if r[0] in ("investigator", "verifier")} == {"gpt-4.1"}
    assert gpt.requests and len(claude.requests) == 3  # the first call's attempts, then it stuck to the fallback


def test_without_a_key_nothing_changes(tmp_path):
    inv, runs = investigate(tmp_path)
    assert "agents" not in inv["report"] and {r[0] for r in runs} == {"evidence-engine"}
    assert inv["cost_usd"] == 0


def test_pm_investigate_runs_the_agents(claude, tmp_path):
    claude.responder = sm.typical()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "RABBITMQ_URL", "MCP_CONFIG",
                                                              "PM_WORLD", "OPENAI_API_KEY")}
    env.update(PM_HOME=str(tmp_path), ANTHROPIC_API_KEY=claude.api_key, ANTHROPIC_BASE_URL=claude.url)
    proc = subprocess.run([sys.executable, "-m", "bot.cli", "investigate", "--world", str(WORLD), "--json"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["agents"]["decision"]["case"] == "agree" and report["agents"]["hypotheses"]
    assert claude.requests


def test_the_budget_cap_stops_the_agents_and_keeps_the_engine_report_marked_partial(claude, tmp_path):
    from store.config import CostSettings

    claude.responder = sm.typical()
    # the investigator's first call costs ~$0.02 (Sonnet): a $0.01 cap stops it before its second call
    inv, runs = investigate(tmp_path, cost=CostSettings(PM_BUDGET_INVESTIGATION_USD=0.01),
                            ANTHROPIC_API_KEY=claude.api_key, ANTHROPIC_BASE_URL=claude.url)
    report = inv["report"]
    assert report["partial"] is True and "budget" in report["partial_reason"]
    assert (report["root_cause"]["service"], report["root_cause"]["change_id"]) == ("pricing", "chg-3835")
    assert report["verdict"] == "CONFIRMED" and report["agents"]["status"] == "stopped"
    assert len([r for r in claude.requests]) == 1  # no model call after the cap
    assert [r[0] for r in runs if r[0] == "investigator"] == ["investigator"]
