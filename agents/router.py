"""The model router: which model tier (fast / balanced / deep) an agent's next call uses, and why.

The platform blueprint's model router (seed 001, "Model Router": tier policy ``fast``, ``balanced``,
``deep``; confidence thresholds and escalation; budget-aware routing; audit of model choices) and
the cloud design's defaults (seed 000, "LLM API Integration": a Haiku-class model for structured
parsing agents, a Sonnet-class model for reasoning agents). The rules, in order:

1. **Base tier by role.** Parsing and summarising agents (bug context, compaction, documenter) use
   the fast tier; reasoning agents (hypotheses, verifier, analyzers, fix planner) use the balanced
   tier, or the deep tier when the investigation's mode is ``deep``.
2. **Mode ceiling.** ``fast`` mode may use only the fast tier; ``balanced`` (the default) and
   ``deep`` may reach the deep tier, but only by escalation in ``balanced``.
3. **Escalation.** When the verifier's confidence (0–100) is under ``escalate_below``, the call goes
   one tier up (never past the mode's ceiling).
4. **Step-down.** When the budget is tight (the smallest share left of the investigation's, the
   domain's or the global budget is under ``tight_below``) the call goes one tier down and no
   escalation happens; when the caller says how much is left in USD and what the call is expected
   to use, the router keeps stepping down until the call fits, and says when even the fast tier
   does not (``affordable=False``: the caller should stop and publish what it has).

Every :class:`Choice` carries its reason in words, and the router hands each one to its ``audit``
callback (the pipeline stores it, so the choices of an investigation can be read back).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from agents.pricing import PriceTable, Usage

TIERS = ("fast", "balanced", "deep")
MODES = ("fast", "balanced", "deep")

#: The design's defaults (seed 000): Haiku-class for parsing, Sonnet-class for reasoning; a stronger
#: (Opus-class) model for deep.
DEFAULT_MODELS: dict[str, str] = {
    "fast": "claude-haiku-4-5-20251001",
    "balanced": "claude-sonnet-4-6",
    "deep": "claude-opus-4-5",
}
#: Agents whose work is parsing or summarising: the fast tier is enough (seed 000: bug-context on haiku).
FAST_AGENTS = frozenset({"bug-context", "compaction", "summary", "documenter", "parser"})
#: The highest tier each mode may use.
CEILING = {"fast": "fast", "balanced": "deep", "deep": "deep"}
DEFAULT_ESCALATE_BELOW = 60.0
DEFAULT_TIGHT_BELOW = 0.2


@dataclass(frozen=True)
class RouterConfig:
    """The router's knobs (docs/budgets.md names their environment variables).

    Attributes:
        models: tier → model id (PM_MODEL_FAST / PM_MODEL_BALANCED / PM_MODEL_DEEP).
        escalate_below: verifier confidence (0–100) under which a call escalates one tier
            (PM_ROUTER_ESCALATE_BELOW).
        tight_below: share of a budget left (0–1) under which calls step down one tier
            (PM_ROUTER_TIGHT_BELOW).
        fast_agents: agents whose base tier is fast.
    """

    models: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_MODELS))
    escalate_below: float = DEFAULT_ESCALATE_BELOW
    tight_below: float = DEFAULT_TIGHT_BELOW
    fast_agents: frozenset[str] = FAST_AGENTS

    def __post_init__(self) -> None:
        missing = [t for t in TIERS if not self.models.get(t)]
        if missing:
            raise ValueError(f"no model for tier(s) {', '.join(missing)}; set PM_MODEL_{missing[0].upper()}")
        if not 0 <= self.escalate_below <= 100:
            raise ValueError("PM_ROUTER_ESCALATE_BELOW is a confidence between 0 and 100")
        if not 0 <= self.tight_below <= 1:
            raise ValueError("PM_ROUTER_TIGHT_BELOW is a share of the budget between 0 and 1")


@dataclass(frozen=True)
class Choice:
    """One routing decision.

    Attributes:
        agent: who asked.
        mode: the investigation's mode.
        tier: the chosen tier.
        model: the chosen model id.
        reason: why, in words (the audit trail).
        base_tier: the tier the agent's role and the mode give before escalation or step-down.
        escalated: went up because of low confidence.
        stepped_down: went down because the budget is tight or the call would not fit.
        affordable: False when even the fast tier's expected cost is over what is left.
        confidence: the verifier confidence the choice saw (or None).
        budget_left: the smallest share of a budget left the choice saw (or None).
    """

    agent: str
    mode: str
    tier: str
    model: str
    reason: str
    base_tier: str
    escalated: bool = False
    stepped_down: bool = False
    affordable: bool = True
    confidence: float | None = None
    budget_left: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Router:
    """Chooses a model per call (see the module doc).

    Args:
        config: tiers, thresholds.
        prices: for the "does it fit" check when a caller gives the USD left.
        audit: called with every :class:`Choice` (the pipeline records it); errors in it propagate.
    """

    def __init__(self, config: RouterConfig | None = None, *, prices: PriceTable | None = None,
                 audit: Callable[[Choice], None] | None = None) -> None:
        self.config = config or RouterConfig()
        self.prices = prices or PriceTable()
        self.audit = audit

    def base_tier(self, agent: str, mode: str) -> str:
        """The tier of ``agent``'s role in ``mode`` before escalation and step-down."""
        if mode == "fast" or agent in self.config.fast_agents:
            return "fast"
        return "deep" if mode == "deep" else "balanced"

    def choose(self, agent: str, *, mode: str = "balanced", confidence: float | None = None,
               budget_left: float | None = None, remaining_usd: float | None = None,
               expected: Usage | None = None) -> Choice:
        """The model for ``agent``'s next call.

        Args:
            agent: the agent's name (``hypotheses``, ``verifier``, ``bug-context``, ``compaction``…).
            mode: the investigation's mode (``fast``, ``balanced``, ``deep``).
            confidence: the verifier's latest confidence, 0–100, when there is one.
            budget_left: the smallest share (0–1) left of the budgets that apply
                (see ``pipeline.budgets.Budgets.left``), or None when unknown.
            remaining_usd: USD left of the investigation's budget, with ``expected``.
            expected: the tokens the call is expected to use (for the fit check).

        Raises:
            ValueError: an unknown mode.

        Returns:
            The choice (also given to the ``audit`` callback).
        """
        if mode not in MODES:
            raise ValueError(f"mode {mode!r} is unknown; use one of {', '.join(MODES)}")
        cfg = self.config
        base = self.base_tier(agent, mode)
        ceiling = TIERS.index(CEILING[mode])
        idx = TIERS.index(base)
        reasons = [f"{agent} in {mode} mode starts on the {base} tier"
                   + (" (parsing/summarising role)" if agent in cfg.fast_agents and mode != "fast" else "")]
        escalated = stepped = False
        tight = budget_left is not None and budget_left < cfg.tight_below
        low = confidence is not None and confidence < cfg.escalate_below
        if low and tight:
            reasons.append(f"confidence {confidence:g} < {cfg.escalate_below:g} but the budget is tight "
                           f"({budget_left:.0%} left < {cfg.tight_below:.0%}): no escalation")
        elif low and idx >= ceiling:
            reasons.append(f"confidence {confidence:g} < {cfg.escalate_below:g}, but {mode} mode allows "
                           f"nothing above the {TIERS[ceiling]} tier")
        elif low:
            idx += 1
            escalated = True
            reasons.append(f"escalated to {TIERS[idx]}: verifier confidence {confidence:g} < {cfg.escalate_below:g}")
        if tight:
            if idx > 0:
                idx -= 1
                stepped = True
                reasons.append(f"stepped down to {TIERS[idx]}: budget tight ({budget_left:.0%} left "
                               f"< {cfg.tight_below:.0%})")
            else:
                reasons.append(f"budget tight ({budget_left:.0%} left) and already on the fast tier")
        affordable = True
        if remaining_usd is not None and expected is not None:
            while idx > 0 and self.prices.cost(cfg.models[TIERS[idx]], expected) > remaining_usd:
                est = self.prices.cost(cfg.models[TIERS[idx]], expected)
                idx -= 1
                stepped = True
                reasons.append(f"stepped down to {TIERS[idx]}: the call would cost ~${est:.4f} on the "
                               f"{TIERS[idx + 1]} tier, ${remaining_usd:.4f} left")
            est = self.prices.cost(cfg.models[TIERS[idx]], expected)
            if est > remaining_usd:
                affordable = False
                reasons.append(f"even the {TIERS[idx]} tier would cost ~${est:.4f}, over the ${remaining_usd:.4f} "
                               "left: stop and publish what is known")
        tier = TIERS[idx]
        choice = Choice(agent=agent, mode=mode, tier=tier, model=cfg.models[tier], reason="; ".join(reasons),
                        base_tier=base, escalated=escalated, stepped_down=stepped, affordable=affordable,
                        confidence=confidence, budget_left=budget_left)
        if self.audit is not None:
            self.audit(choice)
        return choice

    def tiers_for(self, mode: str) -> tuple[str, ...]:
        """The tiers ``mode`` may use at all (``fast`` mode: only the fast tier)."""
        if mode not in MODES:
            raise ValueError(f"mode {mode!r} is unknown; use one of {', '.join(MODES)}")
        return TIERS[: TIERS.index(CEILING[mode]) + 1]


def config_from(models: Mapping[str, str | None] | None = None, *, escalate_below: float | None = None,
                tight_below: float | None = None) -> RouterConfig:
    """A :class:`RouterConfig` from settings values, each None meaning the default."""
    merged = dict(DEFAULT_MODELS)
    merged.update({k: v for k, v in (models or {}).items() if v})
    return RouterConfig(models=merged,
                        escalate_below=DEFAULT_ESCALATE_BELOW if escalate_below is None else escalate_below,
                        tight_below=DEFAULT_TIGHT_BELOW if tight_below is None else tight_below)
