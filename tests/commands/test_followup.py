"""Deterministic follow-up answers from an investigation's report and checkpoints."""

from __future__ import annotations

from commands.followup import answer

REPORT = {
    "verdict": "CONFIRMED", "confidence": 90, "onset": "2026-10-02T16:17:00Z",
    "root_cause": {"summary": "deploy chg-3835 broke pricing", "service": "pricing", "change_id": "chg-3835"},
    "hypotheses": [
        {"rank": 1, "statement": "deploy chg-3835 on pricing", "service": "pricing", "change_id": "chg-3835",
         "confidence": 90, "evidence": [{"source": "logs", "ref": "pricing/ERROR", "summary": "NullPointerException x420"}]},
        {"rank": 2, "statement": "deploy chg-4817 on shipping", "service": "shipping", "change_id": "chg-4817",
         "confidence": 20, "counter_evidence": [{"source": "metrics", "summary": "shipping error rate flat"}]},
    ],
    "fix_plan": {"steps": [{"action": "rollback", "target": "pricing", "description": "roll back 2.4.1"}]},
}
INV = {"id": "inv-1", "status": "COMPLETE", "phase": "COMPLETE", "round": 1, "report": REPORT}
CPS = [{"phase": "CHANGES", "output": {"changes": [
    {"id": "chg-3835", "ts": "2026-10-02T16:16:00Z", "kind": "deploy", "service": "pricing", "summary": "Deploy pricing 2.4.1"},
    {"id": "chg-2200", "ts": "2026-10-02T15:27:02Z", "kind": "config", "service": "media", "summary": "Tune log level"},
    {"id": "chg-9000", "ts": "2026-10-02T16:40:00Z", "kind": "deploy", "service": "checkout", "summary": "Deploy checkout"},
]}}]


def test_what_changed_in_a_service_lists_only_its_changes() -> None:
    text = answer("what changed in payments?", INV, CPS, [])
    assert "no change on payments" in text and "checkout, media, pricing" in text
    text = answer("What changed in pricing?", INV, CPS, [])
    assert "chg-3835" in text and "chg-2200" not in text


def test_show_the_errors_uses_log_evidence() -> None:
    assert "NullPointerException x420" in answer("show the errors", INV, CPS, [])


def test_why_not_uses_rank_counter_evidence_and_onset() -> None:
    shipping = answer("why not the shipping deploy?", INV, CPS, [])
    assert "#2" in shipping and "shipping error rate flat" in shipping
    checkout = answer("why not the checkout deploy?", INV, CPS, [])
    assert "chg-9000" in checkout and "after" in checkout
    assert "It *is*" in answer("why not pricing?", INV, CPS, [])


def test_root_cause_fix_and_fallback() -> None:
    assert "CONFIRMED" in answer("what's the root cause?", {**INV, "report": REPORT}, CPS, [])
    assert "roll back 2.4.1" in answer("what's the fix?", {**INV, "report": REPORT}, CPS, [])
    assert "Ask me e.g." in answer("hello there", {**INV, "report": REPORT}, CPS, [])

