"""The generator's field mode (``generate_world(..., field=True)``): the metrics-first shapes of real shops.

Issue #15 lists how a real microservice benchmark (injected faults, no logs, partial traces) looked where
our engine went wrong; none of our suites held those shapes. A field world is an ordinary world (decoys
included) in which, per world and at random:

* **every service has** ``caller_latency_p95_ms``: how long its callers (for a frontend: the ingress)
  waited on it, network included — its own ``latency_p95_ms`` times a small per-edge overhead plus a few
  milliseconds;
* **a failing callee** (all families but ``capacity``, when the origin has callers and does not fail by
  being slow): from the onset the origin's ``requests_per_s`` collapses by 50–85 % (callers give up,
  retries are cut off, breakers open), its callers' latency to it rises 1.5–3× while its own latency may
  stay flat, its own ``error_rate`` rises only modestly (+0.06–0.3; a flag: at most its rollout share),
  and the user-facing entry service's ``error_rate`` rises more (+0.1–0.8: fan-out and retries amplify)
  and at the same time (a synchronous call fails its caller within seconds, so victims start 0–30 s per
  hop after the origin, not minutes); the trigger is usually about the entry;
* **a pre-onset wobble**: a bystander's latency (and its callers' view of it) bumps 1.5–3× for 1–3 samples
  2–4 minutes before the onset, then settles;
* **low-traffic services** (0.1–0.5 req/s): request counts are Poisson, the error rate is a share of
  those few requests, and the latency p95 is noisy when healthy (heavy-tailed, single spikes of 5–20×);
  sometimes one of them is the origin;
* **downstream noise**: a callee of a silent origin (its failure shows only as errors and the request
  collapse) gets a small latency rise of 1.3–1.8× from about the onset.

What was chosen is written to ``truth.yaml`` (``meta.field`` and the notes), so tests and benches can
check it. Truth itself is unchanged: the origin and culprit (or ``null``) stay what the plan chose.
"""

from __future__ import annotations

import json
import math
import random
from collections import defaultdict
from pathlib import Path

from sandbox.gen_model import Effect, Plan, strength
from sandbox.gen_topology import callers_of
from sandbox.world import parse_ts

COLLAPSE = (0.5, 0.85)       # share of the origin's requests lost from the onset
CALLER_X = (1.5, 3.0)        # callers' latency to the failing origin, times its baseline
ORIGIN_ERR = (0.06, 0.3)     # the failing origin's own error-rate rise (share of its failed spans)
ENTRY_ERR = (0.1, 0.8)       # the entry's error-rate rise
WOBBLE_X = (1.5, 3.0)
DOWNSTREAM_X = (1.3, 1.8)
LOW_RPS = (0.1, 0.5)
SPIKE_X = (5.0, 20.0)

_P_CALLEE = 0.75             # of eligible worlds
_P_SILENT = 0.5              # origin's own latency stays flat (always with downstream noise)
_P_DOWNSTREAM = 0.5          # of callee-shaped worlds whose origin calls something
_P_WOBBLE = 0.5
_P_LOW = 0.6                 # worlds with low-traffic bystanders
_P_LOW_ORIGIN = 0.3          # callee-shaped app origins that are themselves low-traffic
_P_ENTRY_ALERTED = 0.7


def _entry(plan: Plan) -> str | None:
    """The user-facing service that suffers the origin's fault: a frontend victim if any, else the deepest."""
    victims = [(e.depth, n) for n, e in plan.effects.items() if e.depth]
    if not victims:
        return None
    tiers = {s.name: s.tier for s in plan.services}
    fronts = [v for v in victims if tiers[v[1]] == "frontend"]
    return max(fronts or victims)[1]


def shape_fault(rng: random.Random, plan: Plan) -> None:
    """Decide this world's field shapes and bend the fault's effects to them (right after the fault is planned).

    Records every choice in ``plan.shapes`` (written to ``truth.yaml`` as ``meta.field``).
    """
    services = {s.name: s for s in plan.services}
    origin, eff = services[plan.origin], plan.effects[plan.origin]
    shapes: dict[str, object] = {"caller_latency": True}
    plan.shapes = shapes
    entry = _entry(plan)
    eligible = (plan.family != "capacity" and plan.mode != "slow" and entry is not None
                and bool(callers_of(plan.services, origin.name)))
    low_origin = False
    if eligible and rng.random() < _P_CALLEE:
        assert entry is not None
        drop = rng.uniform(*COLLAPSE)
        caller_x = rng.uniform(*CALLER_X)
        callees = [c for c in origin.calls if c not in plan.effects]
        downstream = bool(callees) and plan.category != "db_migration" and rng.random() < _P_DOWNSTREAM
        silent = downstream or (plan.category != "db_migration" and rng.random() < _P_SILENT)
        low_origin = origin.store is None and rng.random() < _P_LOW_ORIGIN
        eff.rps_x = 1 - drop
        # A flag fails only its rolled-out share: never more errors than that share allows.
        new_err = rng.uniform(*ORIGIN_ERR)
        eff.err_add = min(eff.err_add, new_err) if plan.category == "feature_flag" else new_err
        if silent:
            eff.lat_x = 1.0
        if eff.templates:
            eff.log_rate = min(0.9, max(0.12, eff.err_add * rng.uniform(0.9, 1.8)))
        top = rng.uniform(max(ENTRY_ERR[0], eff.err_add + 0.05), ENTRY_ERR[1])
        if low_origin:
            # Only the share of the entry's traffic that needs the rarely used service can fail.
            top = rng.uniform(0.03, 0.15)
        depth = plan.effects[entry].depth
        for name, victim in plan.effects.items():
            if not victim.depth:
                continue
            # A synchronous call fails its caller in the same second: victims follow the origin within the
            # minute sample, not minutes later.
            victim.start = eff.start + rng.randint(0, 30 * victim.depth)
            victim.ramp = eff.ramp + rng.randint(0, 60)
            if low_origin:
                victim.err_add = top * rng.uniform(0.5, 1.0) if name != entry else top
                victim.lat_x = 1 + (victim.lat_x - 1) * rng.uniform(0.0, 0.2)
            elif name == entry:
                victim.err_add = top
            else:
                share = min(1.0, victim.depth / max(1, depth)) * rng.uniform(0.5, 1.0)
                victim.err_add = eff.err_add + (top - eff.err_add) * share
        shapes["callee"] = {"origin": origin.name, "entry": entry, "rps_drop": round(drop, 3),
                            "caller_latency_x": round(caller_x, 3), "origin_err": round(eff.err_add, 3),
                            "entry_err": round(top, 3), "own_latency_silent": silent}
        plan.notes.append(f"field: failing callee {origin.name} (requests -{drop:.0%}, caller latency x{caller_x:.2f},"
                          f" errors +{eff.err_add:.2f}; entry {entry} errors +{top:.2f})")
        if downstream:
            callee = rng.choice(callees)
            x = rng.uniform(*DOWNSTREAM_X)
            start = plan.onset + rng.randint(0, 120)
            shapes["downstream"] = {"service": callee, "latency_x": round(x, 3), "start_s": start,
                                    "ramp_s": rng.randint(60, 180)}
            plan.notes.append(f"field: downstream noise on {callee} (latency x{x:.2f}); origin latency silent")
    low: dict[str, float] = {}
    if low_origin:
        low[origin.name] = round(rng.uniform(*LOW_RPS), 3)
    taken = set(plan.effects)
    if isinstance(shapes.get("downstream"), dict):
        taken.add(str(shapes["downstream"]["service"]))  # type: ignore[index]
    if rng.random() < _P_LOW:
        pool = [s.name for s in plan.services if s.store is None and s.tier != "frontend" and s.name not in taken]
        for name in rng.sample(pool, min(len(pool), rng.randint(1, 2))):
            low[name] = round(rng.uniform(*LOW_RPS), 3)
    if low:
        shapes["low_traffic"] = {n: {"rps": r, "spike_p": round(rng.uniform(0.04, 0.1), 3)} for n, r in sorted(low.items())}
        plan.notes.append(f"field: low-traffic {', '.join(sorted(low))}"
                          + (" (the origin among them)" if low_origin else ""))
    # The wobble is a normal-traffic bystander's: on a low-traffic one it would drown in its own noise.
    bystanders = [s.name for s in plan.services if s.name not in taken and s.name not in low]
    if bystanders and plan.onset >= 6 * 60 and rng.random() < _P_WOBBLE:
        who = rng.choice(bystanders)
        back = rng.randint(2, 4)
        samples = rng.randint(1, min(3, back - 1))
        first = plan.onset // 60 - back
        x = rng.uniform(*WOBBLE_X)
        shapes["wobble"] = {"service": who, "first_step": first, "samples": samples, "latency_x": round(x, 3)}
        plan.notes.append(f"field: pre-onset wobble on {who} (latency x{x:.2f} for {samples} min, "
                          f"{back} min before the onset)")


def shape_alerted(rng: random.Random, plan: Plan, alerted: str) -> str:
    """The service the trigger is about: in a failing-callee world usually the entry, as in the field."""
    callee = plan.shapes.get("callee")
    if isinstance(callee, dict) and rng.random() < _P_ENTRY_ALERTED:
        return str(callee["entry"])
    return alerted


def _poisson(rng: random.Random, lam: float) -> int:
    """A Poisson draw (Knuth's product method below 30, a rounded normal above)."""
    if lam >= 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, prod = math.exp(-lam), 0, rng.random()
    while prod > limit:
        k += 1
        prod *= rng.random()
    return k


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else 1.0


def _bump(eff: Effect | None, t: int) -> float:
    return strength(eff, t) if eff is not None else 0.0


def shape_files(rng: random.Random, out: Path, plan: Plan) -> None:
    """Rewrite metrics.jsonl with the shapes chosen by :func:`shape_fault` and add ``caller_latency_p95_ms``."""
    path = out / "metrics.jsonl"
    records = [json.loads(raw) for raw in path.read_text(encoding="utf-8").splitlines()]
    start_s = plan.start.timestamp()
    series: dict[tuple[str, str], dict[int, dict]] = defaultdict(dict)
    for rec in records:
        series[(rec["service"], rec["name"])][int(parse_ts(rec["ts"]) - start_s)] = rec
    onset = plan.onset
    shapes = plan.shapes
    drop: set[int] = set()  # ids of records to leave out (a low-traffic minute without requests)

    wobble = shapes.get("wobble")
    if isinstance(wobble, dict):
        first, samples = int(wobble["first_step"]), int(wobble["samples"])
        for t, rec in series[(str(wobble["service"]), "latency_p95_ms")].items():
            if first <= t // 60 < first + samples:
                rec["value"] = round(rec["value"] * float(wobble["latency_x"]) * rng.uniform(0.92, 1.08), 1)
    down = shapes.get("downstream")
    if isinstance(down, dict):
        origin_end = plan.effects[plan.origin].end
        noise = Effect(str(down["service"]), int(down["start_s"]), origin_end, int(down["ramp_s"]), err_add=0.0)
        for t, rec in series[(noise.service, "latency_p95_ms")].items():
            k = strength(noise, t)
            if k:
                rec["value"] = round(rec["value"] * (1 + (float(down["latency_x"]) - 1) * k * rng.uniform(0.85, 1.15)), 1)
    low = shapes.get("low_traffic")
    if isinstance(low, dict):
        for name, cfg in sorted(low.items()):
            rps = series[(name, "requests_per_s")]
            healthy = _median([r["value"] for t, r in rps.items() if t < onset - 10 * 60] or [1.0]) or 1.0
            errs, lats = series[(name, "error_rate")], series[(name, "latency_p95_ms")]
            for t in sorted(rps):
                count = _poisson(rng, cfg["rps"] * rps[t]["value"] / healthy * 60)
                rps[t]["value"] = round(count / 60, 3)
                if count == 0:  # no request this minute: no error share and no latency to report
                    drop.update(id(r) for r in (errs.get(t), lats.get(t)) if r is not None)
                    continue
                if t in errs:
                    p = min(1.0, errs[t]["value"])
                    errs[t]["value"] = round(sum(rng.random() < p for _ in range(count)) / count, 4)
                if t in lats:
                    value = lats[t]["value"] * math.exp(rng.gauss(0, 0.3))
                    if rng.random() < cfg["spike_p"]:
                        value *= rng.uniform(*SPIKE_X)
                    lats[t]["value"] = round(value, 1)
    callee = shapes.get("callee")
    origin_eff = plan.effects[plan.origin] if isinstance(callee, dict) else None
    overhead = {s.name: (rng.uniform(1.02, 1.25), rng.uniform(1.0, 6.0)) for s in plan.services}
    kept: list[str] = []
    for rec in records:
        if id(rec) in drop:
            continue
        kept.append(json.dumps(rec))
        if rec["name"] != "latency_p95_ms":
            continue
        mult, extra = overhead[rec["service"]]
        value = rec["value"] * mult * (1 + rng.gauss(0, 0.04)) + extra
        if origin_eff is not None and rec["service"] == plan.origin and isinstance(callee, dict):
            k = _bump(origin_eff, int(parse_ts(rec["ts"]) - start_s))
            own = 1 + (origin_eff.lat_x - 1) * k
            value *= max(1.0, (1 + (float(callee["caller_latency_x"]) - 1) * k * rng.uniform(0.85, 1.15)) / own)
        kept.append(json.dumps({"ts": rec["ts"], "service": rec["service"], "name": "caller_latency_p95_ms",
                                "value": round(max(1.0, value), 1)}))
    path.write_text("\n".join(kept) + "\n", encoding="utf-8")
