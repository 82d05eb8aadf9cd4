"""The eval harness (evals/run.py): replayed turns, strict scoring, divergence, replayed tool outputs."""

from __future__ import annotations

import shutil

import yaml

from evals import run as harness

CASES = harness.CASES
MODELS = dict(harness.DEFAULT_MODELS)


def copy_case(tmp_path, name):
    dst = tmp_path / name
    shutil.copytree(CASES / name, dst)
    return dst


def test_a_recorded_case_replays_and_passes():
    row = harness.run_case(CASES / "deploy-pricing", live=False, record=False, models=MODELS)
    assert row["passed"], row["missing"]
    assert row["tokens_in"] > 0 and row["cost_usd"] > 0 and row["decision"] == "agree"


def test_scoring_is_strict_on_culprit_and_facts(tmp_path):
    case = copy_case(tmp_path, "deploy-pricing")
    spec = yaml.safe_load((case / "case.yaml").read_text())
    spec["facts"].append("the moon was full")
    spec["expect"]["change_id"] = "chg-0001"
    (case / "case.yaml").write_text(yaml.safe_dump(spec))
    row = harness.run_case(case, live=False, record=False, models=MODELS)
    assert not row["passed"]
    assert any(m.startswith("culprit") for m in row["missing"]) and "fact 'the moon was full'" in row["missing"]


def test_a_replay_that_diverges_fails_and_says_so(tmp_path):
    case = copy_case(tmp_path, "deploy-pricing")
    lines = (case / "turns.jsonl").read_text().splitlines()
    (case / "turns.jsonl").write_text(lines[0] + "\n")  # only the investigator's first turn is left
    row = harness.run_case(case, live=False, record=False, models=MODELS)
    assert not row["passed"] and any("replay diverged" in m for m in row["missing"])


def test_replayed_tool_outputs_answer_the_engine_without_a_world():
    spec = yaml.safe_load((CASES / "replay-pricing" / "case.yaml").read_text())
    tools = harness.case_tools(CASES / "replay-pricing", {"tools": spec["tools"]})
    report, _, _ = harness.run_engine(tools, None)
    assert (report["root_cause"]["service"], report["root_cause"]["change_id"]) == ("pricing", "chg-3835")
