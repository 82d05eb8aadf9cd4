"""Report order and chart (issue #12 item 8): shown confidences never rise down the ranking (a lower one
that reads higher on its own says why), and the chart marks the culprit change and the onset."""

from __future__ import annotations

import pytest

from agents import engine
from agents.evidence.report import _consistent_order
from sandbox.tools import WorldTools
from tests.paths import ROOT

DEMOS = ROOT / "examples" / "worlds"


def test_confidences_fall_with_rank_and_a_capped_one_says_why():
    public = [{"rank": 1, "confidence": 90}, {"rank": 2, "confidence": 85}, {"rank": 3, "confidence": 96},
              {"rank": 4, "confidence": 20}]
    _consistent_order(public, 88)
    assert [h["confidence"] for h in public] == [88, 85, 85, 20]
    assert public[0]["confidence_alone"] == 90 and "rank_note" not in public[0]
    assert public[2]["confidence_alone"] == 96 and "96%" in public[2]["rank_note"]
    assert "rank_note" not in public[1] and "rank_note" not in public[3]


@pytest.mark.parametrize("world", ["demo-deploy", "demo-flag-rollout", "demo-config", "demo-capacity",
                                   "demo-dependency"])
def test_every_report_is_in_one_order_and_its_chart_marks_culprit_and_onset(world):
    report = engine.run_all(WorldTools(DEMOS / world), None, None)
    assert report["missing_sources"] == []  # every capability the engine asks (incl. windowed metrics.list) answers
    shown = [h["confidence"] for h in report["hypotheses"]]
    assert shown == sorted(shown, reverse=True) and shown[0] == report["confidence"]
    markers = report["chart"]["markers"]
    onsets = [m for m in markers if m.get("kind") == "onset"]
    assert len(onsets) == 1 and onsets[0]["ts"] == report["onset"]
    culprits = [m for m in markers if m.get("culprit")]
    if report["root_cause"]["change_id"]:
        assert [m["ref"] for m in culprits] == [report["root_cause"]["change_id"]]
    else:
        assert culprits == []
