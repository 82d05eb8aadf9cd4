"""The agent team: runs the agents of an investigation's mode on top of the engine's report.

``fast`` mode runs the summariser on the fast tier (no tools); ``balanced`` (the default) and
``deep`` run the investigator (balanced tier; deep tier in deep mode) with its read-only tools,
then the verifier. When the verifier's confidence (the share of its grounded checks that hold; at
most 40 when it disagrees) is under ``escalate_below``, the investigator runs once more one tier
up (balanced → deep; never past the deep tier) and its new answer replaces the first. Every agent starts from the evidence pack (:mod:`agents.grounding`); their
claims are grounded; the verdict rule decides; the result is the engine's report with an
``agents`` section (explanation, grounded hypotheses and findings, dropped citations, the
decision, tokens and cost per agent). Nothing an agent does can fail the investigation: any
failure leaves the engine's report in place and says so.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agents import prompts
from agents.grounding import Pack, build_pack, decide, ground, names_culprit
from agents.llm import ChatModel, LLMError
from agents.loop import Limits, LoopResult, ToolLoop
from agents.schemas import OUTPUTS

#: verifier confidence (0-100) under which the investigator is re-run one tier up (PM_ROUTER_ESCALATE_BELOW)
DEFAULT_ESCALATE_BELOW = 60.0
_UP = {"fast": "balanced", "balanced": "deep", "deep": "deep"}

log = logging.getLogger(__name__)

MODES = ("fast", "balanced", "deep")
_BROADCAST = re.compile(r"<!(channel|here|everyone)(\|[^>]*)?>|@(channel|here|everyone)\b", re.IGNORECASE)


@dataclass
class TeamResult:
    """The report with the agents' section, and one record per agent run (for AgentRun rows)."""

    report: dict[str, Any]
    runs: list[dict[str, Any]] = field(default_factory=list)


class AgentTeam:
    """The agents of an investigation.

    Args:
        models: tier → :class:`~agents.llm.ChatModel` (:func:`agents.tiers.chat_models`).
        limits: the tool loop's bounds.
        secrets: values that must never appear in what the agents write (API keys, tokens).
    """

    def __init__(self, models: Callable[[str], ChatModel], *, limits: Limits | None = None,
                 secrets: list[str] | None = None, escalate_below: float = DEFAULT_ESCALATE_BELOW) -> None:
        self.models = models
        self.limits = limits or Limits()
        self.secrets = [s for s in (secrets or []) if s and len(s) >= 8]
        self.escalate_below = escalate_below
        self._choose: Callable[..., str] | None = None
        self._before: Callable[[], None] | None = None

    def run(self, *, mode: str | None, report: dict[str, Any], ctx: dict[str, Any] | None,
            chg: dict[str, Any] | None, tools: Any,
            on_turn: Callable[[str, dict[str, Any]], None] | None = None,
            choose_tier: Callable[..., str] | None = None,
            before_call: Callable[[], None] | None = None) -> TeamResult:
        """Run the mode's agents on ``report`` and merge what they found.

        Args:
            mode: fast, balanced or deep (None → balanced).
            report: the engine's report (not changed).
            ctx, chg: the context and changes phases' outputs (for the evidence pack).
            tools: the investigation's ToolSource.
            on_turn: called with (agent, turn record) after each model call (the budget's charge).
            choose_tier: ``(agent, mode, default tier, confidence=None) -> tier`` (the model router;
                ``confidence`` is the verifier's when the investigator is re-run), or None.
            before_call: called before every model call; what it raises (the budget's cap) propagates.
        """
        self._choose, self._before = choose_tier, before_call
        mode = mode if mode in MODES else "balanced"
        pack = build_pack(report, ctx, chg)
        results: list[LoopResult] = []
        try:
            if mode == "fast":
                results.append(self._agent("summary", "fast", pack, None, on_turn,
                                           "Explain the engine's answer (H1) and submit.", mode))
            else:
                inv_tier = "deep" if mode == "deep" else "balanced"
                results.append(self._agent("investigator", inv_tier, pack, tools, on_turn,
                                           "Investigate this incident and submit your answer.", mode))
                results.append(self._agent("verifier", "balanced", pack, tools, on_turn,
                                           "Check the engine's top candidate H1 and submit your checks.", mode))
                conf = self._verifier_confidence(results[-1], pack)
                # with a router, it decides (PM_ROUTER_ESCALATE_BELOW, budget, the mode's ceiling)
                if conf is not None and (self._choose is not None or conf < self.escalate_below):
                    again = self._escalate(inv_tier, conf, pack, tools, on_turn, mode)
                    if again is not None:
                        results[0] = again
        except LLMError as exc:  # building a model failed (bad settings): the engine's answer stands
            log.warning("the agents could not start: %s", exc)
            return TeamResult(report={**report, "agents": {"mode": mode, "status": "failed", "decision": {
                "case": "agents_failed", "note": f"The agents could not run ({exc}); the evidence engine's answer stands.",
                "verdict": report.get("verdict"), "engine_verdict": report.get("verdict")}}})
        return self._merge(mode, report, pack, results)

    @staticmethod
    def _verifier_confidence(ver: LoopResult, pack: Pack) -> float | None:
        """The verifier's confidence in the engine's top candidate, 0-100: the share of its grounded
        checks that hold, at most 40 when it says it disagrees; None when it gave no usable checks."""
        if ver.output is None:
            return None
        out = ver.output.model_dump()
        kept = ground(out["checks"], pack=pack, sources=ver.sources, what="check").kept
        if not kept:
            return None
        share = 100.0 * sum(1 for c in kept if c.get("holds")) / len(kept)
        return share if out.get("agrees") else min(share, 40.0)

    def _escalate(self, tier: str, confidence: float, pack: Pack, tools: Any,
                  on_turn: Callable[[str, dict[str, Any]], None] | None, mode: str) -> LoopResult | None:
        """The investigator once more, one tier up, or None when no higher tier is open to it."""
        if self._choose is not None:
            up = self._choose("investigator", mode, tier, confidence)
        else:
            up = _UP[tier]
        if up == tier or up not in _UP:
            return None
        note = (f"escalated: the verifier's confidence {confidence:.0f} is under {self.escalate_below:.0f}, "
                f"so the investigator ran again on the {up} tier")
        log.info("%s", note)
        result = self._agent("investigator", up, pack, tools, on_turn,
                             "Investigate this incident again, more carefully, and submit your answer.", mode,
                             routed=True)
        result.notes.insert(0, note)
        return result

    def _agent(self, name: str, tier: str, pack: Pack, tools: Any,
               on_turn: Callable[[str, dict[str, Any]], None] | None, task: str, mode: str = "balanced",
               *, routed: bool = False) -> LoopResult:
        spec = prompts.load(name)
        if self._choose is not None and not routed:
            tier = self._choose(name, mode, tier)
        compactor = None
        try:
            compactor = self.models("fast")
        except Exception:  # noqa: BLE001 - compaction then drops old output instead
            compactor = None
        loop = ToolLoop(self.models(tier), tools if spec.tools else None, limits=self.limits, compactor=compactor,
                        before_call=self._before)
        result = loop.run(spec, pack.text, task, OUTPUTS[spec.output],
                          on_turn=(lambda rec: on_turn(name, rec)) if on_turn else None)
        result.notes.insert(0, f"prompt {spec.name} v{spec.version}, tier {tier}")
        return result

    # -- merging -------------------------------------------------------------------------------
    def _merge(self, mode: str, report: dict[str, Any], pack: Pack, results: list[LoopResult]) -> TeamResult:
        by_name = {r.agent: r for r in results}
        dropped: list[dict[str, Any]] = []
        hypotheses: list[dict[str, Any]] = []
        findings: list[dict[str, Any]] = []
        checks: list[dict[str, Any]] = []
        explanation = ""
        failures = [f"{r.agent}: {r.error or r.stop}" for r in results if r.output is None]
        inv = by_name.get("investigator")
        if inv is not None and inv.output is not None:
            out = inv.output.model_dump()
            g = ground(out["hypotheses"], pack=pack, sources=inv.sources, what="hypothesis")
            hypotheses, dropped = g.kept, dropped + g.dropped
            f = ground(out["findings"], pack=pack, sources=inv.sources, what="finding")
            findings, dropped = f.kept, dropped + f.dropped
            explanation = out["summary"]
        summ = by_name.get("summary")
        if summ is not None and summ.output is not None:
            out = summ.output.model_dump()
            s = ground([{"statement": out["summary"], "cites": out["cites"]}], pack=pack, sources={}, what="summary")
            dropped += s.dropped
            explanation = out["summary"] if s.kept else ""
        ver = by_name.get("verifier")
        if ver is not None and ver.output is not None:
            out = ver.output.model_dump()
            c = ground(out["checks"], pack=pack, sources=ver.sources, what="check")
            checks, dropped = c.kept, dropped + c.dropped
        usable = [r for r in results if r.output is not None]
        agent_failed = "; ".join(failures) if not usable else None
        if mode == "fast":
            decision = decide(report, pack=pack, hypotheses=[], checks=[], verifier_ran=False,
                              agent_failed=agent_failed)
            if not agent_failed:
                decision.update(case="explained", adopted_explanation=bool(explanation),
                                note="Fast mode: the fast tier explained the evidence engine's answer, which stands."
                                if explanation else "Fast mode: the summary cited no existing evidence and was dropped; "
                                                    "the evidence engine's answer stands.")
                if explanation and not names_culprit(explanation, report):
                    decision.update(adopted_explanation=False, note="Fast mode: the summary did not explain the engine's "
                                    "culprit and was not adopted; the evidence engine's answer stands.")
        else:
            decision = decide(report, pack=pack, hypotheses=hypotheses, checks=checks,
                              verifier_ran=ver is not None and ver.output is not None, agent_failed=agent_failed)
        if decision.get("adopted_explanation") and not names_culprit(explanation, report):
            decision["adopted_explanation"] = False
            decision["note"] += " Their explanation does not name the engine's culprit, so it is not adopted."
        if failures and not agent_failed:
            decision["note"] += " Not every agent finished: " + "; ".join(failures) + "."
        section = {
            "mode": mode,
            "status": "failed" if agent_failed else "done",
            "decision": {k: v for k, v in decision.items() if k != "objections"},
            "explanation": self._clean(explanation) if decision.get("adopted_explanation") else "",
            "hypotheses": [self._clean_claim(h) for h in hypotheses],
            "findings": [self._clean_claim(f) for f in findings],
            "checks": [self._clean_claim(c) for c in checks],
            "objections": [self._clean_claim(c) for c in decision.get("objections") or []],
            "dropped_citations": dropped,
            "runs": [{"agent": r.agent, "model": r.model, "stop": r.stop, "error": r.error,
                      "tokens_in": r.tokens_in, "tokens_out": r.tokens_out, "cost_usd": r.cost_usd,
                      "cache_read_tokens": sum(t["cache_read_tokens"] for t in r.turns),
                      "cache_write_tokens": sum(t["cache_write_tokens"] for t in r.turns),
                      "model_calls": len(r.turns), "tool_calls": len(r.calls), "notes": r.notes[:10]}
                     for r in results],
            "tokens_in": sum(r.tokens_in for r in results),
            "tokens_out": sum(r.tokens_out for r in results),
            "cost_usd": round(sum(r.cost_usd for r in results), 6),
        }
        if not decision.get("adopted_explanation") and explanation:
            # kept for the reader, clearly apart from the report's explanation
            key = "lead" if decision.get("case") == "engine_has_no_culprit" else "alternative_explanation"
            section[key] = self._clean(explanation)
        merged = {**report, "verdict": decision["verdict"], "confidence": decision["confidence"], "agents": section}
        if section["explanation"]:
            merged["root_cause"] = {**(report.get("root_cause") or {}), "explanation": section["explanation"]}
        runs = [{"agent": r.agent, "model": r.model or "unknown", "status": "done" if r.output is not None else "failed",
                 "error": r.error, "tokens_in": r.tokens_in, "tokens_out": r.tokens_out, "cost_usd": r.cost_usd,
                 "tool_calls": r.calls, "turns": r.turns} for r in results]
        return TeamResult(report=merged, runs=runs)

    def _clean(self, text: Any, limit: int = 1500) -> str:
        """Model-written text made safe to publish: no broadcast mentions, no secrets, capped."""
        s = _BROADCAST.sub("(mention removed)", str(text or ""))
        for secret in self.secrets:
            s = s.replace(secret, "[redacted]")
        return s if len(s) <= limit else s[: limit - 1] + "…"

    def _clean_claim(self, claim: dict[str, Any]) -> dict[str, Any]:
        return {k: self._clean(v, 800) if isinstance(v, str) else v for k, v in claim.items()}


def make_team(settings: Any, **options: Any) -> AgentTeam | None:
    """The team from settings, or None when no model is configured (ANTHROPIC_API_KEY / OPENAI_API_KEY).

    Args:
        settings: ``store.config.Settings`` (PM_MODEL_*, PM_AGENT_* and the keys).
        options: passed to the model adapters (attempts, max_wait_s, sleep, timeout_s).
    """
    from agents.tiers import chat_models

    options.setdefault("timeout_s", float(getattr(settings, "agent_timeout_s", 120.0) or 120.0))
    models = chat_models(settings, **options)
    if models is None:
        return None
    limits = Limits(max_steps=int(getattr(settings, "agent_max_steps", 0) or 0),
                    context_tokens=int(getattr(settings, "agent_context_tokens", 200_000) or 200_000),
                    result_share=float(getattr(settings, "agent_result_share", 0.02) or 0.02),
                    compact_share=float(getattr(settings, "agent_compact_share", 0.5) or 0.5))
    # every secret setting (keys, tokens, passwords): never in what the agents write
    secrets: list[str] = []
    for name in getattr(type(settings), "model_fields", {}):
        value = getattr(settings, name, None)
        if value is not None and hasattr(value, "get_secret_value"):
            secrets.append(str(value.get_secret_value()))
    return AgentTeam(models, limits=limits, secrets=secrets)
