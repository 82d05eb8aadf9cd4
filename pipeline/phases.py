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


def steps(verdicts: list[str]) -> list[tuple[str, int]]:
    """The (phase, round) steps implied by the verification outcomes seen so far.

    Args:
        verdicts: the outcome of each finished VERIFICATION round, in order.

    Returns:
        The steps up to the next undecided one (callers run them in order).
    """
    out = [(p, 0) for p in LEAD_PHASES]
    for rnd in range(1, MAX_ROUNDS + 1):
        out += [(HYPOTHESES, rnd), (VERIFICATION, rnd)]
        if rnd > len(verdicts) or verdicts[rnd - 1] != DECLINED:
            break
    return out + [(p, 0) for p in TAIL_PHASES]
