"""The incident world generator behind ``pm worlds generate``.

Writes worlds in the format of ``../shared/spec/world-format.md`` (plus
``truth.yaml``), deterministic by seed: the same arguments give byte-identical
files. The work is split by concept: topology (:mod:`sandbox.gen_topology`),
fault and propagation (:mod:`sandbox.gen_fault`), changes
(:mod:`sandbox.gen_changes`), decoys (:mod:`sandbox.gen_decoys`), trigger,
alerts, tickets and chat (:mod:`sandbox.gen_triggers`), logs
(:mod:`sandbox.gen_logs`) and metrics (:mod:`sandbox.gen_metrics`).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from sandbox.gen_decoys import DECOY_KINDS
from sandbox.gen_fault import FAMILIES
from sandbox.gen_field import shape_files
from sandbox.gen_hard import thin_files
from sandbox.gen_logs import write_logs
from sandbox.gen_metrics import write_metrics
from sandbox.gen_model import GeneratorError, Plan, iso
from sandbox.gen_plan import plan_world

__all__ = ["DECOY_KINDS", "FAMILIES", "GeneratorError", "generate_suite", "generate_world"]

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_LIMITS = {"services": (4, 200), "duration_min": (30, 1440), "log_lines": (100, 5_000_000)}


def _check(family: str, name: str, **sizes: int) -> None:
    """Validate the arguments of :func:`generate_world`.

    Raises:
        GeneratorError: an argument is out of range; the message says what to pass.
    """
    if family not in FAMILIES:
        raise GeneratorError(f"unknown family {family!r}: use one of {', '.join(FAMILIES)}")
    if not _NAME.match(name):
        raise GeneratorError(f"bad world name {name!r}: use lowercase letters, digits, '-', '_' or '.' (≤ 64 chars)")
    for key, value in sizes.items():
        lo, hi = _LIMITS[key]
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise GeneratorError(f"{key} must be an integer from {lo} to {hi} (got {value!r}): pass a value in range")


def _jsonl(path: Path, records: Sequence[dict[str, object]]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec) + "\n")


def _flow(mapping: Mapping[str, object]) -> str:
    """Render a flat mapping as a YAML flow mapping (JSON text is valid YAML)."""
    return json.dumps(mapping)


def _write_small_files(out: Path, plan: Plan) -> None:
    """Write world.yaml, topology.yaml, changes, alerts, tickets and chat."""
    start, end = iso(plan.start, 0), iso(plan.start, plan.duration_s)
    world = [f"name: {plan.name}", f"window: {{start: {start}, end: {end}}}", f"trigger: {_flow(plan.trigger)}"]
    if plan.domain:
        world.append(f"domain: {plan.domain}")
    (out / "world.yaml").write_text("\n".join(world) + "\n", encoding="utf-8")
    topo = ["services:"]
    for s in plan.services:
        topo.append(f"  - {{name: {s.name}, calls: [{', '.join(s.calls)}], tier: {s.tier}}}")
    (out / "topology.yaml").write_text("\n".join(topo) + "\n", encoding="utf-8")
    _jsonl(out / "changes.jsonl", [
        {"id": c.id, "ts": iso(plan.start, c.ts), "kind": c.kind, "service": c.service, "author": c.author,
         "summary": c.summary, "details": c.details} for c in plan.changes])
    _jsonl(out / "alerts.jsonl", [{**a, "ts": iso(plan.start, int(a["ts"]))} for a in plan.alerts])  # type: ignore[call-overload]
    _jsonl(out / "tickets.jsonl", [{**t, "ts": iso(plan.start, int(t["ts"]))} for t in plan.tickets])  # type: ignore[call-overload]
    _jsonl(out / "chat.jsonl", [{**m, "ts": iso(plan.start, int(m["ts"]))} for m in plan.chat])  # type: ignore[call-overload]


def _write_truth(out: Path, plan: Plan) -> None:
    """Write truth.yaml: the root cause, free-text notes and a machine-readable ``meta`` block."""
    onset = iso(plan.start, plan.onset)
    affected = sorted(n for n in plan.effects if n != plan.origin)
    notes = (f"family={plan.family}; origin={plan.origin}; onset={onset}; alerted={plan.alerted}; "
             f"decoys={','.join(plan.decoys) or 'none'}; victims={','.join(affected) or 'none'}"
             + "".join(f"; {n}" for n in plan.notes))
    meta: dict[str, object] = {"family": plan.family, "onset": onset, "alerted_service": plan.alerted,
                               "decoys": plan.decoys, "affected": affected}
    if plan.shapes:
        meta["field"] = plan.shapes
    text = ("root_cause:\n"
            f"  change_id: {plan.culprit or 'null'}\n"
            f"  service: {plan.origin}\n"
            f"  category: {plan.category}\n"
            f"notes: {json.dumps(notes)}\n"
            f"meta: {json.dumps(meta)}\n")
    (out / "truth.yaml").write_text(text, encoding="utf-8")


def generate_world(out_dir: Path, *, family: str, seed: int, decoys: bool = True, services: int = 10,
                   duration_min: int = 120, log_lines: int = 3000, name: str | None = None,
                   hard: bool = False, field: bool = False) -> Path:
    """Generate one incident world into ``out_dir`` (created if missing; world files overwritten).

    Params:
        out_dir: the world directory itself.
        family: one of :data:`FAMILIES`.
        seed: the random seed; the same arguments always give byte-identical files.
        decoys: add decoys (see :data:`DECOY_KINDS`); False gives a clean, easy world.
        services: services in the topology, datastores included (4..200).
        duration_min: window length in minutes (30..1440).
        log_lines: about how many log lines to write (100..5,000,000).
        name: the world's name in world.yaml; defaults to the directory name.
        hard: the hard mode (:mod:`sandbox.gen_hard`: change storms, a second incident, slow onsets,
            flapping alerts, partial telemetry, a harmless change on a self-failing origin).
        field: the field mode (:mod:`sandbox.gen_field`: caller-side latency on every service, a failing
            callee whose requests collapse while the entry's errors rise more, a pre-onset wobble,
            low-traffic services with noisy latency, downstream noise under a silent origin).

    Raises:
        GeneratorError: an argument is out of range or the directory cannot be written.

    Returns:
        ``out_dir``.
    """
    out_dir = Path(out_dir)
    name = name or out_dir.name
    _check(family, name, services=services, duration_min=duration_min, log_lines=log_lines)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise GeneratorError(f"seed must be an integer (got {seed!r}): pass --seed 42")
    # A string seed hashes the same on every run and platform (unlike hash()), so output is reproducible.
    rng = random.Random(f"pm-world/{family}/{seed}/{services}/{duration_min}/{int(decoys)}")
    hard_rng = random.Random(f"pm-world-hard/{family}/{seed}/{services}/{duration_min}") if hard else None
    field_rng = random.Random(f"pm-world-field/{family}/{seed}/{services}/{duration_min}") if field else None
    plan = plan_world(rng, name=name, family=family, services=services, duration_min=duration_min,
                      decoys=decoys, hard=hard_rng, field=field_rng)
    log_rng = random.Random(rng.getrandbits(64))
    metric_rng = random.Random(rng.getrandbits(64))
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_small_files(out_dir, plan)
        write_logs(out_dir / "logs.jsonl", log_rng, plan, log_lines)
        write_metrics(out_dir / "metrics.jsonl", metric_rng, plan)
        if field_rng is not None:
            shape_files(field_rng, out_dir, plan)
        if hard_rng is not None:
            thin_files(hard_rng, out_dir, plan)
        _write_truth(out_dir, plan)
    except OSError as exc:
        raise GeneratorError(f"cannot write world to {out_dir}: {exc.strerror}; pick a writable --out directory") from exc
    return out_dir


def generate_suite(out_dir: Path, *, count: int, seed: int, families: Sequence[str] | None = None,
                   decoys: bool = True, hard: bool = False, field: bool = False) -> list[Path]:
    """Generate ``count`` worlds under ``out_dir``, round-robin over ``families``.

    Worlds are named ``gen-0000-deploy``, ``gen-0001-feature_flag``, ...; world ``i``
    uses seed ``seed * 10007 + i`` so suites with different seeds do not overlap.

    Raises:
        GeneratorError: ``count`` is not positive or a family is unknown.

    Returns:
        The world directories, in order.
    """
    fams = tuple(families) if families else FAMILIES
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise GeneratorError(f"count must be a positive integer (got {count!r}): pass --count 10")
    for fam in fams:
        if fam not in FAMILIES:
            raise GeneratorError(f"unknown family {fam!r}: use one of {', '.join(FAMILIES)}")
    out = Path(out_dir)
    paths = []
    for i in range(count):
        fam = fams[i % len(fams)]
        paths.append(generate_world(out / f"gen-{i:04d}-{fam}", family=fam, seed=seed * 10007 + i, decoys=decoys,
                                    hard=hard, field=field))
    return paths
