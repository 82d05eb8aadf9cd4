"""Scripted phase plans for exercising the state machine without the evidence engine.

The plan is the machine's documented injection point (pipeline.plan); these plans count how
often each phase really ran, so tests can assert "never redone".
"""

from __future__ import annotations

import collections
import threading
from typing import Any

from agents.errors import ToolError
from pipeline import phases as P


class ScriptedPlan(dict):
    """A plan whose phases return small dicts and count their executions.

    Args:
        declines: rounds in which VERIFICATION says DECLINED.
        fail: phase → list of exceptions raised on successive executions (then it succeeds).
        cost: phase → USD recorded as usage by that phase.
        big: phase whose output is made larger than the inline checkpoint limit.
        hook: phase → callable(state) run before the phase returns.
    """

    def __init__(self, *, declines=(), fail=None, cost=None, big=None, hook=None) -> None:
        super().__init__()
        self.runs: collections.Counter[tuple[str, int]] = collections.Counter()
        self.seen_rejected: dict[int, list] = {}
        self._lock = threading.Lock()
        self._fail = {k: list(v) for k, v in (fail or {}).items()}
        for phase in P.PLANNED_PHASES:
            self[phase] = self._make(phase, set(declines), cost or {}, big, hook or {})

    def _make(self, phase: str, declines: set[int], cost: dict, big: str | None, hook: dict):
        def fn(state) -> dict[str, Any]:
            with self._lock:
                self.runs[(phase, state.round)] += 1
                pending = self._fail.get(phase)
                exc = pending.pop(0) if pending else None
            if exc is not None:
                raise exc
            if phase in cost:
                state.record_usage(tokens_in=10, tokens_out=5, cost_usd=cost[phase], model="test-model")
            if phase in hook:
                hook[phase](state)
            out: dict[str, Any] = {"phase": phase, "round": state.round}
            if phase == P.HYPOTHESES:
                self.seen_rejected[state.round] = list(state.rejected)
                out["statement"] = f"hypothesis {state.round}"
            if phase == P.VERIFICATION:
                outcome = P.DECLINED if state.round in declines else "CONFIRMED"
                out = {"outcome": outcome, "hypothesis": {"statement": f"hypothesis {state.round}"}}
            if phase == P.REPORT:
                out = {"verdict": "CONFIRMED", "confidence": 80, "root_cause": {"service": "payments"},
                       "hypotheses": [state.outputs["hyp"]], "fix_plan": state.outputs["fix"]}
            if phase == big:
                out["blob"] = "x" * 50_000
            return out

        return fn


def tool_error(msg: str = "logs.search on observability timed out") -> ToolError:
    return ToolError(msg)
