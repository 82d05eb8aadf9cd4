"""Skipped log statements: a line that always followed another and stopped while the other goes on.

A code defect often shows in no metric: an exception thrown between two log
statements leaves the first one logged and the second one never reached
(Yu et al., Nezha, ESEC/FSE 2023, call this a code region no longer
executed). Counting a template alone cannot see it when the service is
quiet or its lines are sampled, but the pair can: before the incident the
follower appeared about as often as its leader; since shortly before the
trigger the leader keeps appearing and the follower does not. The binomial
tail P(follower ≤ seen | leader's recent count, earlier ratio) says how
unlikely that is by chance.
"""

from __future__ import annotations

import math
from typing import Any

# A follower must have appeared this often before to be missed, and its leader this often since.
MIN_EARLIER = 2
MIN_RECENT_LEADER = 3
# The follower logged at least this share of its leader's count before (and not much more).
MIN_RATIO = 0.5
MAX_RATIO = 1.25
# Never treat the pairing as certain: a sampled log can drop a follower by chance.
MAX_P_FOLLOW = 0.95
# Binomial tail below which the silence is not chance; strict because a service has many pairs.
MAX_TAIL = 0.005
# A leader whose pace rose more than this since the split is part of the change, not a steady predecessor.
MAX_LEADER_SPEEDUP = 3.0


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X ≤ k) for X ~ Binomial(n, p).

    Params: k — observed successes; n — trials; p — success probability (0..1).
    Returns: the lower tail probability.
    """
    if k >= n:
        return 1.0
    return min(1.0, sum(math.comb(n, i) * p ** i * (1.0 - p) ** (n - i) for i in range(k + 1)))


def find_skipped(entries: list[dict[str, Any]], *, earlier_span: float, recent_span: float) -> list[dict[str, Any]]:
    """Pairs (leader, follower) of one service whose follower fell silent while the leader went on.

    Params: entries — template_stats rows with ``service``, ``id``, ``template``, ``earlier`` and
    ``recent`` (counts before / since the recent split), ``level``; earlier_span / recent_span — seconds
    on each side of the split (to compare a leader's pace).
    Returns: one dict per silent follower (its best leader): ``{service, id, template, leader, leader_id,
    earlier, recent, leader_recent, tail}``, smallest tail first.
    """
    recent_scale = max(earlier_span, 60.0) / max(recent_span, 60.0)
    by_service: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        by_service.setdefault(entry["service"], []).append(entry)
    out = []
    for service, rows in by_service.items():
        followers = [r for r in rows if r.get("earlier", 0) >= MIN_EARLIER]
        leaders = [r for r in rows if r.get("recent", 0) >= MIN_RECENT_LEADER and r.get("earlier", 0) >= MIN_EARLIER]
        for follower in followers:
            best = None
            for leader in leaders:
                # A leader is an ordinary statement of the same level whose own pace held: an error
                # burst that replaced the follower is the fault, not the follower's predecessor.
                if leader is follower or leader.get("level") != follower.get("level"):
                    continue
                if leader["recent"] * recent_scale > MAX_LEADER_SPEEDUP * leader["earlier"]:
                    continue
                ratio = follower["earlier"] / leader["earlier"]
                if not MIN_RATIO <= ratio <= MAX_RATIO:
                    continue
                expected = min(MAX_P_FOLLOW, ratio)
                if follower["recent"] >= expected * leader["recent"]:
                    continue
                tail = binomial_cdf(follower["recent"], leader["recent"], expected)
                if tail <= MAX_TAIL and (best is None or tail < best["tail"]):
                    best = {"service": service, "id": follower["id"], "template": follower["template"],
                            "leader": leader["template"], "leader_id": leader["id"],
                            "earlier": follower["earlier"], "recent": follower["recent"],
                            "leader_recent": leader["recent"], "tail": tail}
            if best is not None:
                out.append(best)
    out.sort(key=lambda s: (s["tail"], s["service"], s["id"]))
    return out
