"""Short-window contrast of log evidence around the anchor, per service.

The metric contrast (contrast.py) asks what changed in the minutes around the
report; this module asks the same of the logs: error shapes never seen before
in the window that appear in that stretch, statements logged steadily before
it that stop in it, and callers whose error text starts naming a service in
it. Each is weighed against the service's own log noise in the window, so a
service that errs all day gains little from one more error shape. Nezha
(Yu et al., ESEC/FSE 2023) contrasts log-template counts of fault and
fault-free phases in the same spirit; this is our own minimal form of it.
"""

from __future__ import annotations

import math
from typing import Any

from agents.evidence.topology import mentioned_services

ERROR_LEVELS = ("ERROR", "FATAL")
# A new shape must show at least this often in the stretch (one line can be a stray).
MIN_NEW_LINES = 2
# A statement counts as stopped when its earlier rate predicts at least this many lines in the stretch
# (P(0 | Poisson 4) < 2%, as logtemplates.classify's "gone").
MIN_EXPECTED_STOP = 4.0
# Lines at which new-shape evidence reaches 1 - 1/e of its weight.
NEW_LINES_SCALE = 4.0
WEIGHT_NEW = 1.0
WEIGHT_STOP = 0.5
# A caller's error text must name a service this many lines more than its earlier rate predicts.
MIN_NAMED_EXCESS = 2.0


def stretch(anchor: float, *, after_from_s: float, after_to_s: float, before_span_s: float) -> tuple[float, float, float]:
    """(before_from, split, stop) epoch s of the contrast stretches around the anchor."""
    split = anchor - after_from_s
    return split - before_span_s, split, anchor + after_to_s


def service_log_contrast(stats: list[dict[str, Any]], *, bounds: tuple[float, float, float],
                         history_s: float) -> dict[str, dict[str, Any]]:
    """Per service: new error shapes and stopped statements in the stretch, against its own log noise.

    Params: stats — logtemplates.template_stats entries counted with ``contrast=bounds``;
    bounds — (before_from, split, stop) epoch s; history_s — seconds of lines before ``split``.
    Returns: ``{service: {score, new_templates, new_lines, noise_lines, stopped}}`` for services with a
    non-zero score; ``score`` is WEIGHT_NEW x (new-shape strength) + WEIGHT_STOP x (stopped strength).
    """
    before_from, split, stop = bounds
    after_span = max(stop - split, 1.0)
    before_span = max(split - before_from, 1.0)
    per: dict[str, dict[str, Any]] = {}
    for entry in stats:
        svc = per.setdefault(entry["service"], {"new_lines": 0, "new_templates": 0, "err_before": 0,
                                                "err_prior": 0, "stopped": 0, "stop_expected": 0.0,
                                                "after_lines": 0})
        svc["after_lines"] += entry.get("c_after", 0)
        is_error = entry.get("level") in ERROR_LEVELS
        if is_error:
            svc["err_before"] += entry.get("c_before", 0)
            svc["err_prior"] += entry.get("c_prior", 0)
            if entry.get("c_prior", 0) == 0 and entry.get("c_after", 0) >= MIN_NEW_LINES:
                svc["new_lines"] += entry["c_after"]
                svc["new_templates"] += 1
        expected = entry.get("c_before", 0) * after_span / before_span
        if expected >= MIN_EXPECTED_STOP and entry.get("c_after", 0) == 0:
            svc["stopped"] += 1
            svc["stop_expected"] = max(svc["stop_expected"], expected)
    out: dict[str, dict[str, Any]] = {}
    for name, svc in per.items():
        # The service's own error noise: what its error lines predict for a stretch this long, from the
        # minutes just before and from the whole history (the larger: a bursty service is noisy too).
        noise = max(svc["err_before"] * after_span / before_span,
                    svc["err_prior"] * after_span / max(history_s, before_span))
        new = svc["new_lines"]
        new_strength = (1.0 - math.exp(-new / NEW_LINES_SCALE)) * new / (new + noise + 1.0) if new else 0.0
        stop_strength = 0.0
        if svc["stopped"] and svc["after_lines"] > 0:
            # Only a statement skipped while the service goes on logging: a silent service is another story.
            stop_strength = min(1.0, svc["stopped"] / 2) * (1.0 - math.exp(-svc["stop_expected"] / 8.0))
        score = WEIGHT_NEW * new_strength + WEIGHT_STOP * stop_strength
        if score > 0:
            out[name] = {"score": round(score, 4), "new_templates": svc["new_templates"], "new_lines": new,
                         "noise_lines": round(noise, 2), "stopped": svc["stopped"]}
    return out


def named_near(lines: list[dict[str, Any]], *, known: list[str], bounds: tuple[float, float, float],
               parse_ts: Any) -> dict[str, dict[str, float]]:
    """Services that callers' error text names in the stretch more than just before it.

    Params: lines — log lines; known — service names; bounds — (before_from, split, stop) epoch s;
    parse_ts — ISO → epoch s (or None).
    Returns: ``{named service: {caller: excess lines}}``.
    """
    before_from, split, stop = bounds
    ratio = (stop - split) / max(split - before_from, 1.0)
    counts: dict[tuple[str, str], list[int]] = {}
    cache: dict[tuple[str, str], set[str]] = {}
    for line in lines:
        level = str(line.get("level", "")).upper()
        if level not in ("WARN", "WARNING", "ERROR", "FATAL", "CRITICAL"):
            continue
        ts = parse_ts(line.get("ts"))
        if ts is None or ts < before_from or ts > stop:
            continue
        own = str(line.get("service") or "")
        message = str(line.get("message", ""))[:2000]
        key = (own, message)
        if key not in cache:
            cache[key] = mentioned_services(message, known, own)
        for callee in cache[key]:
            slot = counts.setdefault((callee, own), [0, 0])
            slot[0 if ts < split else 1] += 1
    out: dict[str, dict[str, float]] = {}
    for (callee, caller), (before, after) in counts.items():
        excess = after - before * ratio
        if excess >= MIN_NAMED_EXCESS:
            out.setdefault(callee, {})[caller] = round(excess, 2)
    return out
