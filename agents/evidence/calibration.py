"""Confidence calibration: map ranking features to a probability of being right (0..100).

A logistic model (Platt scaling; Platt, "Probabilistic Outputs for Support
Vector Machines", 1999) over a few features of the ranked list. The
coefficients were fitted by ``bench/rca.py --calibrate`` on one generated
suite seed and are reported (AUROC) on another seed.
"""

from __future__ import annotations

import math

FEATURES = ("margin", "origin_strength", "origin_margin", "has_change", "change_score", "named", "explains",
            "degraded")

# Fitted by bench/rca.py --calibrate (seed 101); see bench/README.md.
COEFFICIENTS = {"bias": -1.0, "margin": 3.0, "origin_strength": 1.5, "origin_margin": 1.5, "has_change": 0.3,
                "change_score": 2.0, "named": 0.5, "explains": 1.0, "degraded": -1.5}


def confidence(features: dict[str, float]) -> int:
    """Probability (0..100) that a hypothesis with these features is the right one.

    Params: features — values for FEATURES (missing ones count 0).
    Returns: an integer 1..99 (never certain either way).
    """
    z = COEFFICIENTS["bias"] + sum(COEFFICIENTS.get(k, 0.0) * float(features.get(k, 0.0)) for k in FEATURES)
    p = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))
    return max(1, min(99, int(round(100 * p))))


def verdict(conf: int, *, verified: bool | None) -> str:
    """CONFIRMED (≥ 75 and the predictions held), LIKELY (≥ 45), else INCONCLUSIVE."""
    if conf >= 75 and verified:
        return "CONFIRMED"
    if conf >= 45:
        return "LIKELY"
    return "INCONCLUSIVE"
