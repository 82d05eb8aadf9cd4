"""Background changes and decoys: what makes a world hard to read.

Decoy kinds (each chosen independently per world, at least one when decoys are on):

* ``near_change``  harmless changes on other services shortly before the onset
  (often on the alerted victim, the classic trap);
* ``late_change``  changes after the onset, half of them on the culprit service
  (a follow-up deploy or a rollback), which cannot have caused it;
* ``noisy_errors`` unrelated error lines on a bystander: a short burst or a
  steady stream before and after the onset, plus sometimes an unrelated alert;
* ``early_victim_alert`` a victim's alert fires before the origin's (see gen_triggers).
"""

from __future__ import annotations

import random

from sandbox.gen_changes import ChangeBook
from sandbox.gen_model import NoisySource, Plan, Service
from sandbox.gen_vocab import NOISY_DECOY

DECOY_KINDS = ("near_change", "noisy_errors", "late_change", "early_victim_alert")
# Late changes land at least 4 minutes after the onset: metrics come per minute and faults ramp up, so
# anything closer could not be told apart from a cause by the evidence a world offers.
_LATE_MIN_S = 240
_HARMLESS_KINDS = ("deploy",) * 11 + ("config",) * 4 + ("feature_flag",) * 3 + ("db_migration", "infra")


def choose_decoys(rng: random.Random, plan: Plan) -> list[str]:
    """Pick this world's decoy kinds (each with probability 0.6, never none)."""
    kinds = [k for k in DECOY_KINDS if rng.random() < 0.6]
    if not any(e.depth for e in plan.effects.values()):
        kinds = [k for k in kinds if k != "early_victim_alert"]
    if not kinds:
        kinds = [rng.choice(DECOY_KINDS[:3])]
    return kinds


def _harmless_kind(rng: random.Random, svc: Service) -> str:
    if svc.store is not None:
        return rng.choice(("infra", "config"))
    return rng.choice(_HARMLESS_KINDS)


def add_background_changes(rng: random.Random, plan: Plan, book: ChangeBook) -> None:
    """Add the ordinary harmless changes of a working day, away from the onset and never on the origin.

    Without decoys they all land at least 30 minutes before the onset (or not at all).
    """
    others = [s for s in plan.services if s.name != plan.origin]
    count = rng.randint(2, 4) + len(plan.services) // 8
    if "late_change" in plan.decoys or "near_change" in plan.decoys:
        spans = [(60, plan.onset - 15 * 60), (plan.onset + _LATE_MIN_S, plan.duration_s - 60)]
    elif plan.decoys:
        spans = [(60, plan.onset - 15 * 60)]
    else:
        spans = [(60, plan.onset - 30 * 60)]
    spans = [(a, b) for a, b in spans if b > a]
    if not spans:
        return
    if "late_change" not in plan.decoys:
        spans = spans[:1]
    for _ in range(count):
        a, b = rng.choice(spans)
        svc = rng.choice(others)
        plan.changes.append(book.draft(_harmless_kind(rng, svc), svc, rng.randint(a, b), harmful=False).change)
    _earlier_origin_change(rng, plan, book)


def _earlier_origin_change(rng: random.Random, plan: Plan, book: ChangeBook) -> None:
    """Sometimes give a change-caused origin an earlier, harmless change of its own (teams ship twice a day).

    It lands at least 25 minutes before the culprit, so the culprit stays the origin's last change before
    the onset and the truth stays unambiguous.
    """
    if plan.culprit is None or rng.random() < 0.65:
        return
    culprit = next(c for c in plan.changes if c.id == plan.culprit)
    latest = culprit.ts - 25 * 60
    if latest <= 60:
        return
    origin = next(s for s in plan.services if s.name == plan.origin)
    kind = culprit.kind if rng.random() < 0.6 else _harmless_kind(rng, origin)
    ts = rng.randint(60, latest)
    for _ in range(5):  # a setting's history must chain: the earlier change must not touch the culprit's key
        earlier = book.draft(kind, origin, ts, harmful=False).change
        if earlier.kind != "config" or earlier.details["key"] != culprit.details.get("key"):
            break
    else:
        return
    plan.changes.append(earlier)
    plan.notes.append(f"earlier_change_on_origin={earlier.id}")


def add_decoys(rng: random.Random, plan: Plan, book: ChangeBook) -> None:
    """Add the decoys named in ``plan.decoys``: changes and noisy error sources.

    Noisy rates are relative: 1.0 is the bystander's normal line rate.
    """
    by_name = {s.name: s for s in plan.services}
    victims = [n for n, e in plan.effects.items() if e.depth]
    others = [s for s in plan.services if s.name != plan.origin]
    if "near_change" in plan.decoys:
        for i in range(rng.randint(1, 2)):
            if i == 0 and plan.alerted != plan.origin and rng.random() < 0.6:
                svc = by_name[plan.alerted]
            elif victims and rng.random() < 0.4:
                svc = by_name[rng.choice(victims)]
            else:
                svc = rng.choice(others)
            ts = plan.onset - rng.randint(30, 10 * 60)
            plan.changes.append(book.draft(_harmless_kind(rng, svc), svc, max(30, ts), harmful=False).change)
    if "late_change" in plan.decoys:
        latest = min(plan.duration_s - 120, plan.onset + 40 * 60)
        for _ in range(rng.randint(1, 2)):
            on_origin = rng.random() < 0.5
            svc = by_name[plan.origin] if on_origin else rng.choice(others)
            ts = rng.randint(plan.onset + _LATE_MIN_S, max(plan.onset + _LATE_MIN_S + 1, latest))
            kind = plan.category if on_origin and plan.culprit else _harmless_kind(rng, svc)
            if kind not in ("deploy", "config", "feature_flag", "db_migration", "infra"):
                kind = _harmless_kind(rng, svc)
            plan.changes.append(book.draft(kind, svc, ts, harmful=False).change)
    if "noisy_errors" in plan.decoys:
        bystanders = [s.name for s in plan.services if s.store is None and s.name not in plan.effects] or \
            [s.name for s in plan.services if s.store is None and s.name != plan.origin]
        for _ in range(rng.randint(1, 2)):
            noisy = rng.choice(bystanders)
            template = rng.choice(NOISY_DECOY)
            if rng.random() < 0.5:
                start = rng.randint(0, max(1, plan.duration_s - 6 * 60))
                plan.noisy.append(NoisySource(noisy, template, start, start + rng.randint(3, 6) * 60,
                                              rng.uniform(4.0, 10.0)))
            else:
                plan.noisy.append(NoisySource(noisy, template, 0, plan.duration_s, rng.uniform(0.15, 0.4)))


def add_recovery(rng: random.Random, plan: Plan, book: ChangeBook) -> None:
    """Sometimes end a change-caused fault with a rollback of the culprit (itself a late change)."""
    if plan.culprit is None or "late_change" not in plan.decoys or rng.random() < 0.6:
        return
    culprit = next(c for c in plan.changes if c.id == plan.culprit)
    end = plan.onset + rng.randint(20, 45) * 60
    if end > plan.duration_s - 10 * 60:
        return
    plan.changes.append(book.rollback(culprit, end - rng.randint(60, 180)))
    for eff in plan.effects.values():
        eff.end = end + eff.depth * rng.randint(30, 90)
    plan.notes.append(f"recovered_after_rollback_at_s={end}")
