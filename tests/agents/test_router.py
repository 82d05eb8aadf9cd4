"""agents.router: tiers by role and mode, escalation, step-down, mode limits, and the reasons."""

from __future__ import annotations

import pytest

from agents.pricing import Usage
from agents.router import DEFAULT_MODELS, Router, RouterConfig, config_from


def test_base_tiers_follow_role_and_mode():
    r = Router()
    assert r.choose("bug-context").tier == "fast"
    c = r.choose("hypotheses")
    assert (c.tier, c.model) == ("balanced", DEFAULT_MODELS["balanced"])
    assert r.choose("verifier", mode="deep").tier == "deep"
    assert r.choose("verifier", mode="fast").tier == "fast"
    assert "starts on the balanced tier" in c.reason and not c.escalated and not c.stepped_down


def test_low_verifier_confidence_escalates_one_tier_and_says_why():
    r = Router(RouterConfig(escalate_below=60))
    c = r.choose("hypotheses", confidence=45)
    assert (c.tier, c.escalated) == ("deep", True)
    assert "escalated to deep: verifier confidence 45 < 60" in c.reason
    assert r.choose("bug-context", confidence=45).tier == "balanced"  # one tier, from its own base
    assert r.choose("hypotheses", confidence=60).tier == "balanced"  # at the threshold: no escalation


def test_fast_mode_never_leaves_the_fast_tier():
    r = Router()
    c = r.choose("verifier", mode="fast", confidence=5)
    assert c.tier == "fast" and not c.escalated
    assert "fast mode allows nothing above the fast tier" in c.reason
    assert r.tiers_for("fast") == ("fast",) and r.tiers_for("balanced") == ("fast", "balanced", "deep")
    with pytest.raises(ValueError, match="mode 'turbo' is unknown"):
        r.choose("verifier", mode="turbo")


def test_a_tight_budget_steps_down_and_blocks_escalation():
    r = Router(RouterConfig(tight_below=0.2))
    c = r.choose("hypotheses", budget_left=0.1)
    assert (c.tier, c.stepped_down) == ("fast", True) and "budget tight (10% left < 20%)" in c.reason
    c = r.choose("hypotheses", budget_left=0.1, confidence=10)
    assert c.tier == "fast" and not c.escalated and "no escalation" in c.reason
    c = r.choose("verifier", mode="deep", budget_left=0.05)
    assert c.tier == "balanced"
    assert r.choose("bug-context", budget_left=0.0).tier == "fast"
    assert r.choose("hypotheses", budget_left=0.5).tier == "balanced"


def test_a_call_that_does_not_fit_steps_down_until_it_does_or_says_stop():
    r = Router()
    big = Usage(input=100_000, output=4_000)  # sonnet ~$0.36, haiku ~$0.12
    c = r.choose("hypotheses", remaining_usd=0.2, expected=big)
    assert (c.tier, c.affordable, c.stepped_down) == ("fast", True, True)
    c = r.choose("hypotheses", remaining_usd=0.01, expected=big)
    assert c.tier == "fast" and not c.affordable and "stop and publish" in c.reason


def test_every_choice_reaches_the_audit_trail():
    seen = []
    r = Router(config_from({"fast": "small-model", "balanced": None}, escalate_below=70), audit=seen.append)
    r.choose("compaction")
    r.choose("verifier", confidence=50, budget_left=0.9)
    assert [(c.agent, c.tier, c.model) for c in seen] == [
        ("compaction", "fast", "small-model"), ("verifier", "deep", DEFAULT_MODELS["deep"])]
    assert seen[1].to_dict()["reason"].startswith("verifier in balanced mode starts on the balanced tier")


def test_bad_config_is_named():
    with pytest.raises(ValueError, match="PM_ROUTER_ESCALATE_BELOW"):
        RouterConfig(escalate_below=150)
    with pytest.raises(ValueError, match="PM_MODEL_DEEP"):
        RouterConfig(models={"fast": "a", "balanced": "b", "deep": ""})
