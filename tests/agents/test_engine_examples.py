"""Engine tests on the shared example worlds through the reference WorldTools.

truth.yaml is read here, in the test only: the engine never sees it.
"""

import json

import pytest
import yaml

from agents import engine
from sandbox.tools import WorldTools
from tests.paths import SHARED

WORLDS = (SHARED / "worlds")


@pytest.mark.parametrize("name", ["example-1", "example-2"])
def test_top_hypothesis_is_the_truth(name):
    world = WORLDS / name
    truth = yaml.safe_load((world / "truth.yaml").read_text())["root_cause"]
    report = engine.run_all(WorldTools(world), None, None)
    top = report["hypotheses"][0]
    assert (top["service"], top["change_id"]) == (truth["service"], truth["change_id"])
    assert report["root_cause"]["category"] == truth["category"]
    assert report["verdict"] in ("CONFIRMED", "LIKELY")
    assert top["evidence"] and all(item["ref"] for item in top["evidence"])
    json.dumps(report)  # the report must be JSON-serialisable as a whole


def test_phases_are_json_roundtrippable_and_match_run_all():
    tools = WorldTools(WORLDS / "example-2")
    trigger = {"ticket": "PAY-44706"}
    ctx = json.loads(json.dumps(engine.gather_context(tools, trigger, None)))
    sig = json.loads(json.dumps(engine.analyse_signals(tools, ctx)))
    chg = json.loads(json.dumps(engine.gather_changes(tools, ctx)))
    cor = json.loads(json.dumps(engine.correlate(ctx, sig, chg)))
    hyp = json.loads(json.dumps(engine.hypothesise(ctx, sig, chg, cor, rejected=[])))
    ver = json.loads(json.dumps(engine.verify(tools, ctx, sig, chg, cor, hyp)))
    fix = engine.fix_plan(ctx, hyp, ver, chg)
    rep = engine.build_report(ctx, sig, chg, cor, hyp, ver, fix)
    assert rep["root_cause"]["change_id"] == "chg-3835"
    assert fix["steps"][0]["action"] == "rollback"
    assert rep["chart"]["series"] and rep["chart"]["markers"]
    assert any(item["kind"] == "change" for item in rep["timeline"])
    # A change after the onset is only counter-evidence: chg-5284 lands at 16:30.
    assert all(h["change_id"] != "chg-5284" for h in rep["hypotheses"])


def test_rejected_hypothesis_is_not_proposed_again():
    tools = WorldTools(WORLDS / "example-2")
    ctx = engine.gather_context(tools, None, None)
    sig = engine.analyse_signals(tools, ctx)
    chg = engine.gather_changes(tools, ctx)
    cor = engine.correlate(ctx, sig, chg)
    hyp = engine.hypothesise(ctx, sig, chg, cor, rejected=[{"service": "pricing", "change_id": "chg-3835"}])
    assert ("pricing", "chg-3835") not in {(h["service"], h["change_id"]) for h in hyp["hypotheses"]}


def test_template_state_persists_between_runs():
    class Store:
        data = None

        def load(self):
            return self.data

        def save(self, data):
            self.data = data

    store = Store()
    tools = WorldTools(WORLDS / "example-1")
    first = engine.run_all(tools, None, None, template_state=store)
    assert store.data
    second = engine.run_all(tools, None, None, template_state=store)
    refs = lambda rep: sorted(e["ref"] for h in rep["hypotheses"] for e in h["evidence"] if e["source"] == "logs")  # noqa: E731
    assert refs(first) == refs(second)
