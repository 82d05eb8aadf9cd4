"""The investigation's phases and the order they run in.

QUEUED → INITIALIZING → CONTEXT_GATHERING → EVIDENCE → CHANGES → CORRELATION →
HYPOTHESES ⇄ VERIFICATION (≤ 5 rounds) → FIX_PLAN → REPORT → PUBLISHING → COMPLETE,
or FAILED / CANCELLED. (Seed 000, "9-phase investigation state machine and hypothesis loop".)
"""

from __future__ import annotations

QUEUED = "QUEUED"
INITIALIZING = "INITIALIZING"
CONTEXT_GATHERING = "CONTEXT_GATHERING"
EVIDENCE = "EVIDENCE"
CHANGES = "CHANGES"
CORRELATION = "CORRELATION"
HYPOTHESES = "HYPOTHESES"
VERIFICATION = "VERIFICATION"
FIX_PLAN = "FIX_PLAN"
REPORT = "REPORT"
PUBLISHING = "PUBLISHING"
COMPLETE = "COMPLETE"
FAILED = "FAILED"
CANCELLED = "CANCELLED"

#: Phases before the hypothesis loop, run once each (checkpoint round 0).
LEAD_PHASES = (INITIALIZING, CONTEXT_GATHERING, EVIDENCE, CHANGES, CORRELATION)
#: The loop: a DECLINED verification sends its hypothesis back to HYPOTHESES as rejected.
LOOP_PHASES = (HYPOTHESES, VERIFICATION)
#: Phases after the loop, run once each (checkpoint round 0).
TAIL_PHASES = (FIX_PLAN, REPORT, PUBLISHING)
#: Every phase that a plan may provide a function for.
PLANNED_PHASES = (*LEAD_PHASES, *LOOP_PHASES, FIX_PLAN, REPORT)
#: Every phase in order, for progress displays.
ALL_PHASES = (QUEUED, *LEAD_PHASES, *LOOP_PHASES, *TAIL_PHASES, COMPLETE)
MAX_ROUNDS = 5
DECLINED = "DECLINED"

#: Short names of each phase's output, as the engine's functions name their inputs.
OUTPUT_NAMES = {
    INITIALIZING: "init",
    CONTEXT_GATHERING: "ctx",
    EVIDENCE: "sig",
    CHANGES: "chg",
    CORRELATION: "cor",
    HYPOTHESES: "hyp",
    VERIFICATION: "ver",
    FIX_PLAN: "fix",
    REPORT: "rep",
}

