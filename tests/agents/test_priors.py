"""Priors from memory (agents/priors.py): a recurring past root cause breaks a near-tie, cited as evidence;
a disputed one, a clearly wrong candidate or one with no evidence of its own is never raised."""

from __future__ import annotations

import copy

from agents import priors


def _hyp(service, change_id, category, score, evidence=1):
    return {"rank": 0, "service": service, "change_id": change_id, "category": category, "score": score,
            "confidence": 50, "features": {"margin": 0.1},
            "evidence": [{"source": "logs", "ref": f"logs:{service}", "summary": "new errors"}] * evidence,
            "counter_evidence": []}


def _ranked(*hyps):
    out = list(hyps)
    for i, h in enumerate(out):
        h["rank"] = i + 1
    return {"hypotheses": out, "rejected": []}


def _past(inv, service, kind, *, change_id="chg-old", score=0.9, disputed=False):
    return {"investigation_id": inv, "score": score, "summary": f"{kind} on {service}",
            "root_cause": {"service": service, "category": kind, "change_kind": kind, "change_id": change_id},
            "fix": "roll back", "feedback": {"up": 0, "down": int(disputed), "comments": [], "disputed": disputed}}


NEAR_TIE = _ranked(_hyp("checkout", "chg-1", "deploy", 5.0), _hyp("payments", "chg-2", "config", 4.95),
                   _hyp("payments", None, "dependency", 4.5))


def test_a_recurring_root_cause_breaks_a_near_tie_and_is_cited():
    before = copy.deepcopy(NEAR_TIE)
    out = priors.apply(NEAR_TIE, [_past("inv-old", "payments", "config", score=0.93)])
    assert NEAR_TIE == before  # the engine's output is not changed in place
    top, second, third = out["hypotheses"]
    assert (top["service"], top["change_id"], top["rank"]) == ("payments", "chg-2", 1)
    assert (second["service"], second["rank"]) == ("checkout", 2) and third["rank"] == 3
    assert top["prior"] == {"weight": round(priors.PRIOR_WEIGHT * 0.93, 4), "incidents": ["inv-old"]}
    assert top["features"]["prior"] == top["prior"]["weight"]
    cited = [e for e in top["evidence"] if e["source"] == "knowledge"]
    assert cited and cited[0]["ref"] == "investigation:inv-old" and f"prior +{priors.PRIOR_WEIGHT * 0.93:.2f}" in cited[0]["summary"]
    assert out["priors"]["applied"] == [{"service": "payments", "change_id": "chg-2", "weight": top["prior"]["weight"],
                                         "incidents": ["inv-old"]}]
    # the "no change" hypothesis on payments is another cause: a past config change does not support it
    assert "prior" not in third


def test_a_disputed_past_root_cause_raises_nothing():
    out = priors.apply(NEAR_TIE, [_past("inv-old", "payments", "config", disputed=True)])
    assert [h["service"] for h in out["hypotheses"]] == ["checkout", "payments", "payments"]
    assert all("prior" not in h for h in out["hypotheses"])
    assert out["priors"]["not_applied"][0]["reason"].startswith("disputed")


def test_a_clearly_wrong_candidate_is_never_made_the_answer():
    ranked = _ranked(_hyp("checkout", "chg-1", "deploy", 6.0), _hyp("payments", "chg-2", "config", 4.0))
    # however many and however similar the past incidents that blame it
    memory = [_past(f"inv-{i}", "payments", "config", score=1.0) for i in range(8)]
    out = priors.apply(ranked, memory)
    assert [h["service"] for h in out["hypotheses"]] == ["checkout", "payments"]
    assert out["hypotheses"][1]["score"] == 4.0 and not out["priors"]["applied"]
    assert "more than the margin" in out["priors"]["not_applied"][0]["reason"]
    # just beyond the margin is beyond it too
    behind = _ranked(_hyp("checkout", "chg-1", "deploy", 5.0),
                     _hyp("payments", "chg-2", "config", 5.0 - priors.PRIOR_MARGIN - 0.01))
    assert priors.apply(behind, memory)["hypotheses"][0]["service"] == "checkout"


def test_memory_alone_is_no_reason_and_other_kinds_or_weak_matches_do_not_count():
    bare = _ranked(_hyp("checkout", "chg-1", "deploy", 5.0), _hyp("payments", "chg-2", "config", 4.97, evidence=0))
    out = priors.apply(bare, [_past("inv-old", "payments", "config")])
    assert out["hypotheses"][0]["service"] == "checkout"
    assert out["priors"]["not_applied"][0]["reason"] == "no evidence of its own"
    # a deploy on payments, or a match below the "seen before" threshold, is not this cause
    for past in (_past("inv-a", "payments", "deploy"), _past("inv-b", "payments", "config", score=0.6)):
        assert priors.apply(NEAR_TIE, [past])["hypotheses"][0]["service"] == "checkout"
    # a past incident that blamed no change supports the "no change" hypothesis of its service only
    nochange = _ranked(_hyp("checkout", "chg-1", "deploy", 5.0), _hyp("payments", None, "dependency", 4.95))
    out = priors.apply(nochange, [_past("inv-c", "payments", "code", change_id=None)])
    assert out["hypotheses"][0]["service"] == "payments" and out["hypotheses"][0]["prior"]["incidents"] == ["inv-c"]
    # aliases of the world format's kinds
    flag = _ranked(_hyp("checkout", "chg-1", "deploy", 5.0), _hyp("payments", "chg-9", "feature_flag", 4.95))
    assert priors.apply(flag, [_past("inv-d", "payments", "flag")])["hypotheses"][0]["service"] == "payments"


def test_without_memory_the_ranking_is_the_engines():
    for similar in (None, []):
        out = priors.apply(NEAR_TIE, similar)
        assert out["hypotheses"] == NEAR_TIE["hypotheses"]
        assert out["priors"] == {"weight_max": priors.PRIOR_WEIGHT, "margin": priors.PRIOR_MARGIN, "applied": [],
                                 "not_applied": []}
