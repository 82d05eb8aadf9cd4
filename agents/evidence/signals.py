"""The EVIDENCE phase's work: metric anomalies per service and log templates around the onset."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from statistics import median
from typing import Any

from agents.evidence import anomalies, logcontrast, logtemplates, skipped
from agents.evidence.timeutil import fmt_ts, parse_ts
from agents.evidence.toolcall import safe_call
from agents.evidence.topology import mentioned_services
from agents.evidence.traffic import COUNT_P, MIN_DROP, poisson_tail, request_series

# How much a metric family says about a service being broken (errors are the
# most direct symptom, traffic changes the least).
METRIC_WEIGHT = {"error": 1.0, "latency": 0.85, "_ms": 0.8, "cpu": 0.7, "mem": 0.7, "conn": 0.7,
                 "requests": 0.35}
# Fetch every line of small worlds; above this only WARN+ lines plus INFO samples.
FULL_FETCH_LINES = 60_000
SAMPLE_LINES = 15_000
CHART_POINTS = 60
LATE_ONSET_S = 180.0
# A latency series' healthy spike rate is read only from this many samples before the baseline's end or more
# (_spiky_latency).
SPIKE_HISTORY = 20
# Samples this far apart leave a gap in a series: what happened in between is unseen.
GAP_S = 300.0
# A request rate this much above its baseline is a surge, and resource series whose onset lies within
# LOAD_FOLLOW_S of it rose with the load: they do not date the service's failure (_beyond_load), and CPU that
# rose so is load, not a fault of the service's own. 0.3 is the capacity test's surge (engine.correlate); 300 s
# because resource series ramp up behind the requests (a CPU 3 min after them on alt11-006; not fitted further).
SURGE_SHIFT = 0.3
LOAD_FOLLOW_S = 300.0
# A series dates its service's onset only when at least this share as strong as the service's strongest one.
ONSET_STRENGTH_SHARE = 0.6
RECOVERED_BEFORE_S = 300.0
# A statement counts as skipped when silent since this long before the trigger: a metric onset can sit far
# earlier (an earlier event's excursion), but a fault is live by the time it is reported.
SKIP_RECENT_S = 180.0
# ... and judged over a few minutes only: a fault can be short, and the statement returns once it is over.
SKIP_SPAN_S = 420.0
# Count-based onset of an error rate (_count_onset): a sample whose error rate stands for fewer failed requests
# than this (rate x requests/s x step) is one failed request, which a healthy low-traffic service also has now
# and then; it never ends the search for the change point by itself.
MIN_ERRORS = 2.0
# A service whose samples each stand for at least this many requests is busy: its series' lone spikes are a noise
# process of their own, not a few requests sampled (anomalies._excursions).
BUSY_REQUESTS = 100.0
# Splits of the failed-request counts whose log-likelihood is within this of the best are as good as it (a
# 2-unit support interval, Edwards, "Likelihood", 1972): the earliest of them dates the onset.
CHANGE_SUPPORT = 2.0


def metric_weight(name: str) -> float:
    """Weight of a metric name in a service's anomaly score (0.5 for unknown names)."""
    lowered = name.lower()
    for key, weight in METRIC_WEIGHT.items():
        if key in lowered:
            return weight
    return 0.5


def baseline_end(start: float, anchor: float) -> float:
    """End of the baseline period: well before the trigger, so the incident does not poison it."""
    margin = min(900.0, max(120.0, 0.3 * (anchor - start)))
    return anchor - margin


def analyse_metrics(tools: Any, ctx: dict[str, Any], missing: list[str],
                    series_list: list[dict] | None = None) -> dict[str, Any]:
    """Analyse every metric series of the window.

    Params: tools — ToolSource; ctx — gather_context's output; missing — collects missing sources;
    series_list — the window's metrics.series items when already fetched (None: fetch them).
    Returns: ``{series: [...anomalous series...], services: {svc: {score, onset, metrics}}, chart: {...},
        baseline_end, coverage}`` (coverage: the mean share of its own grid each series filled, anomalies.coverage).
    """
    window = ctx["window"]
    start = parse_ts(window["start"])
    anchor = ctx["anchor"]
    b_end = baseline_end(start, anchor)
    if series_list is None:
        series_list = safe_call(tools, "metrics.series", missing, "metrics", start=window["start"],
                                end=window["end"]).get("series") or []
    if not series_list and "metrics" not in " ".join(missing):
        missing.append("metrics (no samples in the window)")
    out_series: list[Any] = []
    services: dict[str, Any] = {}
    onsets: dict[str, list[tuple[float, float]]] = {}
    loaded: dict[str, list[tuple[float, float]]] = {}
    surges: dict[str, float] = {}
    cpu_onsets: dict[str, list[float]] = {}
    earliest: dict[str, dict[float, float]] = {}
    chart: dict[str, Any] = {}
    traffic = _request_rates(series_list)
    covered: list[float] = []
    own_work = _own_latencies(series_list)
    for item in series_list:
        service, name = str(item.get("service") or "unknown"), str(item.get("name") or "")
        points = [(parse_ts(p[0]), p[1]) for p in item.get("points") or [] if isinstance(p, list | tuple) and len(p) == 2]
        points = [(t, v) for t, v in points if t is not None and isinstance(v, int | float)]
        covered.append(anomalies.coverage([t for t, _ in points]))
        busy = _busy(traffic.get(service), points)
        work = own_work.get((service, _own_name(name)))
        beyond = bool(work) and not busy
        if beyond:
            # A quiet service's p95 is the slowest of a handful of requests: lone multi-second requests come and go
            # in health, and its callers' view of it repeats them. What its callers wait beyond its own work (the
            # wait gap: requests it never answered, a delay on the path) is read instead.
            points = [(t, v - work[t]) for t, v in points if t in work]
        if name in ("error_rate", "latency_p95_ms"):
            chart[f"{service}/{name}"] = _downsample(points)
        if anomalies.is_sparse(points, anchor=anchor):
            info = anomalies.contrast_series(points, name=name, anchor=anchor)
        else:
            info = anomalies.analyse_series(points, name=name, baseline_end=b_end, anchor=anchor,
                                            busy=busy or _spiky_latency(name, points, b_end, traffic.get(service)))
        if info is None:
            continue
        if name == "error_rate" and info["anomalous"] and service in traffic:
            info = _count_onset(info, points, traffic[service])
            if not busy and not _failures_stand_out(info, points, traffic[service]):
                info = {**info, "anomalous": False}
        entry = services.setdefault(service, {"score": 0.0, "onset": None, "metrics": [], "saturation": False,
                                              "traffic_shift": 0.0, "error_level": None})
        entry["has_metrics"] = True
        own_latency = anomalies.is_own_latency(name)
        if own_latency:
            # Whether the service's own work got slower (topology._waits_on): False until a series shows it.
            entry.setdefault("own_latency", False)
        if name == "error_rate":
            entry["error_level"] = info["level_after"] if info["anomalous"] else info["baseline"]
        # An excursion first seen after a gap in the series (the service's metrics went missing) began somewhere
        # in the gap: when the gap covers the trigger, it may be this incident's, but its onset is unknown and
        # dates nothing (issue #15 round 4: a datastore's metrics missing from 18 min before the onset to 7 min
        # after the report, its failure then dropped as "a later event").
        unseen = (info["anomalous"] and info.get("since") is not None and info["onset"] - info["since"] > GAP_S
                  and info["since"] <= anchor + LATE_ONSET_S < info["onset"])
        # An excursion that starts well after the trigger is a later event, not this incident's.
        if not info["anomalous"] or info["onset"] < b_end - 3600 or (info["onset"] > anchor + LATE_ONSET_S
                                                                     and not unseen):
            continue
        # An excursion that was over well before the trigger is an earlier event, not this incident.
        if info["recovered"] is not None and info["recovered"] < anchor - RECOVERED_BEFORE_S:
            continue
        strength = metric_weight(name) * (1.0 - math.exp(-info["severity"] / 8.0))
        ref = f"metrics:{service}/{name}"
        out_series.append({"ref": ref, "service": service, "name": name, "beyond_own": beyond,
                           "onset": fmt_ts(info["onset"]),
                           "recovered": fmt_ts(info["recovered"]) if info["recovered"] else None,
                           "baseline": round(info["baseline"], 6), "level_after": round(info["level_after"], 6),
                           "severity": round(info["severity"], 2), "strength": round(strength, 4),
                           "shift": round(info["shift"], 4)})
        # Samples missing just before it (a failed scrape, a minute with no sampled span): the excursion began
        # somewhere after the last sample before the gap, not necessarily where it is first seen (issue #15 round 13)
        # — however long the gap, unless it covers the trigger (``unseen``: no onset at all). A gap of nine minutes
        # in a callee's sampled spans dated its failure at their end, after the caller it broke (round 15: hard
        # 2035 gen-0057 with traces halved, the caller's change blamed at 80).
        opened = anomalies.open_onset(info, [t for t, _ in points], max_gap=GAP_S if unseen else math.inf)
        if opened is not None:
            out_series[-1]["gap_since"] = fmt_ts(info["since"])
        if info["recovered"] is None or info["recovered"] >= anchor:
            # Still off its baseline when the report came: a failure under way, however early it began.
            entry["ongoing"] = True
        if "requests" in name.lower():
            entry["traffic_shift"] = max(entry["traffic_shift"], info["shift"])
        if request_series(name) and info["level_after"] <= (1.0 - MIN_DROP) * info["baseline"]:
            # Its completed requests fell (topology._errors_above: its error share then counts only those).
            entry["requests_fell"] = True
        if anomalies.is_saturation(name) and info["severity"] >= anomalies.ONSET_Z:
            entry["saturation"] = True
        entry["metrics"].append(ref)
        if own_latency:
            entry["own_latency"] = True
            if "latency" in name.lower():
                # How many milliseconds its requests got slower (topology._latency_explains).
                rise = (info["level_after"] - info["baseline"]) * _ms_per_unit(name)
                entry.setdefault("latency_rise", {})[name] = round(max(rise, 0.0), 3)
        family = _family(name)
        if family == "cpu":
            cpu_onsets.setdefault(service, []).append(info["onset"])
        entry.setdefault("families", {})
        entry["families"][family] = max(entry["families"].get(family, 0.0), strength)
        entry["score"] = _combine(entry["families"])
        if unseen:
            entry["onset_unseen"] = True
        elif metric_weight(name) >= 0.6:
            onsets.setdefault(service, []).append((info["onset"], strength))
            if opened is not None:
                earliest.setdefault(service, {})[info["onset"]] = opened
            if anomalies.is_saturation(name):
                loaded.setdefault(service, []).append((info["onset"], strength))
        if "requests" in name.lower() and info["shift"] >= SURGE_SHIFT:
            surges[service] = min(info["onset"], surges.get(service, info["onset"]))
    for service, found in onsets.items():
        services[service]["onset"] = service_onset(_beyond_load(found, loaded.get(service, []), surges.get(service)))
        dated = services[service]["onset"]
        if dated in earliest.get(service, {}):
            services[service]["onset_earliest"] = earliest[service][dated]
    for service, started in cpu_onsets.items():
        surge = surges.get(service)
        families = services[service].get("families", {})
        if surge is not None and "cpu" in families and all(abs(t - surge) <= LOAD_FOLLOW_S for t in started):
            # CPU that rose with the service's traffic is load, not a fault of its own (topology.locate_origin).
            families["load"] = families.pop("cpu")
    for entry in services.values():
        if entry["onset"] is None and entry["metrics"] and not entry.get("onset_unseen"):
            entry["score"] = round(entry["score"] * 0.5, 4)
    out_series.sort(key=lambda s: -s["strength"])
    # How much of the window the series cover, on average (ranking's "sparse": partial telemetry makes every
    # onset, and so every ordering, less sure; issue #15 round 14).
    return {"series": out_series, "services": services, "chart": chart, "baseline_end": b_end,
            "coverage": round(sum(covered) / len(covered), 4) if covered else 0.0}


def _own_name(name: str) -> str | None:
    """The own-latency series a callers' latency series pairs with (``caller_latency_p95_ms`` → ``latency_p95_ms``),
    or None for any other series."""
    lowered = name.lower()
    if not lowered.startswith("caller_") or "latency" not in lowered:
        return None
    return name[len("caller_"):]


def _own_latencies(series_list: list[dict]) -> dict[tuple[str, str], dict[float, float]]:
    """(service, name) → {epoch s: value} of each own-latency series."""
    return _by_time(series_list, anomalies.is_own_latency)


def _spiky_latency(name: str, points: list[tuple[float, float]], b_end: float,
                   rates: dict[float, float] | None) -> bool:
    """Whether a latency series (own, callers' or a wait derived from both) has its lone spikes judged by its
    healthy spike rate (anomalies._excursions) whatever the service's traffic. A p95 of a handful of requests is the
    slowest of them — lone multi-second requests come and go in health, three in five minutes now and then — while
    a slowdown lifts most requests and so nearly every sample (issue #15 round 16: field 2246 gen-0033, a quiet
    service's three lone spikes dating it 5 min before the config change that broke it, "no change" stated at 95).
    A spike rate of a few in a hundred is seen only over SPIKE_HISTORY healthy samples or more: a series sampled in
    a few pockets (sampled traces around events) keeps the plain rule (Nezha tt-003: 4 samples before the report,
    one of them a spike, would have read as a spike rate of one in four and hidden the caller's slowdown). Only a
    service whose request rate is known (``rates``) is known to serve a handful: a broker or store with no request
    series keeps the plain rule, its flapping stalls being its failures (alt 37-037: a rabbitmq stalling every other
    minute read as healthy once its latency was spike-tested, a caller named at 90 with logs)."""
    return bool(rates) and _family(name) == "latency" and sum(1 for t, _ in points if t < b_end) >= SPIKE_HISTORY


def _busy(rates: dict[float, float] | None, points: list[tuple[float, float]]) -> bool:
    """Whether a service's samples each stand for many requests (median requests per sample ≥ BUSY_REQUESTS);
    False when its request rate is unknown."""
    step = anomalies.sample_step(sorted(t for t, _ in points))
    return bool(rates) and step is not None and median(rates.values()) * step >= BUSY_REQUESTS


def _request_rates(series_list: list[dict]) -> dict[str, dict[float, float]]:
    """Each service's requests per second by sample time, from its ``requests_per_s`` series."""
    return {service: points for (service, _), points in
            _by_time(series_list, lambda name: name == "requests_per_s").items()}


def _by_time(series_list: list[dict], wanted: Callable[[str], bool]) -> dict[tuple[str, str], dict[float, float]]:
    """(service, name) → {epoch s: value} of each series whose name ``wanted`` accepts."""
    out: dict[tuple[str, str], dict[float, float]] = {}
    for item in series_list:
        name = str(item.get("name") or "")
        if not wanted(name):
            continue
        for point in item.get("points") or []:
            if isinstance(point, list | tuple) and len(point) == 2 and isinstance(point[1], int | float):
                ts = parse_ts(point[0])
                if ts is not None:
                    out.setdefault((str(item.get("service") or "unknown"), name), {})[ts] = float(point[1])
    return out


def _count_onset(info: dict[str, Any], points: list[tuple[float, float]],
                 rates: dict[float, float]) -> dict[str, Any]:
    """Date an error-rate excursion past the lone failed requests that lead it.

    An error rate is a count over requests: at 0.5 req/s one failed request in a minute reads 0.03, as far from a
    baseline of 0 as a real failure's first minute. A healthy low-traffic service has such single errors now and
    then, so lone ones ahead of an excursion date nothing (issue #15 round 5, field 2121 gen-0052: a migration
    3 min after an onset estimated from single errors, ruled "after"; round 10, field 2235 gen-0058: a config
    change ruled "after" an onset dated 8 min early by single failures, a minute with two among them).

    Each sample's failed requests are counted (rate x requests/s x the sample step) and the onset is the change
    point of those counts: the sample that best splits the excursion into the service's healthy failed share
    before it (pooled over the samples before the excursion, half a failure when none failed) and one raised
    share from it on (Poisson log-likelihood of the two segments). Among samples within CHANGE_SUPPORT of the best
    split the earliest is taken (a slow onset keeps its start). The split is searched up to the first sample whose
    failures alone are too many for the healthy share (at least MIN_ERRORS of them, one-sided Poisson tail below
    traffic.COUNT_P shared among the excursion's samples): a busy service's first failing minute is such a sample,
    so busy services are untouched, and a low-traffic origin failing one request a minute, minute after minute,
    keeps its first minute. When the request rate is unknown at a sample the excursion is left as it is.
    """
    span = _excursion_span(info, points, rates)
    if span is None:
        return info
    clean, step, start, end = span
    times = [t for t, _ in clean]
    counts = [max(value, 0.0) * rates.get(ts, 0.0) * step for ts, value in clean]
    exposure = [rates.get(ts, 0.0) * step for ts, _ in clean]
    healthy = [index for index in range(start) if times[index] in rates]
    p0 = max(sum(counts[i] for i in healthy), 0.5) / max(sum(exposure[i] for i in healthy), 1.0)
    # Each sample of the excursion is tested: the tail bound is shared among them (Bonferroni).
    bound = COUNT_P / (end - start)
    last = next((index for index in range(start, end) if counts[index] >= MIN_ERRORS
                 and poisson_tail(round(counts[index]), p0 * exposure[index]) < bound), end - 1)
    if last == start:
        return info

    def loglik(share: float, indices: range) -> float:
        share = min(max(share, 1e-12), 1.0)
        return sum(counts[i] * math.log(share) - exposure[i] * share for i in indices)

    scores = []
    for k in range(start, last + 1):
        after = range(k, end)
        raised = max(sum(counts[i] for i in after) / max(sum(exposure[i] for i in after), 1e-9), p0)
        scores.append(loglik(p0, range(start, k)) + loglik(raised, after))
    best = start + next(i for i, ll in enumerate(scores) if ll >= max(scores) - CHANGE_SUPPORT)
    if best == start:
        return info
    return {**info, "onset": times[best], "since": times[best - 1]}


def _excursion_span(info: dict[str, Any], points: list[tuple[float, float]],
                    rates: dict[float, float]) -> tuple[list[tuple[float, float]], float, int, int] | None:
    """(sorted samples, step, first index, end index) of an error-rate excursion, or None when its onset is not a
    sample or the request rate is unknown at one of its samples."""
    clean = sorted((t, v) for t, v in points if v == v)
    times = [t for t, _ in clean]
    step = anomalies.sample_step(times)
    if step is None or info["onset"] not in times:
        return None
    start = times.index(info["onset"])
    end = times.index(info["recovered"]) if info["recovered"] in times else len(times)
    if any(times[index] not in rates for index in range(start, end)):
        return None
    return clean, step, start, end


def _failures_stand_out(info: dict[str, Any], points: list[tuple[float, float]], rates: dict[float, float]) -> bool:
    """Whether an error-rate excursion of a service of few requests holds more failed requests than chance gives.

    At a few requests a minute one failure reads 0.03 and a healthy service has one every few minutes, so three in
    five minutes make an excursion now and then by chance — one found by looking over the whole window for the
    likeliest stretch. The excursion's failed requests (rate x requests/s x step, from its onset to its recovery
    or the window's end) must be improbable under the healthy share before it (one-sided binomial tail), the tail
    multiplied by the number of such stretches the history before it holds (a scan over that many windows; Bonferroni)
    and kept under traffic.COUNT_P (issue #15 round 15: field 2245 gen-0013, four failures in seven minutes at
    0.2 req/s against a healthy 0.6 % — p 0.003, one of 14 stretches — named the origin of a capacity fault).
    When the request rate is unknown at a sample, or there is no history, the excursion stands.
    """
    span = _excursion_span(info, points, rates)
    if span is None or span[2] == 0:
        return True
    clean, step, start, end = span
    times = [t for t, _ in clean]
    failed = sum(max(clean[i][1], 0.0) * rates[times[i]] * step for i in range(start, end))
    exposure = sum(rates[times[i]] * step for i in range(start, end))
    healthy = [i for i in range(start) if times[i] in rates]
    seen = sum(rates[times[i]] * step for i in healthy)
    if seen < 1.0:
        return True
    share = max(sum(max(clean[i][1], 0.0) * rates[times[i]] * step for i in healthy), 0.5) / seen
    stretches = max(1.0, (times[start] - times[0]) / max(times[end - 1] - times[start] + step, step))
    return anomalies.binomial_tail(round(failed), max(round(exposure), round(failed)), share) * stretches < COUNT_P



def _beyond_load(found: list[tuple[float, float]], saturation: list[tuple[float, float]],
                 surge: float | None) -> list[tuple[float, float]]:
    """The series that date a service's failure, less the resource series that rose with its traffic.

    A service whose traffic surged works harder: its CPU, connections and pools rise with the load from that
    moment, which dates the surge, not a failure; the failure shows when its errors or latency leave their
    baseline (a leak under a load spike: the leaking service's callers, loaded the same, then seemed to fail
    first and it their victim). ``saturation`` — (onset, strength) of its saturation-type series; ``surge`` —
    when its request rate rose by ``SURGE_SHIFT`` or more (None: no surge). Without another dating series all
    of ``found`` is kept.
    """
    if surge is None:
        return found
    following = [item for item in saturation if abs(item[0] - surge) <= LOAD_FOLLOW_S]
    rest = [item for item in found if item not in following]
    return rest or found


def service_onset(found: list[tuple[float, float]]) -> float | None:
    """When one service went bad: the earliest onset among its strong series.

    Params: found — (onset epoch s, strength) of the service's anomalous series.
    Returns: the earliest onset of a series at least ONSET_STRENGTH_SHARE as strong as its strongest one,
    or None without series. Why: a faint series of the same service (a slow memory drift, a cron job's
    CPU spike, one latency blip) often crosses its threshold minutes before the errors that make the
    incident; a person dates the service's trouble by its clear symptoms, not by its faintest one.
    """
    if not found:
        return None
    strongest = max(strength for _, strength in found)
    return min(onset for onset, strength in found if strength >= ONSET_STRENGTH_SHARE * strongest)


def _ms_per_unit(name: str) -> float:
    # Latency series name their unit: *_ms, or *_seconds / *_s (Prometheus base units).
    lowered = name.lower()
    return 1000.0 if lowered.endswith(("_seconds", "_s")) else 1.0


def _family(name: str) -> str:
    lowered = name.lower()
    if "error" in lowered:
        return "error"
    if "latency" in lowered or lowered.endswith("_ms"):
        return "latency"
    if lowered.startswith("cpu") or "_cpu" in lowered:
        return "cpu"
    if anomalies.is_saturation(name):
        return "saturation"
    return "other"


def _combine(families: dict[str, float]) -> float:
    # Independent modalities that agree (errors and latency and saturation on
    # one service) are stronger evidence than one series alone, the idea of
    # multi-modal RCA (Yu et al., Nezha, ESEC/FSE 2023); the strongest family
    # leads and the others add half their strength.
    ordered = sorted(families.values(), reverse=True)
    return round(ordered[0] + 0.5 * sum(ordered[1:]), 4) if ordered else 0.0


def _downsample(points: list[tuple[float, float]]) -> list[list[Any]]:
    points = sorted(points)
    if len(points) <= CHART_POINTS:
        return [[fmt_ts(t), v] for t, v in points]
    step = len(points) / CHART_POINTS
    buckets = []
    for index in range(CHART_POINTS):
        chunk = points[int(index * step): int((index + 1) * step)]
        if chunk:
            # The max keeps spikes visible that a mean would flatten.
            buckets.append([fmt_ts(chunk[0][0]), max(v for _, v in chunk)])
    return buckets


def incident_onset(services: dict[str, dict[str, Any]], anchor: float) -> float | None:
    """The incident's onset: the earliest onset among the strongly anomalous services.

    Only services at least half as anomalous as the most anomalous one vote, so
    a weak noisy series cannot drag the onset an hour back.
    """
    scored = [(e["score"], e["onset"]) for e in services.values() if e.get("onset") is not None]
    if not scored:
        return None
    top = max(s for s, _ in scored)
    onsets = [o for s, o in scored if s >= 0.5 * top and o <= anchor + 600]
    if not onsets:
        return None
    # An incident starts before the alert or ticket that reports it: a later
    # metric onset means the series lag (or the excursion is a later one).
    return min(min(onsets), anchor - 60.0)


def fetch_logs(tools: Any, ctx: dict[str, Any], onset: float, missing: list[str]) -> tuple[list[dict], dict]:
    """Fetch the log lines to mine: all of a small window, else WARN+ plus INFO samples on each side.

    Returns: (lines, info) where info holds ``total`` and ``sampled``.
    """
    window = ctx["window"]
    head = safe_call(tools, "logs.search", missing, "logs", start=window["start"], end=window["end"], limit=1)
    total = int(head.get("total") or 0)
    if total == 0:
        if not any(m.startswith("logs") for m in missing):
            missing.append("logs (no lines in the window)")
        return [], {"total": 0, "sampled": False}
    if total <= FULL_FETCH_LINES:
        return _page_all(tools, missing, start=window["start"], end=window["end"]), {"total": total, "sampled": False}
    lines = _page_all(tools, missing, start=window["start"], end=window["end"], levels=["WARN", "ERROR", "FATAL"])
    onset_iso = fmt_ts(onset)
    for lo, hi in ((window["start"], onset_iso), (onset_iso, window["end"])):
        page = safe_call(tools, "logs.search", missing, "logs", start=lo, end=hi, levels=["DEBUG", "INFO"],
                         limit=SAMPLE_LINES)
        lines.extend(page.get("lines") or [])
    return lines, {"total": total, "sampled": True}


def _page_all(tools: Any, missing: list[str], **args: Any) -> list[dict]:
    lines: list[dict] = []
    cursor = None
    for _ in range(50):
        page = safe_call(tools, "logs.search", missing, "logs", limit=500_000, cursor=cursor, **args)
        lines.extend(page.get("lines") or [])
        cursor = page.get("next_cursor")
        if not cursor:
            break
    return lines


def analyse_logs(lines: list[dict], *, ctx: dict[str, Any], onset: float, known: list[str],
                 template_state: Any, missing: list[str],
                 contrast_bounds: tuple[float, float, float] | None = None) -> dict[str, Any]:
    """Mine templates around the onset and find error text naming other services.

    Params: lines — fetched log lines; ctx — the context; onset — epoch s;
    known — known service names; template_state — load()/save() or None;
    contrast_bounds — (before_from, split, stop) epoch s of the short-window log contrast, or None.
    Returns: ``{templates: [...notable...], by_service: {svc: {new_errors, gone, error_excess}},
    mentions: {caller: {callee: excess}}, log_contrast: {svc: {...}}, named_near: {callee: {caller: n}}}``
    (the last two empty without contrast_bounds).
    """
    window = ctx["window"]
    start, end = parse_ts(window["start"]), parse_ts(window["end"])
    state = None
    if template_state is not None:
        try:
            state = template_state.load()
        except Exception:  # noqa: BLE001 — a broken store must not stop the investigation
            state = None
    miner = logtemplates.new_miner(state)
    before_span, after_span = max(onset - start, 60.0), max(end - onset, 60.0)
    recent_from = max(onset, ctx["anchor"] - SKIP_RECENT_S)
    stats = logtemplates.template_stats(lines, miner=miner, onset=onset, before_span=before_span,
                                        after_span=after_span, parse_ts=parse_ts, recent_from=recent_from,
                                        recent_to=recent_from + SKIP_SPAN_S, contrast=contrast_bounds)
    if template_state is not None:
        try:
            template_state.save(logtemplates.dump_miner(miner))
        except Exception:  # noqa: BLE001
            missing.append("template store (could not save the template miner)")
    by_service: dict[str, dict[str, Any]] = {}
    notable = []
    for entry in stats:
        svc = by_service.setdefault(entry["service"], {"new_errors": 0, "gone": 0, "error_excess": 0.0,
                                                       "new_error_first": [], "skipped": 0})
        is_error = entry["level"] in ("WARN", "ERROR", "FATAL")
        if entry["kind"] in ("new", "burst") and is_error:
            svc["new_errors"] += 1
            if entry["first_after"] is not None:
                svc["new_error_first"].append(entry["first_after"])
        if entry["kind"] == "gone":
            svc["gone"] += 1
        if is_error:
            svc["error_excess"] += entry["after"] - entry["before"] * after_span / before_span
        if entry["kind"] != "steady":
            notable.append({**entry, "ref": f"logs:{entry['service']}/{entry['id']}",
                            "first_after": fmt_ts(entry["first_after"]) if entry["first_after"] else None})
    window_end = min(end, recent_from + SKIP_SPAN_S)
    for item in skipped.find_skipped(stats, earlier_span=recent_from - start,
                                     recent_span=window_end - recent_from):
        by_service[item["service"]]["skipped"] += 1
        notable.append({"id": item["id"], "service": item["service"], "template": item["template"],
                        "level": "INFO", "kind": "skipped", "before": item["earlier"], "after": item["recent"],
                        "leader": item["leader"], "leader_after": item["leader_recent"],
                        "tail": item["tail"], "first_after": None,
                        "ref": f"logs:{item['service']}/{item['id']}"})
    notable.sort(key=lambda e: (e["kind"] in ("gone", "skipped"), -e["after"]))
    mentions = _mentions(lines, onset=onset, known=known, ratio=after_span / before_span)
    log_contrast: dict[str, dict[str, Any]] = {}
    near: dict[str, dict[str, float]] = {}
    if contrast_bounds is not None:
        log_contrast = logcontrast.service_log_contrast(stats, bounds=contrast_bounds,
                                                        history_s=contrast_bounds[1] - start)
        near = logcontrast.named_near(lines, known=known, bounds=contrast_bounds, parse_ts=parse_ts)
    return {"templates": notable[:80], "by_service": by_service, "mentions": mentions,
            "log_contrast": log_contrast, "named_near": near}


def _mentions(lines: list[dict], *, onset: float, known: list[str], ratio: float) -> dict[str, dict[str, float]]:
    counts: dict[tuple[str, str], list[int]] = {}
    known_set = set(known)
    seen_msgs: dict[tuple[str, str], set[str]] = {}
    for line in lines:
        if str(line.get("level", "")).upper() not in ("WARN", "WARNING", "ERROR", "FATAL", "CRITICAL"):
            continue
        ts = parse_ts(line.get("ts"))
        if ts is None:
            continue
        own = str(line.get("service") or "")
        message = str(line.get("message", ""))[: logtemplates.MAX_MESSAGE_CHARS]
        key_msg = (own, message)
        cache = seen_msgs.setdefault(key_msg, set())
        if not cache:
            cache.update((mentioned_services(message, known, own) | alias_mentions(message, known_set, own)) or {""})
        for callee in cache:
            if not callee:
                continue
            slot = counts.setdefault((own, callee), [0, 0])
            slot[0 if ts < onset else 1] += 1
    out: dict[str, dict[str, float]] = {}
    for (caller, callee), (before, after) in counts.items():
        excess = after - before * ratio
        if excess >= 2:
            out.setdefault(caller, {})[callee] = round(excess, 2)
    return out


# Suffixes a deployment adds to a service's name in the addresses its callers log (a Kubernetes Service
# object "feed-svc" in front of the app "feed"): "feed-svc:8080", "http://feed-service/...".
_ALIAS = re.compile(r"(?<![A-Za-z0-9_.-])([A-Za-z0-9][A-Za-z0-9_-]*?)[-_](?:svc|service|srv)(?![A-Za-z0-9_-])")


def alias_mentions(message: str, known: set[str], own: str) -> set[str]:
    """Known services a message names through a deployment alias (``feed-svc`` for ``feed``).

    Only when the alias itself is no known service (a topology with both ``feed`` and ``feed-svc``
    means two services) and the base is not the logger itself.
    Params: message — log text; known — known service names; own — the logging service.
    Returns: the set of known names found.
    """
    found = set()
    for match in _ALIAS.finditer(message):
        alias, base = match.group(0), match.group(1)
        if alias not in known and base in known and base != own:
            found.add(base)
    return found


def median_or_none(values: list[float]) -> float | None:
    """Median of a list, None when empty."""
    return median(values) if values else None
