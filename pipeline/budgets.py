"""Cost budgets: the gates an investigation passes at start and around every model call.

The cloud design's budgets (seed 000, "Cost Budgets" and "Cost Alerts and Auto-Throttling"): per
investigation ($5 by default: reaching it stops the investigation, which publishes what it found,
marked partial), per domain per month ($500) and global per month ($10,000). For each monthly
budget: at 80 % the admins are warned (a Slack message to PM_ADMIN_CHANNEL and the
``pm_budget_notices_total`` metric), at 90 % only P1 investigations may start, at 100 % none start
until an admin approves (``pm budgets approve`` or ``POST /api/v1/budgets/approve``). Running
investigations finish within their own cap. Thresholds and amounts: docs/budgets.md.

Who calls what:

* commands/investigate.py calls :meth:`Budgets.gate` before it creates an investigation (all front
  doors go through it): a refusal raises :class:`BudgetRefused` saying what to do.
* the tool loop calls ``state.budget.before_call()`` before each model call (raises
  :class:`~pipeline.errors.BudgetExceeded` when the investigation's cap is reached),
  ``state.budget.charge(agent, model, usage)`` after it, ``state.budget.left()`` for the router's
  step-down and ``state.budget.record_choice(choice)`` for the router's audit trail
  (:class:`PhaseBudget`, bound by the machine for each phase).
* the machine stops at its cap and publishes :func:`partial_report`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from agents.pricing import PriceTable, Usage
from agents.router import Choice, Router, RouterConfig
from pipeline import metrics
from pipeline.errors import BudgetExceeded, BudgetRefused
from store import agent_runs, model_choices, outbox
from store import budgets as spend
from store.models import Investigation, utcnow

log = logging.getLogger(__name__)

LEVELS = ("ok", "warn", "p1_only", "stopped")
#: The percentage each level is announced as (notices, metrics).
LEVEL_PCT = {"warn": 80, "p1_only": 90, "stopped": 100}


@dataclass(frozen=True)
class BudgetPolicy:
    """Amounts (USD; 0 = no limit at that level) and thresholds (shares of a limit).

    Attributes:
        investigation_usd: one investigation's cap (PM_BUDGET_INVESTIGATION_USD), unless the
            investigation carries its own ``budget_usd``.
        domain_month_usd: each domain's monthly budget (PM_BUDGET_DOMAIN_MONTH_USD).
        global_month_usd: the platform's monthly budget (PM_BUDGET_GLOBAL_MONTH_USD).
        domain_limits: per-domain monthly budgets overriding ``domain_month_usd`` (PM_BUDGET_DOMAINS).
        warn_at, p1_only_at, stop_at: PM_BUDGET_WARN_AT / _P1_ONLY_AT / _STOP_AT.
    """

    investigation_usd: float = 5.0
    domain_month_usd: float = 500.0
    global_month_usd: float = 10_000.0
    domain_limits: Mapping[str, float] = field(default_factory=dict)
    warn_at: float = 0.8
    p1_only_at: float = 0.9
    stop_at: float = 1.0

    def __post_init__(self) -> None:
        if not self.warn_at <= self.p1_only_at <= self.stop_at:
            raise ValueError("budget thresholds must rise: PM_BUDGET_WARN_AT ≤ PM_BUDGET_P1_ONLY_AT ≤ "
                             "PM_BUDGET_STOP_AT")

    def month_limit(self, scope: str, key: str) -> float:
        """The base monthly limit of a scope (0: none)."""
        if scope == "global":
            return self.global_month_usd
        return float(self.domain_limits.get(key, self.domain_month_usd))

    def cap(self, budget_usd: float | None) -> float | None:
        """An investigation's cap: its own ``budget_usd``, else the policy's (None: no cap)."""
        if budget_usd is not None:
            return budget_usd
        return self.investigation_usd or None

    @classmethod
    def from_settings(cls, cost: Any) -> BudgetPolicy:
        """From :class:`store.config.CostSettings`.

        Raises:
            ValueError: PM_BUDGET_DOMAINS cannot be read; the message says how to write it.
        """
        return cls(investigation_usd=cost.investigation_usd, domain_month_usd=cost.domain_month_usd,
                   global_month_usd=cost.global_month_usd, domain_limits=parse_domain_budgets(cost.domain_budgets),
                   warn_at=cost.warn_at, p1_only_at=cost.p1_only_at, stop_at=cost.stop_at)


def parse_domain_budgets(text: str | None) -> dict[str, float]:
    """PM_BUDGET_DOMAINS: a JSON object or ``domain=usd`` pairs separated by commas.

    Raises:
        ValueError: naming the variable and the form to use.
    """
    if not text or not text.strip():
        return {}
    how = 'write {"payments": 100} or payments=100,search=50 (USD per month)'
    if text.strip().startswith("{"):
        try:
            raw = json.loads(text)
        except ValueError:
            raise ValueError(f"PM_BUDGET_DOMAINS is not JSON; {how}") from None
        pairs = list(raw.items()) if isinstance(raw, dict) else []
    else:
        pairs = []
        for part in text.split(","):
            if "=" not in part:
                raise ValueError(f"PM_BUDGET_DOMAINS: {part.strip()!r} is not domain=usd; {how}")
            k, v = part.split("=", 1)
            pairs.append((k.strip(), v.strip()))
    out: dict[str, float] = {}
    for k, v in pairs:
        try:
            amount = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"PM_BUDGET_DOMAINS[{k!r}] = {v!r} is not an amount; {how}") from None
        if not k or amount < 0:
            raise ValueError(f"PM_BUDGET_DOMAINS[{k!r}] must name a domain and an amount ≥ 0; {how}")
        out[str(k)] = amount
    return out


@dataclass(frozen=True)
class ScopeState:
    """One monthly budget now.

    Attributes:
        scope: ``global`` or ``domain``. key: ``*`` or the domain's name. month: ``YYYY-MM``.
        spent_usd: spent this month. base_usd: the configured limit. extra_usd: approved on top.
        lifted: an admin lifted the stop for the rest of the month.
        level: ``ok``, ``warn`` (≥ 80 %), ``p1_only`` (≥ 90 %) or ``stopped`` (≥ 100 %); a lifted
            stop reads at most ``warn``.
    """

    scope: str
    key: str
    month: str
    spent_usd: float
    base_usd: float
    extra_usd: float
    lifted: bool
    level: str

    @property
    def limit_usd(self) -> float:
        return self.base_usd + self.extra_usd

    @property
    def ratio(self) -> float:
        return self.spent_usd / self.limit_usd if self.limit_usd > 0 else 0.0

    @property
    def label(self) -> str:
        return "the global monthly budget" if self.scope == "global" else f"the monthly budget of domain {self.key}"

    @property
    def approve_command(self) -> str:
        return "pm budgets approve global" if self.scope == "global" else f"pm budgets approve domain {self.key}"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(limit_usd=round(self.limit_usd, 6), used=round(self.ratio, 4),
                   spent_usd=round(self.spent_usd, 6))
        return out


@dataclass(frozen=True)
class Decision:
    """Whether an investigation may start, the level of the tightest budget and why."""

    allowed: bool
    level: str
    reason: str
    scopes: tuple[ScopeState, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"allowed": self.allowed, "level": self.level, "reason": self.reason,
                "scopes": [s.to_dict() for s in self.scopes]}


@dataclass(frozen=True)
class Notice:
    """A threshold crossed for the first time this month at this limit: say it to the admins."""

    scope: str
    key: str
    level: str
    text: str


@dataclass(frozen=True)
class Charged:
    """What :func:`charge` recorded.

    Attributes:
        run_id: the agent run charged. cost_usd: this call's cost. spent_usd: the investigation's total.
        cap_usd: its cap (None: none). remaining_usd: what is left of it (None: no cap).
        cap_reached: the investigation reached its cap (the next ``before_call`` raises).
        notices: thresholds this charge crossed, to send after the commit.
    """

    run_id: int
    cost_usd: float
    spent_usd: float
    cap_usd: float | None
    remaining_usd: float | None
    cap_reached: bool
    notices: tuple[Notice, ...] = ()


def _level(policy: BudgetPolicy, ratio: float, limit: float, lifted: bool) -> str:
    if limit <= 0:
        return "ok"
    if ratio >= policy.stop_at and not lifted:
        return "stopped"
    if ratio >= policy.p1_only_at and not lifted:
        return "p1_only"
    return "warn" if ratio >= policy.warn_at else "ok"


def scope_state(*, session: Session, policy: BudgetPolicy, scope: str, key: str, month: str) -> ScopeState:
    """One monthly budget's state (spend from the agent runs, approvals from the store)."""
    spent = spend.ledger(session=session, scope=scope, key=key, month=month)
    lifted, extra = spend.approvals(session=session, scope=scope, key=key, month=month)
    base = policy.month_limit(scope, key)
    ratio = spent / (base + extra) if base + extra > 0 else 0.0
    state = ScopeState(scope=scope, key=key, month=month, spent_usd=spent, base_usd=base, extra_usd=extra,
                       lifted=lifted, level=_level(policy, ratio, base + extra, lifted))
    metrics.BUDGET_USED.labels(scope, key if scope == "domain" else "all").set(state.ratio)
    return state


def scope_states(*, session: Session, policy: BudgetPolicy, domain: str | None,
                 now: datetime | None = None) -> tuple[ScopeState, ...]:
    """The monthly budgets that apply to an investigation of ``domain``: global, then its domain's
    (none when the investigation names no domain: only the global budget holds it)."""
    month = spend.month_of(now or utcnow())
    glob = scope_state(session=session, policy=policy, scope="global", key=spend.GLOBAL_KEY, month=month)
    if not domain:
        return (glob,)
    return (glob, scope_state(session=session, policy=policy, scope="domain", key=domain, month=month))


def check_start(*, session: Session, policy: BudgetPolicy, domain: str | None, priority: str,
                now: datetime | None = None) -> Decision:
    """May a new investigation of ``domain`` at ``priority`` start now?

    Returns:
        The decision: refused when a monthly budget is spent (until an admin approves), or when
        one is at the P1-only threshold and ``priority`` is not P1; the reason says what to do.
    """
    states = scope_states(session=session, policy=policy, domain=domain, now=now)
    worst = max(states, key=lambda s: (LEVELS.index(s.level), s.ratio))
    if worst.level == "stopped":
        return Decision(False, "stopped", (
            f"{worst.label} is spent (${worst.spent_usd:.2f} of ${worst.limit_usd:.2f} in {worst.month}); "
            f"new investigations wait for an admin to approve: `{worst.approve_command}` "
            "(or POST /api/v1/budgets/approve)"), states)
    if worst.level == "p1_only" and priority != "P1":
        return Decision(False, "p1_only", (
            f"{worst.label} is {worst.ratio:.0%} used (${worst.spent_usd:.2f} of ${worst.limit_usd:.2f}); "
            f"above {policy.p1_only_at:.0%} only P1 investigations start. Start it as P1 if it is one, or ask "
            f"an admin to approve more: `{worst.approve_command} --usd AMOUNT`"), states)
    if worst.level in ("warn", "p1_only"):
        return Decision(True, worst.level, f"{worst.label} is {worst.ratio:.0%} used", states)
    return Decision(True, "ok", "within budget", states)


def _crossings(session: Session, policy: BudgetPolicy, states: tuple[ScopeState, ...]) -> list[Notice]:
    """The notices of thresholds crossed for the first time: one per scope, for the highest level
    newly reached (a jump from 70 % to 105 % says "100 %" once, not three messages)."""
    out: list[Notice] = []
    for st in states:
        if st.limit_usd <= 0:
            continue
        newest = None
        for level, at in (("warn", policy.warn_at), ("p1_only", policy.p1_only_at), ("stopped", policy.stop_at)):
            if st.ratio < at or (st.lifted and level != "warn"):
                continue
            if spend.claim_notice(session=session, scope=st.scope, key=st.key, month=st.month,
                                  level=LEVEL_PCT[level], limit_usd=st.limit_usd, spent_usd=st.spent_usd):
                metrics.BUDGET_NOTICES.labels(st.scope, str(LEVEL_PCT[level])).inc()
                newest = level
        if newest is None:
            continue
        what = {"warn": "new investigations still start",
                "p1_only": f"only P1 investigations start now (until {policy.stop_at:.0%}, then none)",
                "stopped": "no new investigation starts until an admin approves: "
                           f"`{st.approve_command}` (optionally `--usd AMOUNT`)"}[newest]
        out.append(Notice(st.scope, st.key, newest, (
            f"Budget: {st.label} has reached {LEVEL_PCT[newest]}% for {st.month} "
            f"(${st.spent_usd:.2f} of ${st.limit_usd:.2f}); {what}. `pm budgets show` has the details.")))
    return out


def charge(*, session: Session, policy: BudgetPolicy, prices: PriceTable, investigation_id: str, agent: str,
           phase: str, model: str, usage: Usage, run_id: int | None = None,
           now: datetime | None = None) -> Charged:
    """Record one model call: its tokens and cost on an agent run (opened when ``run_id`` is None)
    and on the investigation, and the monthly thresholds it crossed. The caller commits, then
    sends ``notices`` (see :meth:`Budgets.charge`). Never raises for the budget: the call already
    happened and is paid for; :func:`before_call` is the gate.

    Returns:
        What was recorded and what is left.
    """
    cost = prices.cost(model, usage)
    if run_id is None:
        run_id = agent_runs.start(session=session, investigation_id=investigation_id, agent=agent, phase=phase,
                                  model=model).id
    spent, own = agent_runs.add_usage(session=session, run_id=run_id, tokens_in=usage.input_total,
                                      tokens_out=usage.output, cache_read_tokens=usage.cache_read,
                                      cache_write_tokens=usage.cache_write + usage.cache_write_1h, cost_usd=cost)
    domain = session.scalar(select(Investigation.domain).where(Investigation.id == investigation_id))
    notices = _crossings(session, policy, scope_states(session=session, policy=policy, domain=domain, now=now))
    cap = policy.cap(own)
    remaining = None if cap is None else max(0.0, cap - spent)
    return Charged(run_id=run_id, cost_usd=cost, spent_usd=spent, cap_usd=cap, remaining_usd=remaining,
                   cap_reached=cap is not None and spent >= cap, notices=tuple(notices))


def over_cap(*, policy: BudgetPolicy | None, cost_usd: float, budget_usd: float | None) -> str | None:
    """Why an investigation that spent ``cost_usd`` must stop (its cap reached), or None."""
    cap = policy.cap(budget_usd) if policy is not None else budget_usd
    if cap is None or cost_usd < cap:
        return None
    return (f"budget reached: spent ${cost_usd:.4f} of the investigation's ${cap:.2f}; published what was found "
            "so far. Re-run with a larger budget (PM_BUDGET_INVESTIGATION_USD or budget_usd) or mode=fast")


def before_call(*, session: Session, policy: BudgetPolicy, investigation_id: str, expected_usd: float = 0.0) -> float:
    """The gate before a model call.

    Raises:
        BudgetExceeded: the investigation reached its cap (or the expected cost would pass it).

    Returns:
        USD left of the investigation's cap (``inf`` when it has none).
    """
    row = session.execute(select(Investigation.cost_usd, Investigation.budget_usd)
                          .where(Investigation.id == investigation_id)).one()
    spent = float(row[0] or 0.0)
    why = over_cap(policy=policy, cost_usd=spent + max(0.0, expected_usd), budget_usd=row[1])
    if why is not None:
        raise BudgetExceeded(why)
    cap = policy.cap(row[1])
    return float("inf") if cap is None else cap - spent


def left_share(*, session: Session, policy: BudgetPolicy, investigation_id: str, now: datetime | None = None) -> float:
    """The smallest share (0–1) left of the budgets an investigation draws on: its own cap and the
    monthly budgets of its domain and the platform (the router steps down when it is small)."""
    row = session.execute(select(Investigation.cost_usd, Investigation.budget_usd, Investigation.domain)
                          .where(Investigation.id == investigation_id)).one()
    shares = [1.0]
    cap = policy.cap(row[1])
    if cap:
        shares.append(max(0.0, 1 - float(row[0] or 0.0) / cap))
    for st in scope_states(session=session, policy=policy, domain=row[2], now=now):
        if st.limit_usd > 0 and not st.lifted:
            shares.append(max(0.0, 1 - st.ratio))
    return min(shares)


def approve(*, session: Session, policy: BudgetPolicy, scope: str, key: str | None, by: str | None,
            usd: float | None = None, note: str | None = None, now: datetime | None = None) -> ScopeState:
    """An admin's approval for this month: ``usd`` more, or (None) the stop lifted for the month.

    Raises:
        ValueError: unknown scope, a domain approval without a domain, or an amount ≤ 0.

    Returns:
        The scope's state after the approval.
    """
    if scope == "domain" and not key:
        raise ValueError("name the domain to approve: `pm budgets approve domain NAME`")
    key = spend.GLOBAL_KEY if scope == "global" else str(key)
    month = spend.month_of(now or utcnow())
    spend.approve(session=session, scope=scope, key=key, month=month, extra_usd=usd, approved_by=by, note=note)
    log.info("budget approved by %s: %s %s %s", by or "?", scope, key, f"+${usd:.2f}" if usd else "stop lifted")
    return scope_state(session=session, policy=policy, scope=scope, key=key, month=month)


def status(*, session: Session, policy: BudgetPolicy, now: datetime | None = None) -> dict[str, Any]:
    """Every monthly budget this month (global, each domain with spend or its own limit) and the
    approvals: what ``pm budgets show`` and ``GET /api/v1/budgets`` answer."""
    month = spend.month_of(now or utcnow())
    approved = spend.approvals_list(session=session, month=month)
    domains = sorted(set(spend.ledger_by_domain(session=session, month=month)) | set(policy.domain_limits)
                     | {a["key"] for a in approved if a["scope"] == "domain"})
    return {
        "month": month,
        "thresholds": {"warn": policy.warn_at, "p1_only": policy.p1_only_at, "stop": policy.stop_at},
        "investigation_usd": policy.investigation_usd,
        "global": scope_state(session=session, policy=policy, scope="global", key=spend.GLOBAL_KEY,
                              month=month).to_dict(),
        "domains": [scope_state(session=session, policy=policy, scope="domain", key=d, month=month).to_dict()
                    for d in domains if d != spend.NO_DOMAIN],
        "no_domain_usd": round(spend.ledger(session=session, scope="domain", key=spend.NO_DOMAIN, month=month), 6),
        "approvals": approved,
    }


def partial_report(outputs: Mapping[str, Any], *, reason: str, phases_done: list[str]) -> dict[str, Any]:
    """The report of an investigation stopped by its budget: what it found so far, marked partial.

    A finished report is kept as it is; otherwise the hypotheses found so far are listed with an
    INCONCLUSIVE verdict (nothing unverified is presented as a conclusion).
    """
    rep = outputs.get("rep")
    if isinstance(rep, dict) and rep:
        report = dict(rep)
    else:
        hyp = outputs.get("hyp") if isinstance(outputs.get("hyp"), dict) else {}
        hyps = [h for h in (hyp.get("hypotheses") or []) if isinstance(h, dict)] if hyp else []
        ctx = outputs.get("ctx") if isinstance(outputs.get("ctx"), dict) else {}
        report = {"verdict": "INCONCLUSIVE", "confidence": None, "hypotheses": hyps,
                  "fix_plan": outputs.get("fix") if isinstance(outputs.get("fix"), dict) else None,
                  "missing_sources": list((ctx or {}).get("missing_sources") or [])}
        top = hyps[0] if hyps else None
        report["root_cause"] = ({"summary": f"Not verified (the budget ran out first): {top.get('statement', '')}",
                                 "service": top.get("service")} if top else
                                {"summary": "The budget ran out before any hypothesis was formed."})
    report.update(partial=True, partial_reason=reason, phases_done=list(phases_done))
    return report


# -- bound to a runtime ---------------------------------------------------------------------------


class Budgets:
    """The budget rules bound to a runtime's database and admin channel.

    Args:
        session: ``() -> context manager`` giving a session that commits (the runtime's).
        policy: amounts and thresholds. prices: the price table.
        alarm: ``() -> fn(text) | None``: the admin channel poster at the time of the notice.
        on_usage: called with an investigation id after a live usage event was appended.
        usage_event_s: at most one live usage event per investigation this often.
        router_config: the model tiers and thresholds (PM_MODEL_*, PM_ROUTER_*).
    """

    def __init__(self, *, session: Callable[[], AbstractContextManager[Session]], policy: BudgetPolicy | None = None,
                 prices: PriceTable | None = None, alarm: Callable[[], Callable[[str], None] | None] | None = None,
                 on_usage: Callable[[str], None] | None = None, usage_event_s: float = 5.0,
                 router_config: RouterConfig | None = None) -> None:
        self._session = session
        self.router_config = router_config or RouterConfig()
        self.policy = policy or BudgetPolicy()
        self.prices = prices or PriceTable()
        self._alarm = alarm or (lambda: None)
        self._on_usage = on_usage or (lambda _id: None)
        self.usage_event_s = usage_event_s
        self._last_event: dict[str, float] = {}
        self._lock = threading.Lock()

    def gate(self, *, session: Session, domain: str | None, priority: str) -> Decision:
        """:func:`check_start` inside the caller's transaction.

        Raises:
            BudgetRefused: the investigation may not start; the message says what to do.
        """
        decision = check_start(session=session, policy=self.policy, domain=domain, priority=priority)
        if not decision.allowed:
            scope = max(decision.scopes, key=lambda s: (LEVELS.index(s.level), s.ratio)).scope
            metrics.BUDGET_REFUSED.labels(scope, decision.level).inc()
            raise BudgetRefused(decision.reason)
        return decision

    def charge(self, *, investigation_id: str, agent: str, phase: str, model: str, usage: Usage,
               run_id: int | None = None) -> Charged:
        """:func:`charge` in a transaction of its own, then the notices to the admins and a live
        usage event (throttled) so the Slack status message shows the new tokens and cost."""
        with self._session() as s:
            charged = charge(session=s, policy=self.policy, prices=self.prices, investigation_id=investigation_id,
                             agent=agent, phase=phase, model=model, usage=usage, run_id=run_id)
        self.notify(charged.notices)
        now = time.monotonic()
        with self._lock:
            due = now - self._last_event.get(investigation_id, float("-inf")) >= self.usage_event_s
            if due:
                self._last_event[investigation_id] = now
        if due or charged.cap_reached:
            try:
                with self._session() as s:
                    inv = s.get(Investigation, investigation_id)
                    if inv is not None:
                        outbox.append(session=s, investigation_id=investigation_id, kind="usage", payload={
                            "tokens_in": inv.tokens_in, "tokens_out": inv.tokens_out,
                            "cost_usd": round(float(inv.cost_usd or 0.0), 6), "cap_usd": charged.cap_usd,
                            "only_sinks": ["slack"]})
                self._on_usage(investigation_id)
            except Exception:  # the live figure is a courtesy; the charge itself is committed
                log.warning("live usage event of %s not appended", investigation_id, exc_info=True)
        return charged

    def check_notices(self, investigation_id: str) -> list[Notice]:
        """Send the notices of monthly thresholds crossed by spend recorded otherwise than through
        :meth:`charge` (e.g. agent runs closed at a phase's end). Never raises: a notice is a courtesy."""
        try:
            with self._session() as s:
                domain = s.scalar(select(Investigation.domain).where(Investigation.id == investigation_id))
                notices = _crossings(s, self.policy, scope_states(session=s, policy=self.policy, domain=domain))
        except Exception:  # noqa: BLE001 - the gate at the next start still sees the spend
            log.warning("budget notices of %s not checked", investigation_id, exc_info=True)
            return []
        self.notify(notices)
        return notices

    def notify(self, notices: tuple[Notice, ...] | list[Notice]) -> None:
        """Say each notice in the admins' channel (when configured) and in the log."""
        for notice in notices:
            log.warning("%s", notice.text)
            post = self._alarm()
            if post is None:
                continue
            try:
                post(notice.text)
            except Exception:  # noqa: BLE001 - the notice is logged and counted either way
                log.warning("posting the budget notice to the admin channel failed", exc_info=True)

    def before_call(self, investigation_id: str, expected_usd: float = 0.0) -> float:
        """:func:`before_call` in a read-only transaction of its own."""
        with self._session() as s:
            return before_call(session=s, policy=self.policy, investigation_id=investigation_id,
                               expected_usd=expected_usd)

    def left(self, investigation_id: str) -> float:
        """:func:`left_share` in a transaction of its own."""
        with self._session() as s:
            return left_share(session=s, policy=self.policy, investigation_id=investigation_id)

    def record_choice(self, investigation_id: str, choice: Choice | Mapping[str, Any], phase: str | None = None) -> None:
        """Store a router choice in the audit trail (``model_choices``)."""
        data = choice.to_dict() if isinstance(choice, Choice) else dict(choice)
        with self._session() as s:
            model_choices.record(session=s, investigation_id=investigation_id, choice=data, phase=phase)

    def for_phase(self, investigation_id: str, phase: str) -> PhaseBudget:
        """The hooks one phase's agents call (``state.budget``)."""
        return PhaseBudget(self, investigation_id, phase)


class PhaseBudget:
    """What the agents of one phase call around each model call (the machine sets ``state.budget``).

    One agent run per agent and model per phase collects that agent's calls (so cost by model stays
    right when the router changes tiers); :meth:`close` ends them.
    """

    def __init__(self, budgets: Budgets, investigation_id: str, phase: str) -> None:
        self.budgets, self.investigation_id, self.phase = budgets, investigation_id, phase
        self._runs: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def before_call(self, expected_usd: float = 0.0) -> float:
        """Raise :class:`~pipeline.errors.BudgetExceeded` when the cap is reached; else USD left."""
        return self.budgets.before_call(self.investigation_id, expected_usd)

    def charge(self, agent: str, model: str, usage: Usage) -> Charged:
        """Record one call of ``agent`` on ``model``."""
        with self._lock:
            run_id = self._runs.get((agent, model))
            charged = self.budgets.charge(investigation_id=self.investigation_id, agent=agent, phase=self.phase,
                                          model=model, usage=usage, run_id=run_id)
            self._runs[(agent, model)] = charged.run_id
        return charged

    def left(self) -> float:
        """The smallest share left of the budgets that apply (for ``Router.choose(budget_left=...)``)."""
        return self.budgets.left(self.investigation_id)

    def record_choice(self, choice: Choice | Mapping[str, Any]) -> None:
        """Put a router choice in the audit trail (``Router(audit=state.budget.record_choice)``)."""
        self.budgets.record_choice(self.investigation_id, choice, phase=self.phase)

    def router(self) -> Router:
        """A :class:`~agents.router.Router` with the configured tiers and prices whose every choice
        is recorded in this investigation's audit trail."""
        return Router(self.budgets.router_config, prices=self.budgets.prices, audit=self.record_choice)

    def close(self, status: str = "done", error: str | None = None) -> None:
        """End this phase's agent runs (their totals stay)."""
        with self._lock:
            ids = list(self._runs.values())
            self._runs.clear()
        if not ids:
            return
        with self.budgets._session() as s:
            for run_id in ids:
                agent_runs.close(session=s, run_id=run_id, status=status, error=error)
