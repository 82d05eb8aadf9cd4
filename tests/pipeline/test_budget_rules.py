"""pipeline.budgets' pure rules: settings parsing, threshold order, caps and the partial report."""

from __future__ import annotations

import pytest

from pipeline.budgets import BudgetPolicy, over_cap, parse_domain_budgets, partial_report


def test_domain_budgets_read_json_or_pairs_and_name_mistakes():
    assert parse_domain_budgets('{"payments": 100, "search": 0}') == {"payments": 100.0, "search": 0.0}
    assert parse_domain_budgets("payments=100, search=50.5") == {"payments": 100.0, "search": 50.5}
    assert parse_domain_budgets(None) == {} == parse_domain_budgets("  ")
    for bad in ("payments", "payments=lots", '{"payments": -1}', "{oops"):
        with pytest.raises(ValueError, match="PM_BUDGET_DOMAINS"):
            parse_domain_budgets(bad)


def test_policy_limits_caps_and_threshold_order():
    policy = BudgetPolicy(domain_limits={"payments": 50})
    assert policy.month_limit("domain", "payments") == 50 and policy.month_limit("domain", "search") == 500
    assert policy.month_limit("global", "*") == 10_000
    assert policy.cap(None) == 5.0 and policy.cap(2.0) == 2.0 and BudgetPolicy(investigation_usd=0).cap(None) is None
    with pytest.raises(ValueError, match="must rise"):
        BudgetPolicy(warn_at=0.95, p1_only_at=0.9)


def test_the_cap_is_reached_at_equality():
    assert over_cap(policy=BudgetPolicy(), cost_usd=4.99, budget_usd=None) is None
    assert over_cap(policy=BudgetPolicy(), cost_usd=5.0, budget_usd=None).startswith("budget reached: spent $5.0000")
    assert over_cap(policy=None, cost_usd=100.0, budget_usd=None) is None


def test_partial_report_keeps_what_was_found_and_never_concludes_unverified():
    engine_like = {"ctx": {"missing_sources": ["chat"]},
                   "hyp": {"hypotheses": [{"statement": "deploy v2 broke checkout", "service": "checkout"}]}}
    rep = partial_report(engine_like, reason="budget reached", phases_done=["EVIDENCE", "HYPOTHESES"])
    assert (rep["verdict"], rep["confidence"], rep["partial"]) == ("INCONCLUSIVE", None, True)
    assert rep["root_cause"]["summary"].startswith("Not verified (the budget ran out first): deploy v2")
    assert rep["missing_sources"] == ["chat"] and rep["phases_done"] == ["EVIDENCE", "HYPOTHESES"]
    empty = partial_report({}, reason="r", phases_done=[])
    assert empty["hypotheses"] == [] and "before any hypothesis" in empty["root_cause"]["summary"]
    finished = partial_report({"rep": {"verdict": "LIKELY", "confidence": 70}}, reason="r", phases_done=["REPORT"])
    assert (finished["verdict"], finished["confidence"], finished["partial"]) == ("LIKELY", 70, True)
