"""metrics.jsonl for a generated world: one sample per service, metric and minute.

Baselines carry noise and a daily-seasonality drift on traffic; the fault's
effects (see :class:`sandbox.gen_model.Effect`) bend them from their start on.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

from sandbox.gen_model import Plan, iso, strength

BASE_METRICS = ("requests_per_s", "error_rate", "latency_p95_ms", "cpu_util")


def _metric_names(rng: random.Random, plan: Plan) -> dict[str, tuple[str, ...]]:
    """Decide which metrics each service reports: the four basics plus, per world, memory and connections."""
    with_mem = rng.random() < 0.5
    with_conn = rng.random() < 0.6
    sql = {s.name for s in plan.services if s.store == "sql"}
    names: dict[str, tuple[str, ...]] = {}
    for s in plan.services:
        extra: list[str] = []
        eff = plan.effects.get(s.name)
        if (with_mem and s.store is None) or s.store == "cache" or (eff and eff.mem_to is not None):
            extra.append("mem_util")
        if (with_conn and (s.name in sql or sql.intersection(s.calls))) or (eff and eff.conn_to is not None):
            extra.append("db_connections")
        names[s.name] = BASE_METRICS + tuple(extra)
    return names


def write_metrics(path: Path, rng: random.Random, plan: Plan) -> int:
    """Write ``path`` with one sample per service, metric and 60 s step; returns the sample count."""
    names = _metric_names(rng, plan)
    amp = rng.uniform(0.08, 0.3)
    peak_hour = rng.uniform(12, 20)
    base = {}
    for s in plan.services:
        base[s.name] = {
            "rps": rng.uniform(20, 400) if s.store else rng.uniform(60, 450),
            "err": rng.uniform(0.0015, 0.011), "lat": rng.uniform(20, 240), "cpu": rng.uniform(0.15, 0.47),
            "mem": rng.uniform(0.3, 0.65), "max_conn": rng.choice((100, 150, 200, 300, 500)),
            "conn": rng.uniform(0.15, 0.45),
        }
    start_hour = plan.start.hour + plan.start.minute / 60
    out: list[str] = []
    mem_walk = {s.name: 0.0 for s in plan.services}
    for step in range(plan.duration_s // 60):
        t = step * 60
        hour = start_hour + t / 3600
        # Daily seasonality: traffic follows a sine with a per-world peak hour (a common synthetic load model).
        season = 1 + amp * math.sin(2 * math.pi * (hour - peak_hour + 6) / 24)
        ts = iso(plan.start, t)
        for s in plan.services:
            b = base[s.name]
            eff = plan.effects.get(s.name)
            k = strength(eff, t) if eff else 0.0
            rps_x = 1 + ((eff.rps_x if eff else 1.0) - 1) * k
            rps = b["rps"] * season * rps_x * (1 + rng.gauss(0, 0.035))
            err = b["err"] * rng.uniform(0.6, 1.4) + (eff.err_add * k * rng.uniform(0.85, 1.15) if eff else 0.0)
            lat_x = 1 + ((eff.lat_x if eff else 1.0) - 1) * k * rng.uniform(0.8, 1.2)
            lat = b["lat"] * lat_x * (1 + rng.gauss(0, 0.05))
            cpu = b["cpu"] * (0.75 + 0.25 * season) * (1 + 0.35 * (rps_x - 1)) * (1 + rng.gauss(0, 0.04))
            if eff and eff.cpu_to is not None:
                cpu = cpu + (eff.cpu_to - cpu) * k + rng.gauss(0, 0.005) * k
            values = {"requests_per_s": round(max(0.0, rps), 2), "error_rate": round(min(0.99, max(0.0, err)), 4),
                      "latency_p95_ms": round(max(1.0, lat), 1), "cpu_util": round(min(1.0, max(0.01, cpu)), 3)}
            if "mem_util" in names[s.name]:
                mem_walk[s.name] = max(-0.05, min(0.05, mem_walk[s.name] + rng.gauss(0, 0.004)))
                mem = b["mem"] + mem_walk[s.name]
                if eff and eff.mem_to is not None:
                    mem = mem + (eff.mem_to - mem) * k
                values["mem_util"] = round(min(1.0, max(0.01, mem)), 3)
            if "db_connections" in names[s.name]:
                frac = b["conn"] * (0.8 + 0.2 * season) * (1 + rng.gauss(0, 0.05))
                if eff and eff.conn_to is not None:
                    frac = frac + (eff.conn_to - frac) * k
                values["db_connections"] = min(b["max_conn"], max(0, round(frac * b["max_conn"])))
            for name in names[s.name]:
                out.append(f'{{"ts": "{ts}", "service": "{s.name}", "name": "{name}", "value": {values[name]}}}')
    with path.open("w", encoding="utf-8", buffering=1 << 20) as fh:
        fh.write("\n".join(out))
        if out:
            fh.write("\n")
    return len(out)
