"""The engine folds the short-window contrast into service scores (agents/engine.py _blend_contrast)."""

from __future__ import annotations

from agents import engine


def test_report_time_change_leads_over_an_earlier_excursion() -> None:
    services = {
        # Strong excursion long ago (an earlier fault's leftover), nothing new around the report.
        "stale": {"score": 1.2, "onset": 100.0, "metrics": ["metrics:stale/error_rate"], "families": {"error": 1.0}},
        # Weaker by the whole-window test, but it changed right at the report.
        "fresh": {"score": 0.4, "onset": None, "metrics": [], "families": {}},
    }
    contrasts = {
        "stale": {"score": 0.0, "onset": None, "signals": {"error": {"z": 0.1, "before": 1.0, "after": 1.0,
                                                                     "strength": 0.0, "first_after": 900.0}}},
        "fresh": {"score": 0.8, "onset": 880.0, "signals": {
            "caller_latency": {"z": 12.0, "before": 20.0, "after": 300.0, "strength": 0.8, "first_after": 880.0}}},
    }
    engine._blend_contrast(services, contrasts)
    assert services["fresh"]["score"] > services["stale"]["score"]
    assert services["stale"]["score"] == round(engine.CONTRAST_STALE_SHARE * 1.2, 4)
    assert services["fresh"]["score"] == round(engine.CONTRAST_WEIGHT * 0.8 + engine.CONTRAST_OLD_SHARE * 0.4, 4)
    assert services["fresh"]["onset"] == 880.0
    # Latency seen by callers counts as the service's own latency family.
    assert services["fresh"]["families"]["latency"] == 0.8
    assert services["fresh"]["contrast"]["signals"]["caller_latency"]["z"] == 12.0


def test_service_without_judged_signals_is_left_alone() -> None:
    services = {"cache": {"score": 0.7, "onset": 50.0, "metrics": [], "families": {"cpu": 0.7}}}
    engine._blend_contrast(services, {})
    assert services["cache"]["score"] == 0.7 and "contrast" not in services["cache"]
