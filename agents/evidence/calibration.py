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

# Fitted by `bench/rca.py --count 60 --seed 101 --calibrate` (L2-penalised logistic regression on the
# top hypothesis' features vs. top-1 hit). That suite has no degraded worlds, so "degraded" keeps a
# hand-set prior: each missing source costs confidence.
COEFFICIENTS = {"bias": -0.361, "margin": 0.532, "origin_strength": 1.926, "origin_margin": 1.031,
                "has_change": -0.19, "change_score": 0.023, "named": 0.287, "explains": -0.077, "degraded": -1.5}


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
