"""The phase plan: which function runs each phase. The default is the evidence engine.

A plan maps a phase name to ``fn(state: PhaseState) -> dict``. Tests may pass their own plan
to exercise the machine in isolation; the product always runs :func:`engine_plan`.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline import phases as P
from pipeline.errors import TriggerNotFound
from store.knowledge import recall, remember

log = logging.getLogger(__name__)


@dataclass
class PhaseState:
    """What a phase function gets: the investigation, earlier outputs, the tools, the loop state.

    ``tools`` is opened on first use, so phases that need no tools (correlation, fix plan,
    report) never start MCP servers. A long phase may watch ``abandoned`` and give up early.
    """

    investigation: dict[str, Any]
    trigger: dict[str, Any]
    window: dict[str, Any] | None
    outputs: dict[str, Any]
    round: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    template_state: Any = None
    _tools_factory: Callable[[], Any] | None = None
    _tools: Any = None
    usage: dict[str, Any] = field(default_factory=lambda: {"tokens_in": 0, "tokens_out": 0, "cost_usd": 0.0})
    #: Set when the run lost its lease: the phase's result will be thrown away, so stop early.
    abandoned: threading.Event = field(default_factory=threading.Event)
    #: LLM agents that worked in this phase: the machine stores one AgentRun row each
    #: (``{agent, model, status, error, tokens_in, tokens_out, cost_usd, tool_calls}``).
    agent_runs: list[dict[str, Any]] = field(default_factory=list)
    #: The budget hooks of this phase (pipeline.budgets.PhaseBudget: before_call, charge, left,
    #: record_choice), or None when the runtime has no budgets. Set by the machine per phase.
    budget: Any = None

    @property
    def tools(self) -> Any:
        """The ToolSource (MCP gateway) for this investigation, opened lazily."""
        if self._tools is None:
            if self._tools_factory is None:
                raise RuntimeError("this phase plan has no tools; build the runtime with a tools factory")
            self._tools = self._tools_factory()
        return self._tools

    def record_usage(self, *, tokens_in: int = 0, tokens_out: int = 0, cost_usd: float = 0.0,
                     model: str | None = None) -> None:
        """Add an LLM call's usage to this phase (the deterministic engine records none)."""
        self.usage["tokens_in"] += tokens_in
        self.usage["tokens_out"] += tokens_out
        self.usage["cost_usd"] += cost_usd
        if model:
            self.usage["model"] = model


PhaseFn = Callable[[PhaseState], dict[str, Any]]
Plan = Mapping[str, PhaseFn]


def _initialize(state: PhaseState) -> dict[str, Any]:
    """Check every tool server answers (the gateway's ``check``) before spending effort."""
    tools = state.tools
    check = getattr(tools, "check", None)
    servers = check() if callable(check) else None
    return {"servers": servers if isinstance(servers, (dict, list)) else None}


def run_agents(team: Any, state: PhaseState, report: dict[str, Any]) -> dict[str, Any]:
    """The REPORT phase's agents: the team's report (engine report + ``agents`` section).

    The agents' runs go on ``state.agent_runs`` (one AgentRun row each). Any failure of the agents
    leaves the engine's report in place with a note: the agents never fail an investigation.
    """
    from pipeline.errors import BudgetExceeded

    o = state.outputs
    hooks: dict[str, Any] = {}
    budget = state.budget
    if budget is not None:
        hooks = _budget_hooks(budget, state.investigation.get("mode") or "balanced")
    try:
        result = team.run(mode=state.investigation.get("mode"), report=report, ctx=o.get("ctx"), chg=o.get("chg"),
                          tools=state.tools, **hooks)
    except BudgetExceeded as exc:
        # the investigation's cap: the machine publishes the partial report, which keeps the engine's
        # finished report (only the agents' part is missing) rather than falling back to bare hypotheses
        state.outputs["rep"] = {**report, "agents": {"status": "stopped", "decision": {
            "case": "budget", "verdict": report.get("verdict"), "engine_verdict": report.get("verdict"),
            "note": f"The agents stopped at the budget cap ({exc}); the evidence engine's answer stands."}}}
        raise
    except Exception as exc:  # noqa: BLE001 - the engine's answer must survive anything the agents do
        log.warning("the agents failed on %s: %s", state.investigation.get("id"), exc, exc_info=True)
        return {**report, "agents": {"status": "failed", "decision": {
            "case": "agents_failed", "verdict": report.get("verdict"), "engine_verdict": report.get("verdict"),
            "note": f"The agents failed ({type(exc).__name__}); the evidence engine's answer stands."}}}
    if budget is None:
        state.agent_runs.extend(result.runs)  # with budgets, charge() already recorded each call on its run
    return dict(result.report)


def _budget_hooks(budget: Any, mode: str) -> dict[str, Any]:
    """The team's hooks on ``state.budget`` (docs/budgets.md): the router picks each agent's tier (every
    choice audited), the cap is checked before every model call, every call is charged as it ends."""
    from agents.pricing import Usage

    router = budget.router()

    def choose_tier(agent: str, mode_: str, default: str, confidence: float | None = None) -> str:
        choice = router.choose(agent, mode=mode_ or mode, confidence=confidence, budget_left=budget.left())
        return str(choice.tier)

    def on_turn(agent: str, turn: dict[str, Any]) -> None:
        budget.charge(agent, str(turn["model"]), Usage(input=int(turn["input_tokens"]),
                                                      output=int(turn["output_tokens"]),
                                                      cache_read=int(turn["cache_read_tokens"]),
                                                      cache_write=int(turn["cache_write_tokens"])))

    return {"choose_tier": choose_tier, "before_call": lambda: budget.before_call(), "on_turn": on_turn}


def engine_plan(memory: Any = None, team: Any = None,
                notes: Callable[[str | None], str | None] | None = None) -> dict[str, PhaseFn]:
    """The product's plan: the phase functions of ``agents.engine`` (docs/contracts.md).

    Args:
        memory: a :class:`store.knowledge.Memory`: the HYPOTHESES phase then uses similar past incidents as
            priors, the REPORT phase adds them and records this one (see docs/knowledge.md); None leaves
            reports as the engine writes them.
        team: an :class:`agents.team.AgentTeam`: the REPORT phase then runs the investigation mode's
            agents on the engine's report (docs/llm.md); None (no model configured) changes nothing.
        notes: ``domain -> the domain's notes or None`` (``Runtime.domain_notes``): CONTEXT_GATHERING puts
            them in the context as ``domain_memory`` (for agents) and the report gets a ``context`` section.

    Raises:
        ImportError: the engine is not installed (the message says so).
    """
    from agents import engine

    def analyse(state: PhaseState) -> dict[str, Any]:
        o = state.outputs
        # the drain3 state is persisted per domain only if the engine takes it
        if state.template_state is not None and "template_state" in inspect.signature(
            engine.analyse_signals
        ).parameters:
            return engine.analyse_signals(state.tools, o["ctx"], template_state=state.template_state)
        return engine.analyse_signals(state.tools, o["ctx"])

    def context(state: PhaseState) -> dict[str, Any]:
        trigger = state.trigger
        defaults = getattr(state.tools, "window_defaults", None)
        if isinstance(defaults, dict) and state.window is None:
            trigger = {**defaults, **trigger}  # the trigger's own lookback/lookahead win
        ctx = engine.gather_context(state.tools, trigger, state.window)
        gone = ctx.get("trigger_not_found")
        if gone:  # the source answered "no such ticket/alert": say so instead of investigating nothing
            raise TriggerNotFound(gone["kind"], gone["key"], gone.get("source"))
        # A ticket source wrapped around the gateway (pipeline.tools.JiraTickets) notes its own failures.
        failed = getattr(state.tools, "missing_sources", None)
        if isinstance(failed, list) and failed:
            ctx["missing_sources"] = list(ctx.get("missing_sources") or []) + [
                n for n in failed if n not in (ctx.get("missing_sources") or [])]
        if notes is not None:
            text = notes(state.investigation.get("domain"))
            if text:
                ctx["domain_memory"] = text
        return ctx

    def report(state: PhaseState) -> dict[str, Any]:
        o = state.outputs
        rep = engine.build_report(o["ctx"], o["sig"], o["chg"], o["cor"], o["hyp"], o["ver"], o["fix"])
        return run_agents(team, state, rep) if team is not None else rep

    def remembered(s: PhaseState) -> dict[str, Any]:
        out = remember(memory, investigation_id=s.investigation["id"], domain=s.investigation.get("domain"),
                       ctx=s.outputs["ctx"], sig=s.outputs["sig"], chg=s.outputs.get("chg"),
                       priors=(s.outputs["hyp"] or {}).get("priors"), report=report(s))
        if notes is not None:
            out["context"] = {"domain": s.investigation.get("domain"),
                              "domain_memory": s.outputs["ctx"].get("domain_memory")}
        return out

    return {
        P.INITIALIZING: _initialize,
        P.CONTEXT_GATHERING: context,
        P.EVIDENCE: analyse,
        P.CHANGES: lambda s: engine.gather_changes(s.tools, s.outputs["ctx"]),
        P.CORRELATION: lambda s: engine.correlate(s.outputs["ctx"], s.outputs["sig"], s.outputs["chg"]),
        P.HYPOTHESES: lambda s: _with_priors(memory, s, engine.hypothesise(
            s.outputs["ctx"], s.outputs["sig"], s.outputs["chg"], s.outputs["cor"], rejected=list(s.rejected)
        )),
        P.VERIFICATION: lambda s: engine.verify(
            s.tools, s.outputs["ctx"], s.outputs["sig"], s.outputs["chg"], s.outputs["cor"], s.outputs["hyp"]
        ),
        # The change records name what to return to (version, flag, key); the signals give the baselines.
        P.FIX_PLAN: lambda s: engine.fix_plan(s.outputs["ctx"], s.outputs["hyp"], s.outputs["ver"],
                                              s.outputs.get("chg"), s.outputs.get("sig")),
        P.REPORT: remembered,
    }


def _with_priors(memory: Any, state: PhaseState, hyp: dict[str, Any]) -> dict[str, Any]:
    """The engine's ranked hypotheses after the priors from similar past incidents (``agents.priors``).

    Without a knowledge base the hypotheses are returned as the engine ranked them.
    """
    if memory is None:
        return hyp
    from agents import priors

    similar, note = recall(memory, investigation_id=state.investigation["id"],
                           domain=state.investigation.get("domain"), ctx=state.outputs["ctx"],
                           sig=state.outputs["sig"])
    out = priors.apply(hyp, similar)
    if note:
        out["priors"]["note"] = note
    return out


def with_delay(plan: Plan, phase: str, seconds: float) -> dict[str, PhaseFn]:
    """A copy of ``plan`` whose ``phase`` sleeps ``seconds`` first (test knob for crash tests)."""
    inner = plan[phase]

    def slow(state: PhaseState) -> dict[str, Any]:
        # time.monotonic counts a SIGSTOP pause: a resumed worker does not sleep the rest again
        deadline = time.monotonic() + seconds
        while not state.abandoned.is_set() and time.monotonic() < deadline:
            state.abandoned.wait(min(0.1, max(0.0, deadline - time.monotonic())))
        return inner(state)

    return {**plan, phase: slow}


def check_plan(plan: Plan) -> None:
    """Raise ValueError naming the phases a plan lacks."""
    missing = [p for p in P.PLANNED_PHASES if p not in plan]
    if missing:
        raise ValueError(f"phase plan lacks {', '.join(missing)}; give a function for every phase")
