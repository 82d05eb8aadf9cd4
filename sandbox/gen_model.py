"""The world generator's data model: what a planned incident holds before it is written out.

Times inside a plan are whole seconds from the window start; they become
ISO-8601 ``Z`` strings only when files are written (:func:`iso`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sandbox.errors import WorldError


class GeneratorError(WorldError, ValueError):
    """Bad arguments to the world generator; the message says which and what to pass instead.

    A WorldError so the CLI prints it as a one-line ``pm: error:`` like other world problems.
    """


@dataclass
class Service:
    """A node of the topology. ``store`` is the datastore kind (sql, cache, ...) or None for an app."""

    name: str
    tier: str
    calls: list[str] = field(default_factory=list)
    store: str | None = None
    port: int | None = None


@dataclass
class Effect:
    """How the fault shows on one service: metric shifts and error lines from ``start`` on.

    ``err_add`` is added to the error rate at full strength; ``*_x`` multiply the
    baseline; ``*_to`` are saturation levels (0..1) the metric climbs to.
    ``log_rate`` is fault lines per minute relative to the service's normal line rate.
    """

    service: str
    start: int
    end: int | None
    ramp: int
    err_add: float
    lat_x: float = 1.0
    rps_x: float = 1.0
    cpu_to: float | None = None
    mem_to: float | None = None
    conn_to: float | None = None
    log_rate: float = 0.0
    templates: tuple[str, ...] = ()
    fixed: dict[str, object] = field(default_factory=dict)
    depth: int = 0


@dataclass
class Change:
    """One record of changes.jsonl (``ts`` in seconds from the window start)."""

    id: str
    ts: int
    kind: str
    service: str
    author: str
    summary: str
    details: dict[str, object]


@dataclass
class NoisySource:
    """Unrelated error lines on a bystander service: a burst or a steady stream (a decoy)."""

    service: str
    template: str
    start: int
    end: int
    per_min: float


@dataclass
class Plan:
    """Everything one world holds, decided before any file is written."""

    name: str
    family: str
    start: datetime
    duration_s: int
    services: list[Service]
    origin: str
    onset: int
    category: str
    culprit: str | None
    mode: str = ""
    effects: dict[str, Effect] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)
    alerts: list[dict[str, object]] = field(default_factory=list)
    tickets: list[dict[str, object]] = field(default_factory=list)
    chat: list[dict[str, object]] = field(default_factory=list)
    noisy: list[NoisySource] = field(default_factory=list)
    trigger: dict[str, str] = field(default_factory=dict)
    alerted: str = ""
    decoys: list[str] = field(default_factory=list)
    domain: str | None = None
    log_style: str = "plain"
    trace_ids: bool = False
    notes: list[str] = field(default_factory=list)
    shapes: dict[str, object] = field(default_factory=dict)  # field mode's choices (sandbox.gen_field)


def iso(start: datetime, offset_s: float) -> str:
    """Return the ISO-8601 UTC ``Z`` string for ``offset_s`` seconds after ``start``."""
    return (start + timedelta(seconds=int(offset_s))).strftime("%Y-%m-%dT%H:%M:%SZ")


def strength(eff: Effect, t: int) -> float:
    """Return how strongly ``eff`` acts at ``t`` seconds (0..1), ramping up and down linearly."""
    if t < eff.start:
        return 0.0
    up = min(1.0, (t - eff.start + 1) / max(1, eff.ramp))
    if eff.end is not None and t >= eff.end:
        return max(0.0, up - (t - eff.end) / 120)
    return up
