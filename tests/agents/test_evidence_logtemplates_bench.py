"""The Loghub metric definitions of bench/logparse.py on hand-checked examples."""

import importlib.util
from pathlib import Path

_SPEC = importlib.util.spec_from_file_location(
    "bench_logparse", Path(__file__).resolve().parents[2] / "bench" / "logparse.py")
logparse = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(logparse)

CONTENTS = ["open a 1", "open a 2", "close b 3", "close b 4"]


def test_perfect_parse_scores_one():
    truth = ["open a <*>", "open a <*>", "close b <*>", "close b <*>"]
    assert logparse.evaluate(CONTENTS, truth) == {"GA": 1.0, "FGA": 1.0, "PA": 1.0, "FTA": 1.0}


def test_merged_truth_groups_cost_grouping_and_templates():
    # Truth splits the "open" lines in two groups; the parser keeps them together: only "close" is right.
    truth = ["open a 1", "open a <*>", "close b <*>", "close b <*>"]
    scores = logparse.evaluate(CONTENTS, truth)
    assert scores["GA"] == 0.5
    assert abs(scores["FGA"] - 0.4) < 1e-9  # precision 1/2, recall 1/3
    assert scores["PA"] == 0.75
    assert abs(scores["FTA"] - 0.4) < 1e-9


def test_normalise_collapses_parameter_runs():
    assert logparse.normalise("a <NUM> <IP> b <*><*> c") == "a <*> b <*> c"
