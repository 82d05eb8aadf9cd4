"""Planning one world: window, topology, fault, decoys and trigger, all from one random stream."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from sandbox.gen_changes import ChangeBook
from sandbox.gen_decoys import add_background_changes, add_decoys, add_recovery, choose_decoys
from sandbox.gen_fault import choose_origin, plan_fault
from sandbox.gen_field import shape_alerted, shape_fault
from sandbox.gen_hard import harden_changes, harden_world
from sandbox.gen_model import Plan
from sandbox.gen_topology import SHAPES, build_topology
from sandbox.gen_triggers import add_alerts, add_trigger, choose_alerted
from sandbox.gen_vocab import DOMAINS


def _onset(rng: random.Random, duration_s: int) -> int:
    """Pick the onset: 35–62 % into the window, leaving at least 20 minutes after it when possible."""
    lo, hi = duration_s * 0.35, duration_s * 0.62
    if duration_s - hi < 20 * 60:
        hi = max(lo, duration_s - 20 * 60)
    return int(rng.uniform(lo, hi))


def plan_world(rng: random.Random, *, name: str, family: str, services: int, duration_min: int,
               decoys: bool, hard: random.Random | None = None, field: random.Random | None = None) -> Plan:
    """Decide everything a world holds (arguments are validated by the caller).

    Params:
        rng: the world's random stream.
        name: the world's name.
        family: one of :data:`sandbox.gen_fault.FAMILIES`.
        services: number of services in the topology, datastores included.
        duration_min: window length in minutes.
        decoys: whether to add decoys.
        hard: a random stream for the hard mode (:mod:`sandbox.gen_hard`), or None for an ordinary world.
        field: a random stream for the field mode (:mod:`sandbox.gen_field`), or None.

    Returns:
        The plan, with changes, alerts, tickets and chat sorted by time.
    """
    day = datetime(2026, 1, 5, tzinfo=UTC) + timedelta(days=rng.randint(0, 330))
    start = day + timedelta(hours=rng.randint(0, 23 - min(23, duration_min // 60)))
    duration_s = duration_min * 60
    topology = build_topology(rng, services, rng.choice(SHAPES))
    origin = choose_origin(rng, family, topology)
    plan = Plan(name=name, family=family, start=start, duration_s=duration_s, services=topology,
                origin=origin.name, onset=_onset(rng, duration_s), category="none", culprit=None)
    plan.domain = f"{rng.choice(DOMAINS)}/{origin.name}" if rng.random() < 0.5 else None
    plan.log_style = "kv" if rng.random() < 0.25 else "plain"
    plan.trace_ids = rng.random() < 0.3
    book = ChangeBook(rng, start.strftime("%Y%m%d"))
    plan_fault(rng, plan, book)
    if field is not None:
        shape_fault(field, plan)
    plan.alerted = choose_alerted(rng, plan)
    if field is not None:
        plan.alerted = shape_alerted(field, plan, plan.alerted)
    plan.decoys = choose_decoys(rng, plan) if decoys else []
    add_background_changes(rng, plan, book)
    add_decoys(rng, plan, book)
    add_recovery(rng, plan, book)
    if hard is not None:
        harden_changes(hard, plan, book)
    plan.changes.sort(key=lambda c: (c.ts, c.id))
    book.renumber(plan.changes)
    alerts = add_alerts(rng, plan)
    add_trigger(rng, plan, alerts)
    if hard is not None:
        harden_world(hard, plan)
    return plan
