"""The generator's hard mode (``generate_world(..., hard=True)``): what real incident windows hold.

On top of an ordinary world (decoys included) a hard world gets:

* a **change storm**: 8–20 harmless changes on other services in the hour before the onset;
* for origins that fail **on their own** (``dependency``: a datastore or service degrading; ``capacity``:
  a traffic surge saturating it) a harmless change **on the origin** 13–16 minutes before the onset — an
  exporter upgrade, a backup schedule, a log threshold — that a reader must not blame;
* a **second, unrelated incident** earlier in the window: a bystander's error rate and latency rise for
  4–8 minutes 25–50 minutes before the onset, with its own error lines and a resolved alert;
* **slow, canary-style onsets**: the fault ramps up over 6–14 minutes instead of 0.5–2.5;
* **flapping alerts**: a low-severity alert on a healthy bystander that fires every 8–20 minutes;
* **partial telemetry** (:func:`thin_files`): a bystander's metrics missing for 20–40 minutes, 6 % of all
  samples dropped, and one victim that ships no logs;
* **stronger seasonality** (:func:`thin_files`): traffic and CPU follow an hourly wave of ±10–25 % on top
  of the daily sine.

Truth is unchanged by all of it: the origin and culprit (or ``null``) stay what the plan chose.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

from sandbox.gen_changes import ChangeBook
from sandbox.gen_model import Change, Effect, NoisySource, Plan, Service
from sandbox.world import parse_ts

STORM = (8, 20)
# Changes on a self-failing origin that cannot produce its failure: (kind, summary, details).
_OWN_HARMLESS = (
    ("infra", "Upgrade {svc} metrics exporter 0.21.0 -> 0.24.1", {"resource": "{svc}", "action": "exporter_upgrade"}),
    ("config", "Move {svc} nightly backup schedule to 02:30 UTC",
     {"key": "backup.schedule", "from": "0 1 * * *", "to": "30 2 * * *"}),
    ("config", "Raise {svc} log level threshold to WARN", {"key": "logging.level", "from": "INFO", "to": "WARN"}),
    ("config", "Set {svc} slow query log threshold to 500ms",
     {"key": "log_min_duration_statement", "from": "1000ms", "to": "500ms"}),
    ("infra", "Rotate {svc} monitoring sidecar to node-exporter 1.8", {"resource": "{svc}", "action": "sidecar_update"}),
)
_SECOND_INCIDENT = (
    "Batch export failed: timeout writing to s3://reports-{id}",
    "Upstream cache refresh failed: connection reset by peer",
    "Scheduled job reconcile-{id} failed after 3 retries",
)
_SELF_FAILING = ("dependency", "capacity")


def harden_changes(rng: random.Random, plan: Plan, book: ChangeBook) -> None:
    """Add the change storm and, for self-failing origins, the harmless change on the origin (before renumbering)."""
    others = [s for s in plan.services if s.name != plan.origin]
    kinds = ("deploy",) * 6 + ("config",) * 3 + ("feature_flag",) * 2 + ("infra",)
    for _ in range(rng.randint(*STORM)):
        svc = rng.choice(others)
        kind = rng.choice(("infra", "config")) if svc.store is not None else rng.choice(kinds)
        ts = rng.randint(max(60, plan.onset - 60 * 60), max(61, plan.onset - 90))
        plan.changes.append(book.draft(kind, svc, ts, harmful=False).change)
    if plan.family in _SELF_FAILING:
        origin = next(s for s in plan.services if s.name == plan.origin)
        kind, summary, details = rng.choice(_OWN_HARMLESS)
        drafted = book.draft("config" if kind == "config" else "infra", origin,
                             max(60, plan.onset - rng.randint(13 * 60, 16 * 60)), harmful=False).change
        plan.changes.append(Change(drafted.id, drafted.ts, kind, origin.name, drafted.author,
                                   summary.format(svc=origin.name),
                                   {k: v.format(svc=origin.name) for k, v in details.items()}))
        plan.notes.append("hard: harmless change on the origin before the onset")
    plan.notes.append("hard: change storm")


def harden_world(rng: random.Random, plan: Plan) -> None:
    """Slow the onset, add a second unrelated incident and a flapping alert (after alerts and trigger exist)."""
    slow = rng.randint(6 * 60, 14 * 60)
    for eff in plan.effects.values():
        eff.ramp = max(eff.ramp, slow)
    bystanders = [s for s in plan.services if s.name not in plan.effects and s.store is None] or \
        [s for s in plan.services if s.name not in plan.effects]
    if bystanders and plan.onset > 30 * 60:
        other: Service = rng.choice(bystanders)
        start = max(60, plan.onset - rng.randint(25 * 60, min(50 * 60, plan.onset - 60)))
        end = start + rng.randint(4 * 60, 8 * 60)
        template = rng.choice(_SECOND_INCIDENT)
        plan.effects[other.name] = Effect(other.name, start, end, 60, err_add=rng.uniform(0.06, 0.2),
                                          lat_x=rng.uniform(1.3, 2.0))
        plan.noisy.append(NoisySource(other.name, template, start, end, per_min=rng.uniform(6, 20)))
        plan.alerts.append({"id": f"hard-{rng.randint(1000, 9999)}", "ts": start + 120, "source": "alertmanager",
                            "service": other.name, "severity": "critical",
                            "title": f"{other.name} error rate above 5%",
                            "labels": {"service": other.name, "alertname": "HighErrorRate", "status": "resolved"}})
        plan.notes.append(f"hard: second incident on {other.name}")
        bystanders = [s for s in bystanders if s.name != other.name] or bystanders
    flapper = rng.choice(bystanders or plan.services)
    period = rng.randint(8, 20) * 60
    for k, t in enumerate(range(rng.randint(60, period), plan.duration_s - 60, period)):
        plan.alerts.append({"id": f"flap-{k:03d}-{rng.randint(100, 999)}", "ts": t, "source": "alertmanager",
                            "service": flapper.name, "severity": "warning",
                            "title": rng.choice(("Disk usage 85% on {svc}", "{svc} consumer lag high",
                                                 "{svc} pod restarts")).format(svc=flapper.name),
                            "labels": {"service": flapper.name, "alertname": "Flapping"}})
    plan.alerts.sort(key=lambda a: (int(a["ts"]), str(a["id"])))  # type: ignore[call-overload]


def thin_files(rng: random.Random, out: Path, plan: Plan) -> None:
    """Partial telemetry and an hourly traffic wave, applied to the written metrics and logs."""
    bystanders = [s.name for s in plan.services if s.name not in plan.effects] or [plan.services[-1].name]
    gap_svc = rng.choice(bystanders)
    gap_start = plan.start.timestamp() + rng.randint(0, max(1, plan.duration_s - 40 * 60))
    gap_end = gap_start + rng.randint(20, 40) * 60
    wave, phase = rng.uniform(0.1, 0.25), rng.uniform(0, 2 * math.pi)
    start_s = plan.start.timestamp()
    kept = []
    for raw in (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        rec = json.loads(raw)
        t = parse_ts(rec["ts"])
        if rec["service"] == gap_svc and gap_start <= t < gap_end:
            continue
        if rng.random() < 0.06:
            continue
        if rec["name"] in ("requests_per_s", "cpu_util"):
            factor = 1 + wave * math.sin(2 * math.pi * (t - start_s) / 3600 + phase)
            rec["value"] = round(rec["value"] * factor, 3) if rec["name"] == "requests_per_s" else \
                round(min(1.0, rec["value"] * (1 + 0.5 * (factor - 1))), 3)
        kept.append(json.dumps(rec))
    (out / "metrics.jsonl").write_text("\n".join(kept) + "\n", encoding="utf-8")
    victims = sorted(n for n, e in plan.effects.items() if e.depth)
    if victims:
        silent = rng.choice(victims)
        lines = [raw for raw in (out / "logs.jsonl").read_text(encoding="utf-8").splitlines()
                 if json.loads(raw).get("service") != silent]
        (out / "logs.jsonl").write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
    plan.notes.append(f"hard: metrics gap on {gap_svc}; logs of {victims and silent or 'nobody'} not shipped")

