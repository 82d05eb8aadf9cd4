"""Priors from memory: a past root cause that recurs raises the matching hypothesis (issue #17, item 3).

Applied after the evidence engine has ranked its hypotheses (the HYPOTHESES phase), on the past incidents
the knowledge base found for this one (``similar``: items of a report's ``similar_incidents``). A hypothesis
is *supported* by a past incident when both blame the same service and the same kind of change (or both
blame no change); a past incident whose root cause was disputed (its latest vote a 👎) supports nothing.

The lift is bounded so that memory can only break near-ties, never overrule the evidence:

* the weight is at most :data:`PRIOR_WEIGHT` engine-score units (the best supporting incident's score
  times :data:`PRIOR_WEIGHT`);
* only a hypothesis within :data:`PRIOR_MARGIN` of the top score is raised (a clearly wrong candidate
  stays where its evidence put it);
* only a hypothesis with evidence of its own is raised (memory alone is never a reason).

Weight and margin (0.10) were chosen with ``bench/knowledge_priors.py`` on generated seed 202 and the odd
half of Nezha TrainTicket, among 0.05-0.30: the smallest weight that lets a true recurrence break a tie
(it rises where the engine is unsure, e.g. with the metrics source down) and that lets a wrong memory (a
decoy) flip fewest right answers; checked on seed 303 and the even half (docs/knowledge.md has the table).
A lift that small only reorders near-ties: a right top answer ahead by more than 0.10 stays the answer
whatever memory says. Confidence stays the engine's calibrated one (the calibration was fitted without
priors); the prior's weight is reported next to it in ``features.prior`` and the past incident is cited.
"""

from __future__ import annotations

import copy
from typing import Any

#: Largest lift a prior gives, in the engine's score units.
PRIOR_WEIGHT = 0.10
#: A hypothesis further than this below the top score is not raised at all.
PRIOR_MARGIN = 0.10
#: Past incidents below this similarity score are not used (the "seen before" display threshold).
MIN_SIMILARITY = 0.80
#: Change kinds of the world format (spec/world-format.md); other categories mean "no change blamed".
CHANGE_KINDS = {"deploy", "feature_flag", "config", "db_migration", "infra"}
_ALIASES = {"flag": "feature_flag", "migration": "db_migration"}


def _kind(value: Any) -> str | None:
    text = str(value) if value else None
    return _ALIASES.get(text, text) if text else None


def _past_change_kind(root_cause: dict[str, Any]) -> str | None:
    """The kind of change a past root cause blamed, or None when it blamed no change."""
    if "change_id" in root_cause and not root_cause.get("change_id"):
        return None
    kind = _kind(root_cause.get("change_kind") or root_cause.get("category"))
    return kind if kind in CHANGE_KINDS else None


def same_cause(hypothesis: dict[str, Any], root_cause: dict[str, Any]) -> bool:
    """Whether a hypothesis blames what a past root cause blamed: the service and the change kind."""
    if not root_cause.get("service") or hypothesis.get("service") != root_cause.get("service"):
        return False
    mine = _kind(hypothesis.get("category")) if hypothesis.get("change_id") else None
    return mine == _past_change_kind(root_cause)


def apply(hyp: dict[str, Any], similar: list[dict[str, Any]] | None, *, weight: float = PRIOR_WEIGHT,
          margin: float = PRIOR_MARGIN, min_similarity: float = MIN_SIMILARITY) -> dict[str, Any]:
    """Raise the hypotheses that past incidents support, within the bounds above; re-rank.

    Params: hyp — the HYPOTHESES phase output ``{hypotheses, rejected}`` (not changed; a copy is returned);
    similar — ``similar_incidents`` items ``{investigation_id, score, summary, root_cause, feedback}``.
    Returns: the output with hypotheses re-ranked, each raised one carrying ``prior`` ``{weight, incidents}``,
    ``features.prior`` and a ``knowledge`` evidence item, and a ``priors`` section: ``{weight_max, margin,
    applied: [...], not_applied: [{service, change_id, reason, incidents}]}``.
    """
    out = copy.deepcopy(hyp)
    ranked: list[dict[str, Any]] = out.get("hypotheses") or []
    section: dict[str, Any] = {"weight_max": weight, "margin": margin, "applied": [], "not_applied": []}
    out["priors"] = section
    usable = [s for s in similar or [] if float(s.get("score") or 0.0) >= min_similarity
              and isinstance(s.get("root_cause"), dict)]
    if not ranked or not usable:
        return out
    top = max(float(h.get("score") or 0.0) for h in ranked)
    for h in ranked:
        matching = [s for s in usable if same_cause(h, s["root_cause"])]
        if not matching:
            continue
        key = {"service": h.get("service"), "change_id": h.get("change_id")}
        disputed = [s for s in matching if (s.get("feedback") or {}).get("disputed")]
        support = [s for s in matching if s not in disputed]
        ids = [str(s.get("investigation_id")) for s in support]
        if disputed:
            section["not_applied"].append({**key, "reason": "disputed: its latest vote was a 👎",
                                           "incidents": [str(s.get("investigation_id")) for s in disputed]})
        if not support:
            continue
        own = [e for e in h.get("evidence") or [] if e.get("source") != "knowledge"]
        gap = top - float(h.get("score") or 0.0)
        if not own:
            section["not_applied"].append({**key, "reason": "no evidence of its own", "incidents": ids})
            continue
        if gap > margin:
            section["not_applied"].append({**key, "reason": f"{gap:.2f} below the top score, more than the "
                                           f"margin {margin:.2f}", "incidents": ids})
            continue
        best = max(support, key=lambda s: float(s.get("score") or 0.0))
        lift = round(weight * min(1.0, float(best.get("score") or 0.0)), 4)
        h["score"] = round(float(h.get("score") or 0.0) + lift, 4)
        h["prior"] = {"weight": lift, "incidents": ids}
        h.setdefault("features", {})["prior"] = lift
        rc = best["root_cause"]
        h.setdefault("evidence", []).append({
            "source": "knowledge", "ref": f"investigation:{best.get('investigation_id')}",
            "summary": (f"seen before ({len(support)}×): {str(best.get('summary') or '')[:160]} — root cause "
                        f"{rc.get('service')} {rc.get('change_kind') or rc.get('category') or ''}".rstrip()
                        + f" (similarity {float(best.get('score') or 0.0):.2f}; prior +{lift:.2f})")})
        section["applied"].append({**key, "weight": lift, "incidents": ids})
    if section["applied"]:
        # stable: equal scores keep the engine's order
        ranked.sort(key=lambda h: -float(h.get("score") or 0.0))
        for position, h in enumerate(ranked):
            h["rank"] = position + 1
    return out
