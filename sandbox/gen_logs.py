"""logs.jsonl for a generated world: steady traffic, background noise, fault errors and noisy decoys.

Sized by a total line budget: every source's rate is relative to a service's
normal line rate, so the budget fixes that rate once and the file comes out
close to ``log_lines`` lines whatever the fault looks like. Lines are formatted
by hand (not per-line yaml/dict dumps) so 200k lines take about a second.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

from sandbox.gen_model import Effect, Plan, iso, strength
from sandbox.gen_text import fill
from sandbox.gen_vocab import DEBUG_LINES, INFO_KV, INFO_PLAIN, NOISE


def _count(rng: random.Random, expected: float) -> int:
    """Round ``expected`` to a whole count at random, keeping the mean (cheaper than a Poisson draw)."""
    whole = int(expected)
    return whole + (1 if rng.random() < expected - whole else 0)


def _hosts(rng: random.Random, plan: Plan) -> dict[str, list[str]]:
    pods = rng.random() < 0.35
    hosts: dict[str, list[str]] = {}
    for s in plan.services:
        n = rng.randint(2, 6)
        if pods:
            rs = f"{rng.getrandbits(32):08x}"[:rng.choice((8, 9, 10))]
            hosts[s.name] = [f"{s.name}-{rs}-{rng.getrandbits(20):05x}" for _ in range(n)]
        else:
            hosts[s.name] = [f"{s.name}-{i}" for i in range(1, n + 1)]
    return hosts


def write_logs(path: Path, rng: random.Random, plan: Plan, log_lines: int) -> int:
    """Write ``path`` with about ``log_lines`` lines, sorted by ``ts``; datastores log nothing.

    Params:
        path: the logs.jsonl file to (over)write.
        rng: a random stream of its own (so log size never shifts the rest of the world).
        plan: the planned world.
        log_lines: the line budget.

    Returns:
        The number of lines written.
    """
    apps = [s.name for s in plan.services if s.store is None]
    minutes = plan.duration_s // 60
    weight = {name: rng.uniform(0.6, 1.4) for name in apps}
    # Units of "one service's normal rate for one minute" spent on each source, to size the base rate.
    units = sum(weight.values()) * minutes
    for eff in plan.effects.values():
        if eff.service in weight and eff.templates:
            units += weight[eff.service] * eff.log_rate * sum(strength(eff, m * 60 + 30) for m in range(minutes))
    for src in plan.noisy:
        units += weight.get(src.service, 1.0) * src.per_min * (src.end - src.start) / 60
    base = log_lines / units
    hosts = _hosts(rng, plan)
    noise_p = rng.uniform(0.015, 0.035)
    debug_p = rng.choice((0.0, 0.0, 0.02, 0.05))
    info = INFO_KV if plan.log_style == "kv" else INFO_PLAIN
    # One strftime per minute, not per second: seconds are appended to the minute's prefix.
    prefixes = [iso(plan.start, m * 60)[:-4] for m in range(minutes + 1)]
    stamps = [f"{prefixes[s // 60]}:{s % 60:02d}Z" for s in range(plan.duration_s)]
    dumps = json.JSONEncoder(ensure_ascii=True).encode
    lines: list[tuple[int, str]] = []

    def emit(t: int, svc: str, level: str, msg: str) -> None:
        host = rng.choice(hosts[svc])
        tail = f', "trace_id": "{rng.getrandbits(64):016x}"' if plan.trace_ids and level != "DEBUG" \
            and rng.random() < 0.6 else ""
        lines.append((t, f'{{"ts": "{stamps[t]}", "service": "{svc}", "level": "{level}", '
                         f'"message": {dumps(msg)}, "host": "{host}"{tail}}}'))

    peers = {s.name: (s.calls or [s.name]) for s in plan.services}
    all_names = [s.name for s in plan.services]
    for svc in apps:
        rate = base * weight[svc]
        fixed = {"svc": svc}
        for m in range(minutes):
            for _ in range(_count(rng, rate)):
                t = m * 60 + rng.randrange(60)
                r = rng.random()
                if r < noise_p:
                    fixed["peer"] = rng.choice(all_names)
                    emit(t, svc, rng.choice(("WARN", "ERROR")), fill(rng, rng.choice(NOISE), fixed))
                elif r < noise_p + debug_p:
                    fixed["peer"] = rng.choice(peers[svc])
                    emit(t, svc, "DEBUG", fill(rng, rng.choice(DEBUG_LINES), fixed))
                else:
                    emit(t, svc, "INFO", fill(rng, rng.choice(info), fixed))
    for eff in plan.effects.values():
        if eff.service not in weight or not eff.templates:
            continue
        rate = base * weight[eff.service] * eff.log_rate
        for t0, n in _fault_minutes(rng, eff, minutes, rate):
            for _ in range(n):
                template = eff.templates[0] if rng.random() < 0.5 else rng.choice(eff.templates)
                r = rng.random()
                level = ("WARN" if r < 0.1 else "ERROR") if eff.depth else ("FATAL" if r < 0.03 else "ERROR")
                emit(max(eff.start, t0 + rng.randrange(60)), eff.service, level, fill(rng, template, eff.fixed))
    for src in plan.noisy:
        rate = base * weight.get(src.service, 1.0) * src.per_min
        for m in range(src.start // 60, min(minutes, (src.end + 59) // 60)):
            for _ in range(_count(rng, rate)):
                t = min(plan.duration_s - 1, m * 60 + rng.randrange(60))
                emit(t, src.service, "ERROR", fill(rng, src.template, {"svc": src.service}))
    lines.sort(key=lambda pair: pair[0])
    with path.open("w", encoding="utf-8", buffering=1 << 20) as fh:
        fh.write("\n".join(text for _, text in lines))
        if lines:
            fh.write("\n")
    return len(lines)


def _fault_minutes(rng: random.Random, eff: Effect, minutes: int, rate: float) -> Iterator[tuple[int, int]]:
    """Yield (minute start second, line count) for every minute the effect is active."""
    for m in range(eff.start // 60, minutes):
        s = strength(eff, m * 60 + 30)
        if s > 0:
            yield m * 60, _count(rng, rate * s)
