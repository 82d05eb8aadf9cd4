"""The fault itself: where it starts, the culprit change, and how it spreads to callers.

Propagation follows the topology backwards (a failing service hurts the
services that call it): each hop starts a little later and hurts less, and its
error lines name the callee it waits on.
"""

from __future__ import annotations

import random

from sandbox.gen_changes import ChangeBook
from sandbox.gen_model import Effect, Plan, Service
from sandbox.gen_topology import callers_of
from sandbox.gen_vocab import (
    APP_FAILURE_ERRORS,
    CALLER_ERRORS_APP,
    CALLER_ERRORS_STORE,
    CAPACITY_ERRORS,
    CAPACITY_STORE_CALLER,
)

FAMILIES = ("deploy", "feature_flag", "config", "db_migration", "dependency", "dependency_change", "capacity")
CHANGE_FAMILIES = ("deploy", "feature_flag", "config", "db_migration")

# Minutes from the culprit change to the first errors, by kind (rolling deploys take longest).
_LAG_S = {"deploy": (120, 720), "feature_flag": (60, 480), "config": (30, 300), "db_migration": (10, 480),
          "infra": (60, 600)}


def choose_origin(rng: random.Random, family: str, services: list[Service]) -> Service:
    """Pick the service where the fault starts; dependency families need one that has callers.

    A caller edge is added when the topology has no candidate, so every family always fits.
    """
    apps = [s for s in services if s.store is None]
    called = [s for s in services if callers_of(services, s.name)]
    if family in CHANGE_FAMILIES:
        pool = [s for s in apps if s in called] if rng.random() < 0.8 else apps
        if family == "db_migration":
            sql = {s.name for s in services if s.store == "sql"}
            pool = [s for s in apps if sql.intersection(s.calls)] or pool
        return rng.choice(pool or apps)
    pool = [s for s in called if s.tier != "frontend"]
    if family in ("dependency", "dependency_change") and rng.random() < 0.5:
        pool = [s for s in pool if s.store is not None] or pool
    if pool:
        return rng.choice(pool)
    target = rng.choice([s for s in services if s.tier != "frontend"])
    caller = rng.choice([s for s in apps if services.index(s) < services.index(target)])
    caller.calls = sorted({*caller.calls, target.name})
    return target


def _change_kind(rng: random.Random, family: str, origin: Service) -> str | None:
    if family in CHANGE_FAMILIES:
        return family
    if family != "dependency_change":
        return None
    if origin.store is not None:
        return rng.choice(("infra", "infra", "config"))
    return rng.choice(("deploy", "deploy", "config", "feature_flag", "db_migration"))


def plan_fault(rng: random.Random, plan: Plan, book: ChangeBook) -> None:
    """Fill ``plan`` with the culprit change (if any) and the origin's and victims' effects."""
    services = {s.name: s for s in plan.services}
    origin = services[plan.origin]
    kind = _change_kind(rng, plan.family, origin)
    templates: tuple[str, ...] = ()
    fixed: dict[str, object] = {"svc": origin.name, "peer": rng.choice(origin.calls) if origin.calls else "upstream"}
    eff = Effect(origin.name, plan.onset, None, rng.randint(30, 150), err_add=rng.uniform(0.12, 0.55))
    mode = ""
    if kind is not None:
        lo, hi = _LAG_S[kind]
        drafted = book.draft(kind, origin, max(30, plan.onset - rng.randint(lo, hi)), harmful=True)
        plan.changes.append(drafted.change)
        plan.culprit = drafted.change.id
        plan.category = kind
        templates = drafted.templates
        fixed.update(drafted.fixed or {})
        if kind == "feature_flag" and drafted.rollout_pct:
            # Only the rolled-out share fails: error rate ~ rollout_pct x failure share.
            share = rng.uniform(0.5, 0.95)
            eff.err_add = drafted.rollout_pct / 100 * share
            plan.notes.append(f"rollout_pct={drafted.rollout_pct} failure_share={share:.2f}")
        if kind == "deploy":
            eff.ramp = rng.randint(60, 300)
            eff.lat_x = rng.uniform(1.0, 1.8)
        elif kind == "db_migration":
            eff.lat_x = rng.uniform(1.5, 4.0)
            eff.conn_to = rng.uniform(0.75, 0.95)
        elif kind == "infra" or origin.store is not None:
            eff.err_add = rng.uniform(0.25, 0.6)
            eff.lat_x = rng.uniform(1.5, 6.0)
    elif plan.family == "dependency":
        plan.category = "dependency"
        if origin.store is None:
            templates = tuple(rng.sample(APP_FAILURE_ERRORS, rng.randint(1, 2)))
            eff.lat_x = rng.uniform(1.5, 4.0)
        elif rng.random() < 0.6:
            mode = "down"
            eff.err_add, eff.rps_x = rng.uniform(0.3, 0.6), rng.uniform(0.2, 0.5)
        else:
            mode = "slow"
            eff.err_add, eff.lat_x = rng.uniform(0.08, 0.25), rng.uniform(5.0, 15.0)
    else:  # capacity: a traffic surge saturates the origin; nothing changed
        plan.category = "capacity"
        mode = rng.choice(("cpu", "conn") if origin.store == "sql" else ("cpu", "mem") if origin.store
                          else ("cpu", "mem", "conn"))
        eff.rps_x, eff.lat_x = rng.uniform(1.8, 3.5), rng.uniform(3.0, 8.0)
        eff.err_add, eff.ramp = rng.uniform(0.05, 0.25), rng.randint(300, 900)
        if mode == "cpu":
            eff.cpu_to = rng.uniform(0.93, 0.995)
        elif mode == "mem":
            eff.mem_to = rng.uniform(0.92, 0.99)
        else:
            eff.conn_to = 1.0
        if origin.store is None:
            templates = tuple(rng.sample(CAPACITY_ERRORS[mode], 2))
        plan.notes.append(f"saturation={mode} surge_x={eff.rps_x:.2f}")
    if mode:
        plan.mode = mode
        plan.notes.append(f"mode={mode}")
    eff.templates = templates
    eff.fixed = fixed
    eff.log_rate = min(0.9, max(0.12, eff.err_add * rng.uniform(0.9, 1.8))) if templates else 0.0
    plan.effects[origin.name] = eff
    _propagate(rng, plan, services, mode if plan.family == "capacity" else "")


def _caller_templates(rng: random.Random, callee: Service, capacity_mode: str) -> tuple[str, ...]:
    """Pick the 2–4 phrasings a caller uses for its failing callee."""
    if callee.store is None:
        return tuple(rng.sample(CALLER_ERRORS_APP, rng.randint(2, 4)))
    pool = list(CALLER_ERRORS_STORE[callee.store])
    if capacity_mode:
        pool = list(CAPACITY_STORE_CALLER[capacity_mode]) + pool[:1]
    return tuple(rng.sample(pool, min(len(pool), rng.randint(2, 3))))


def _propagate(rng: random.Random, plan: Plan, services: dict[str, Service], capacity_mode: str) -> None:
    """Spread the origin's effect to callers, up to three hops, weaker and later at each hop."""
    frontier = [plan.origin]
    for depth in (1, 2, 3):
        nxt: list[str] = []
        for callee in frontier:
            parent = plan.effects[callee]
            for caller in callers_of(plan.services, callee):
                if caller in plan.effects or (depth > 1 and rng.random() < 0.2):
                    continue
                # As in the shared examples: the first hop takes 20-70 % of the callee's errors, further
                # hops about as much as their callee (retries compound); timeouts double or triple latency.
                att = rng.uniform(0.2, 0.7) if depth == 1 else rng.uniform(0.6, 1.3)
                err = min(plan.effects[plan.origin].err_add * 0.9, parent.err_add * att)
                eff = Effect(
                    caller, parent.start + rng.randint(30, 240), None, rng.randint(30, 180),
                    err_add=max(0.02, err), lat_x=rng.uniform(1.6, 3.2),
                    log_rate=max(0.06, (parent.log_rate or 0.3) * rng.uniform(0.4, 1.1)),
                    templates=_caller_templates(rng, services[callee], capacity_mode if depth == 1 else ""),
                    fixed={"svc": caller, "callee": callee, "port": services[callee].port or 8080,
                           "peer": callee},
                    depth=depth,
                )
                if plan.family == "capacity":
                    # The surge walks in through the callers: they see more traffic too, without saturating.
                    eff.rps_x = 1 + (plan.effects[plan.origin].rps_x - 1) * rng.uniform(0.6, 1.0)
                plan.effects[caller] = eff
                nxt.append(caller)
        frontier = nxt


def lag_bounds(kind: str) -> tuple[int, int]:
    """Return the (min, max) seconds between a culprit change of ``kind`` and the onset."""
    return _LAG_S[kind]
