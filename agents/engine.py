"""The deterministic evidence engine: the investigation's phase functions (docs/contracts.md).

Every phase takes and returns JSON-serialisable dicts so the pipeline can
checkpoint between them. The engine reads a world only through
``tools.call(capability, **args)``; a missing or failing source is recorded
in ``missing_sources`` and lowers confidence instead of stopping the run.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from agents.errors import NotFoundToolError
from agents.evidence import (
    anomalies,
    contrast,
    logcontrast,
    peers,
    ranking,
    report,
    signals,
    signatures,
    traffic,
    unreached,
)
from agents.evidence import changes as changes_mod
from agents.evidence import verify as verification
from agents.evidence.anchor import alert_burst_start, refine_anchor, time_in_text
from agents.evidence.changes import LOOKBACK_S, score_change
from agents.evidence.timeutil import fmt_ts, parse_ts
from agents.evidence.toolcall import safe_call
from agents.evidence.topology import (
    ONSET_TOLERANCE_S,
    CallGraph,
    against_topology,
    locate_origin,
    unmapped_rivals,
)

# Without a window, look this far back from the trigger (and a little after it).
DEFAULT_LOOKBACK_S = 3 * 3600.0
DEFAULT_LOOKAHEAD_S = 1800.0
MAX_ROUNDS = 5
# Weight of log-only evidence in a service's anomaly score (a strong metric excursion scores about 1).
LOG_WEIGHT_NEW_ERROR = 0.25
# Skipped statements are reported as evidence but not scored: on nezha-tt a weight of 0.45 lowered service
# top-1 from 0.222 to 0.178 (0.15: 0.200), because busy services have many loosely paired statements whose
# pairing breaks by chance under 1-in-10 trace sampling. See bench/README.md.
LOG_WEIGHT_SKIPPED = 0.0
# Contrast blending (see _blend_contrast).
CONTRAST_WEIGHT = 1.0
CONTRAST_OLD_SHARE = 0.3
CONTRAST_STALE_SHARE = 0.2
CONTRAST_HISTORY_S = 3600.0
# Weight of the short-window log contrast (new error shapes, stopped statements around the anchor) in a
# service's score; applied under the same condition as the metric contrast (see analyse_signals).
# Round 5 on nezha-tt (service top-1 odd / even half): 0 -> 0.391 / 0.318, 0.3 -> 0.435 / 0.273,
# 0.6 -> 0.435 / 0.182: it helps the half it was developed on and hurts the held-out half, so it is
# reported as evidence (services[svc]["log_contrast"]) but not scored. See bench/README.md, round 5.
LOG_CONTRAST_WEIGHT = 0.0
# Weights of the fault signatures that do not propagate to callers (agents/evidence/signatures.py): the
# wait gap (callers wait, the service does not work longer: a delay on the path to it) and the first error
# line of trace-joined logs (the writer, not its callers). Each strength is 0..1.
WAIT_GAP_WEIGHT = 3.5
FIRST_ERROR_WEIGHT = 2.0
SATURATION_WEIGHT = 1.0
SKIPPED_TRACE_WEIGHT = 1.0


def gather_context(tools: Any, trigger: dict[str, Any] | None, window: dict[str, str] | None) -> dict[str, Any]:
    """CONTEXT_GATHERING: resolve the trigger, the window, the topology and the alerts.

    Params: tools — ToolSource; trigger — ``{"ticket": KEY} | {"alert": ID} |
    {"text": ...}`` (None → world.describe's trigger); window — ``{start, end}``
    ISO strings or None (→ world.describe's window, else trigger time −3 h/+30 min).
    Returns: the context dict (window, anchor epoch seconds, trigger details,
    topology services, alerts, known services, missing_sources).
    """
    missing: list[str] = []
    describe = safe_call(tools, "world.describe", [], "describe")
    trigger = dict(trigger or describe.get("trigger") or {})
    trigger_ts, trigger_text, trigger_service, ticket, alert = None, "", None, None, None
    anchor_from = "trigger"
    not_found: dict[str, Any] | None = None
    if trigger.get("ticket"):
        ticket, not_found = _get_trigger(tools, "tickets.get", missing, "tickets", key=str(trigger["ticket"]))
        if ticket:
            trigger_ts = parse_ts(ticket.get("ts"))
            trigger_text = f"{ticket.get('summary', '')} {ticket.get('description', '')}"
            comps = ticket.get("components") or []
            trigger_service = comps[0] if comps else None
    elif trigger.get("alert"):
        alert, not_found = _get_trigger(tools, "alerts.get", missing, "alerts", id=str(trigger["alert"]))
        if not alert and parse_ts(trigger.get("ts")) is not None:
            not_found = None
            # A webhook's trigger carries the alert itself: use it when no alerts source knows the id.
            alert = {"id": trigger["alert"], "ts": trigger["ts"], "title": trigger.get("title"),
                     "service": trigger.get("service"), "source": trigger.get("source"),
                     "labels": trigger.get("labels") or {}}
        if alert:
            trigger_ts = parse_ts(alert.get("ts"))
            trigger_text = str(alert.get("title", ""))
            trigger_service = alert.get("service")
    else:
        trigger_text = str(trigger.get("text", ""))
    if parse_ts(trigger.get("at")) is not None:
        # A live trigger that says when it happened (pm investigate --at): that beats the ticket's own time.
        trigger_ts, anchor_from = parse_ts(trigger.get("at")), "at"
    win = _resolve_window(window, describe, trigger_ts, trigger)
    start, end = parse_ts(win["start"]), parse_ts(win["end"])
    topo = safe_call(tools, "topology.get", missing, "topology").get("services") or []
    if not topo:
        # Say how to get one: a map is what tells an origin from its victims when logs are thin (issue #15).
        missing.append("topology (no call graph: add a topology entry to sources.yaml: a topology.yaml file or "
                       "Prometheus mesh metrics; docs/sources.md)")
    alerts = safe_call(tools, "alerts.list", missing, "alerts", start=win["start"], end=win["end"]).get("alerts") or []
    if trigger_ts is None:
        # No dated trigger: the clock time its words name ("since about 08:08 UTC"), else the first
        # alert of the densest alert burst (lone early warnings are noise), else the end of the window.
        trigger_ts, anchor_from = time_in_text(trigger_text, start, end), "text"
    if trigger_ts is None:
        trigger_ts = alert_burst_start(t for t in (parse_ts(a.get("ts")) for a in alerts) if t is not None)
        anchor_from = "alerts"
    if trigger_ts is None:
        trigger_ts, anchor_from = end, "window_end"
    anchor = min(max(trigger_ts, start), end)
    known = {s["name"] for s in topo if s.get("name")}
    listed = safe_call(tools, "metrics.list", missing, "metrics", start=win["start"], end=win["end"]).get("metrics") or []
    known |= {m["service"] for m in listed if m.get("service")}
    return {"trigger": trigger, "trigger_ts": fmt_ts(trigger_ts), "anchor": anchor, "anchor_from": anchor_from,
            "window": win,
            "trigger_text": trigger_text[:2000], "trigger_service": trigger_service, "ticket": ticket,
            "alert": alert, "domain": describe.get("domain"), "topology": topo, "alerts": alerts,
            "known_services": sorted(known), "missing_sources": missing, "trigger_not_found": not_found}


def trigger_not_found(tools: Any, trigger: dict[str, Any] | None) -> dict[str, Any] | None:
    """Whether the ticket / alert ``trigger`` names is unknown to its source, before investigating.

    The same look-up as CONTEXT_GATHERING's (``tickets.get`` / ``alerts.get``), for a front door
    that checks a request before it records anything. An alert that carries its own time (a
    webhook's) is never looked up: the trigger is the alert. A source that fails is not an answer.

    Returns:
        ``{"kind", "key", "source", "detail"}`` when the source answered "not found", else None.
    """
    trigger = trigger or {}
    missing: list[str] = []
    if trigger.get("ticket"):
        return _get_trigger(tools, "tickets.get", missing, "tickets", key=str(trigger["ticket"]))[1]
    if trigger.get("alert") and parse_ts(trigger.get("ts")) is None:
        return _get_trigger(tools, "alerts.get", missing, "alerts", id=str(trigger["alert"]))[1]
    return None


def _get_trigger(tools: Any, capability: str, missing: list[str], source: str,
                 **args: Any) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The ticket / alert a trigger names: ``(record, None)``, or ``(None, why)`` when the source said
    it does not exist (an answer, unlike a source that failed, which is only noted in ``missing``)."""
    try:
        return safe_call(tools, capability, missing, source, raise_on=(NotFoundToolError,), **args) or None, None
    except NotFoundToolError as exc:
        kind = "ticket" if capability == "tickets.get" else "alert"
        return None, {"kind": kind, "key": str(next(iter(args.values()))), "source": exc.server, "detail": str(exc)}


def _resolve_window(window: dict[str, str] | None, describe: dict[str, Any], trigger_ts: float | None,
                    trigger: dict[str, Any] | None = None) -> dict:
    """The window to read: the given one, the world's, else around the trigger time.

    Around the trigger: ``lookback_s`` before it and ``lookahead_s`` after it (the trigger may carry
    both, from sources.yaml's ``window:``), never ending in the future; with no dated trigger at all
    (a live free-text ask), the trigger time is now.
    """
    for candidate in (window, describe.get("window")):
        if candidate and parse_ts(candidate.get("start")) is not None and parse_ts(candidate.get("end")) is not None:
            if parse_ts(candidate["start"]) < parse_ts(candidate["end"]):
                return {"start": candidate["start"], "end": candidate["end"]}
    trigger = trigger or {}
    lookback = _seconds(trigger.get("lookback_s"), DEFAULT_LOOKBACK_S)
    lookahead = _seconds(trigger.get("lookahead_s"), DEFAULT_LOOKAHEAD_S)
    now = time.time()
    if trigger_ts is None:
        trigger_ts = now
    end = max(min(trigger_ts + lookahead, now), trigger_ts + 60.0)
    return {"start": fmt_ts(trigger_ts - lookback), "end": fmt_ts(end)}


def _seconds(value: Any, default: float) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 else default


def analyse_signals(tools: Any, ctx: dict[str, Any], *, template_state: Any = None) -> dict[str, Any]:
    """EVIDENCE: metric anomalies per service, the incident onset, log templates and callee mentions.

    Params: tools — ToolSource; ctx — gather_context output; template_state —
    object with load() -> bytes | None and save(bytes) persisting the drain3
    miner per domain, or None.
    Returns: ``{onset, series, services, templates, mentions, chart, missing_sources, logs}``.
    """
    missing: list[str] = []
    window = ctx["window"]
    series = safe_call(tools, "metrics.series", missing, "metrics", start=window["start"],
                       end=window["end"]).get("series") or []
    ctx = {**ctx, "anchor": refine_anchor(series, ctx)}
    metrics = signals.analyse_metrics(tools, ctx, missing, series_list=series)
    services = metrics["services"]
    onset = signals.incident_onset(services, ctx["anchor"])
    onset_from = "metrics"
    if onset is None:
        onset, onset_from = ctx["anchor"] - 300.0, "trigger"
    lines, log_info = signals.fetch_logs(tools, ctx, onset, missing)
    known = sorted(set(ctx["known_services"]) | {str(line.get("service")) for line in lines if line.get("service")})
    # Peers with no telemetry and no topology entry (a third-party API) are candidates only by name.
    start, end = parse_ts(window["start"]) or onset, parse_ts(window["end"]) or onset
    found = peers.discover(lines, known=known, onset=onset, ratio=max(end - onset, 60.0) / max(onset - start, 60.0))
    known = sorted(set(known) | set(found))
    bounds = logcontrast.stretch(ctx["anchor"], after_from_s=contrast.AFTER_FROM_S,
                                 after_to_s=contrast.AFTER_TO_S, before_span_s=contrast.BEFORE_SPAN_S)
    logs = signals.analyse_logs(lines, ctx=ctx, onset=onset, known=known, template_state=template_state,
                                missing=missing, contrast_bounds=bounds)
    # Only series without a baseline of their own (pocketed: samples exist only around each event) are
    # judged by the short-window contrast; a dense series' robust baseline already says what changed
    # (on generated seed 303 contrasting dense series too lowered top-1 from 1.000 to 0.950).
    # A short window (under CONTRAST_HISTORY_S of history before the anchor) has no baseline worth the
    # name for any series, so then every series is contrasted.
    history = ctx["anchor"] - (parse_ts(window["start"]) or ctx["anchor"])
    short = history < CONTRAST_HISTORY_S
    pocketed = [item for item in series if short or _is_pocketed(item, ctx["anchor"])]
    # Where series have gaps (pocketed or sampled traces), the incident onset is dated from pockets that may be
    # other events' (Nezha: 10-16 min early), so a service's excursion "within the incident" says nothing there.
    # A scrape outage — every series of one service missing for a while — is no sampling: it hides that service's
    # own excursion (``onset_unseen``), not when the others' began (issue #15 round 10, hard 2020 gen-0050: one
    # service's metrics missing for 25 min cut the entry service's clear error rise to a stale leftover's share,
    # and a callee's three warning lines were blamed at 88).
    gapped = [item for item in series if _has_gap(item, ctx["anchor"])]
    outages = _scrape_outages(series, gapped)
    dense = not any(str(item.get("service") or "") not in outages for item in gapped)
    _blend_contrast(services, contrast.service_contrasts(pocketed, anchor=ctx["anchor"], parse_ts=parse_ts),
                    onset=onset if onset_from == "metrics" and dense else None)
    for entry in services.values():
        # Kept apart from log evidence: a service whose metrics are all quiet is healthy, whatever its logs say.
        entry["metric_score"] = entry["score"]
    # The log contrast shares the metric contrast's condition: only where the window is too short for a
    # baseline (or pocketed) does "what changed right around the report" lead.
    log_contrast = logs["log_contrast"] if short or pocketed else {}
    for svc, info in log_contrast.items():
        entry = services.setdefault(svc, {"score": 0.0, "onset": None, "metrics": [], "saturation": False,
                                          "traffic_shift": 0.0, "error_level": None})
        entry["log_contrast"] = info
        entry["score"] = round(float(entry.get("score", 0.0)) + LOG_CONTRAST_WEIGHT * info["score"], 4)
    for svc, info in logs["by_service"].items():
        entry = services.setdefault(svc, {"score": 0.0, "onset": None, "metrics": [], "saturation": False,
                                          "traffic_shift": 0.0, "error_level": None})
        entry["new_errors"] = info["new_errors"]
        entry["error_excess"] = round(float(info.get("error_excess", 0.0)), 2)
        entry["gone"] = info["gone"]
        entry["new_error_first"] = info["new_error_first"]
        entry["skipped"] = info.get("skipped", 0)
        # Log-only evidence: a service with new error shapes, or a statement it no longer reaches, is
        # anomalous even without metrics (code defects rarely show in metrics: Nezha, ESEC/FSE 2023).
        log_strength = (LOG_WEIGHT_NEW_ERROR * min(info["new_errors"], 3) / 3 + 0.1 * min(info["gone"], 3) / 3
                        + LOG_WEIGHT_SKIPPED * min(entry["skipped"], 2) / 2)
        if info["new_errors"] and entry["onset"] is None and info["new_error_first"]:
            entry["onset"] = min(info["new_error_first"])
        entry["score"] = round(max(entry["score"], log_strength) + 0.5 * log_strength, 4)
    _add_signatures(services, series, lines, anchor=ctx["anchor"], known=known)
    _add_collapses(services, series, ctx.get("topology"), anchor=ctx["anchor"])
    return {"onset": fmt_ts(onset), "onset_from": onset_from, "anchor": fmt_ts(ctx["anchor"]),
            "series": metrics["series"][:60],
            "services": services, "templates": logs["templates"], "mentions": logs["mentions"],
            "named_near": logs["named_near"] if short or pocketed else {},
            "chart": metrics["chart"], "missing_sources": missing, "logs": log_info,
            "baseline_end": fmt_ts(metrics["baseline_end"]), "coverage": metrics["coverage"]}


def _add_signatures(services: dict[str, dict[str, Any]], series: list[dict[str, Any]], lines: list[dict[str, Any]],
                    *, anchor: float, known: list[str]) -> None:
    """Add the fault signatures around the anchor to each service's score (in place).

    Wait gap, first error, saturation, skipped within traces (agents/evidence/signatures.py) and callees
    no longer reached by their callers (agents/evidence/unreached.py).
    """
    split, stop = anchor - contrast.AFTER_FROM_S, anchor + contrast.AFTER_TO_S
    gaps = signatures.wait_gaps(series, anchor=anchor, split=split, stop=stop, parse_ts=parse_ts)
    traces = signatures.joined_traces(lines)
    firsts = signatures.first_errors(traces, split=split, stop=stop, parse_ts=parse_ts, known=known) if traces else {}
    skips = signatures.skipped_in_traces(traces, split=split, stop=stop, parse_ts=parse_ts) if traces else {}
    unreach = unreached.unreached_callees(traces, split=split, stop=stop, parse_ts=parse_ts) if traces else {}
    sats = signatures.saturations(series, split=split, stop=stop, parse_ts=parse_ts)
    # signature key → (its results, family, weight); the order is the order of the score's sum.
    found = {"wait_gap": (gaps, "network", WAIT_GAP_WEIGHT), "first_error": (firsts, "first_error", FIRST_ERROR_WEIGHT),
             "saturation": (sats, "cpu", SATURATION_WEIGHT),
             "skipped_in_traces": (skips, "skipped", SKIPPED_TRACE_WEIGHT),
             "unreached": (unreach, "unreached", unreached.SCORE_WEIGHT)}
    for svc in sorted(set().union(*(results for results, _, _ in found.values()))):
        strengths = {key: float(results.get(svc, {}).get("strength", 0.0)) for key, (results, _, _) in found.items()}
        if not any(strengths.values()):
            continue
        entry = services.setdefault(svc, {"score": 0.0, "onset": None, "metrics": [], "saturation": False,
                                          "traffic_shift": 0.0, "error_level": None})
        entry["signature"] = {key: results.get(svc) for key, (results, _, _) in found.items()}
        score = float(entry.get("score", 0.0))
        families = entry.setdefault("families", {})
        for key, (_, family, weight) in found.items():
            score += weight * strengths[key]
            if weight * strengths[key]:
                families[family] = max(float(families.get(family, 0.0)), weight * strengths[key])
        entry["score"] = round(score, 4)
        # How clearly the service's own fault shows (0..1): locate_origin does not make it a victim of callees.
        entry["own_fault"] = round(max(strengths.values()), 4)
        if entry.get("onset") is None:
            entry["onset"] = split


def _add_collapses(services: dict[str, dict[str, Any]], series: list[dict[str, Any]],
                   topology: list[dict[str, Any]] | None, *, anchor: float) -> None:
    """Add each callee's request-rate collapse around the anchor to its score (in place; traffic.collapses).

    The collapse is its own family (``collapse``): topology.locate_origin scores it apart from the service's
    anomaly strength (which the confidence model was fitted on) and lets such a callee explain the callers whose
    errors it causes, however much louder their errors are. It is origin evidence but not a fault of the
    service's own (``own_fault``): a service whose completed requests fall because its own callee hangs shows
    the same drop.
    """
    graph = CallGraph(topology)
    callers = {svc: graph.callers(svc) for svc in graph.calls}
    split, stop = anchor - contrast.AFTER_FROM_S, anchor + contrast.AFTER_TO_S
    for svc, info in traffic.collapses(series, callers=callers, split=split, stop=stop, parse_ts=parse_ts).items():
        entry = services.setdefault(svc, {"score": 0.0, "onset": None, "metrics": [], "saturation": False,
                                          "traffic_shift": 0.0, "error_level": None})
        entry["collapse"] = info
        families = entry.setdefault("families", {})
        families["collapse"] = max(float(families.get("collapse", 0.0)), info["strength"])
        if entry.get("onset") is None:
            # No series of its own left its baseline: it went bad when its request rate fell.
            entry["onset"] = info["fell_at"]


def _is_pocketed(item: dict[str, Any], anchor: float) -> bool:
    points = [(parse_ts(p[0]), p[1]) for p in item.get("points") or [] if isinstance(p, list | tuple) and len(p) == 2]
    return anomalies.is_sparse([(t, v) for t, v in points if t is not None], anchor=anchor)


def _scrape_outages(series: list[dict[str, Any]], gapped: list[dict[str, Any]]) -> set[str]:
    """Services all of whose series have a gap: their scrape failed for a while (not series sampled in pockets)."""
    counts = Counter(str(item.get("service") or "") for item in series)
    missing = Counter(str(item.get("service") or "") for item in gapped)
    return {svc for svc, n in missing.items() if n == counts[svc]}


def _has_gap(item: dict[str, Any], anchor: float) -> bool:
    # A stretch of more than signals.GAP_S without samples before the anchor: what happened in between is unseen.
    times = sorted(t for t in (parse_ts(p[0]) for p in item.get("points") or [] if isinstance(p, list | tuple) and p)
                   if t is not None and t <= anchor)
    return any(b - a > signals.GAP_S for a, b in zip(times, times[1:], strict=False))


def _blend_contrast(services: dict[str, dict[str, Any]], contrasts: dict[str, dict[str, Any]], *,
                    onset: float | None = None) -> None:
    """Fold the short-window contrast around the anchor into each service's metric score (in place).

    A service that changed in the minutes around the report gains that change's strength; one whose
    only excursion predates them (an earlier event's leftover, a service that is always noisy) keeps
    a share CONTRAST_STALE_SHARE of its score, so the report's own change leads.
    Params: onset — the incident's onset from the metrics (epoch s), or None (given only when no series of the
    window has a gap). A service whose excursion began at or after it (within ONSET_TOLERANCE_S) and is still under way at the
    anchor is this incident's, reported late, and keeps its score (issue #15 round 6): only what predates the
    incident, or was over by the report, is stale.
    """
    for svc, info in contrasts.items():
        entry = services.setdefault(svc, {"score": 0.0, "onset": None, "metrics": [], "saturation": False,
                                          "traffic_shift": 0.0, "error_level": None})
        entry["has_metrics"] = True
        entry["contrast"] = {"score": info["score"], "signals": {
            k: {"z": v["z"], "before": round(v["before"], 4), "after": round(v["after"], 4)}
            for k, v in info["signals"].items()}}
        old = float(entry.get("score", 0.0))
        if info["score"] > 0:
            entry["score"] = round(CONTRAST_WEIGHT * info["score"] + CONTRAST_OLD_SHARE * old, 4)
            if entry.get("onset") is None or info["onset"] < entry["onset"]:
                entry["onset"] = info["onset"]
            families = entry.setdefault("families", {})
            for fam, sig_info in info["signals"].items():
                key = "latency" if fam == "caller_latency" else fam
                families[key] = max(families.get(key, 0.0), sig_info["strength"])
                if fam == "latency" and sig_info["strength"] > 0:
                    entry["own_latency"] = True
        elif not _within_incident(entry, onset):
            entry["score"] = round(CONTRAST_STALE_SHARE * old, 4)


def _within_incident(entry: dict[str, Any], onset: float | None) -> bool:
    # A dense series' excursion that began at or after the incident's onset (within the topology's tolerance) and is
    # still under way at the report is this incident's, however long before the report it began: only one that
    # predates the incident, or a blip over by the report (a noisy service's), is stale.
    own = entry.get("onset")
    return onset is not None and own is not None and own >= onset - ONSET_TOLERANCE_S and bool(entry.get("ongoing"))


def gather_changes(tools: Any, ctx: dict[str, Any]) -> dict[str, Any]:
    """CHANGES: every recorded change from the look-back before the window to its end.

    Returns: ``{changes: [...], missing_sources: [...]}``.
    """
    missing: list[str] = []
    start = parse_ts(ctx["window"]["start"])
    listed = safe_call(tools, "changes.list", missing, "changes", start=fmt_ts(start - LOOKBACK_S),
                       end=ctx["window"]["end"]).get("changes") or []
    if not listed and not missing:
        missing.append("changes (no change records)")
    return {"changes": listed, "missing_sources": missing}


def correlate(ctx: dict[str, Any], sig: dict[str, Any], chg: dict[str, Any]) -> dict[str, Any]:
    """CORRELATION: locate the origin over the call graph and score every change against it.

    Returns: ``{origins: [...], changes: [...scored...], neighbours, capacity_services}``.
    """
    graph = CallGraph(ctx.get("topology"))
    mentions = against_topology(graph, sig.get("mentions", {}))
    for caller, named in mentions.items():
        for callee in named:
            graph.add_edge(caller, callee)
    # Per service: its anomalous series' onsets, and when the last of them recovered (None while any is still off).
    sign_onsets: dict[str, list[float]] = {}
    recoveries: dict[str, list[float | None]] = {}
    for series in sig.get("series", []):
        started = parse_ts(series.get("onset"))
        if started is not None:
            sign_onsets.setdefault(series["service"], []).append(started)
            recoveries.setdefault(series["service"], []).append(parse_ts(series.get("recovered")))
    settled = {svc: None if None in backs else max(b for b in backs if b is not None)
               for svc, backs in recoveries.items()}
    services = {}
    for svc, info in sig.get("services", {}).items():
        services[svc] = {"score": info.get("score", 0.0), "onset": info.get("onset"),
                         "onset_earliest": info.get("onset_earliest"), "onset_unseen": bool(info.get("onset_unseen")),
                         "new_errors": info.get("new_errors", 0), "has_metrics": info.get("has_metrics", False),
                         "metric_score": info.get("metric_score", info.get("score", 0.0)),
                         "families": info.get("families", {}), "own_fault": info.get("own_fault", 0.0),
                         "own_latency": info.get("own_latency"),
                         "has_logs": "new_errors" in info, "sign_onsets": sign_onsets.get(svc, []),
                         "recovered": settled.get(svc), "error_level": info.get("error_level"),
                         "requests_fell": bool(info.get("requests_fell")),
                         "latency_rise": info.get("latency_rise") or {}}
    origins = locate_origin(graph, services, mentions, named_near=sig.get("named_near") or {},
                            mapped=bool(ctx.get("topology")))
    onset = parse_ts(sig.get("onset"))
    origin_rank: dict[str, float] = {}
    neighbours: set[str] = set()
    if origins:
        best = origins[0]["score"]
        onsets = {cand["service"]: cand.get("onset") for cand in origins}
        for cand in origins:
            # A victim of a callee with telemetry of its own is no origin; one that only names a silent callee
            # (a third-party API) may have broken those calls itself (a timeout, an endpoint), so its changes count.
            if cand["score"] > 0 and not [v for v in cand["victim_of"] if onsets.get(v) is not None]:
                origin_rank[cand["service"]] = max(0.0, cand["score"] / best) if best > 0 else 0.0
        origin_rank[origins[0]["service"]] = 1.0
        top = origins[0]["service"]
        neighbours = (graph.calls.get(top, set()) | graph.callers(top)) - {top}
    new_error_after = {svc: info.get("new_error_first", []) for svc, info in sig.get("services", {}).items()}
    failing = {svc: share for svc, info in sig.get("services", {}).items()
               if (share := changes_mod.failing_share_of(info)) is not None}
    scored = []
    for change in chg.get("changes", []):
        ts = parse_ts(change.get("ts"))
        if ts is None:
            continue
        own_onset = sig.get("services", {}).get(str(change.get("service")), {}).get("onset")
        own_onset = float(own_onset) if isinstance(own_onset, int | float) else parse_ts(own_onset)
        scored.append({**score_change(change, change_ts=ts, onset=onset, origin_rank=origin_rank,
                                      neighbours=neighbours, new_error_after=new_error_after,
                                      failing_share=failing, service_onset=own_onset,
                                      first_sign=min(sign_onsets.get(str(change.get("service")), []),
                                                     default=None)), "ts": change.get("ts")})
    changes_mod.earlier_lead(scored, {str(c["id"]): parse_ts(c["ts"]) or 0.0 for c in scored})
    scored.sort(key=lambda c: -c["score"])
    surge = any(info.get("traffic_shift", 0.0) >= signals.SURGE_SHIFT for info in sig.get("services", {}).values())
    capacity = [svc for svc, info in sig.get("services", {}).items() if info.get("saturation") and surge]
    # Callees with no metrics of their own in the window (an external API, an unwatched store): nothing here can
    # show whether they failed (ranking: the ``callee_unruled`` counter-evidence).
    metered = {svc for svc, info in sig.get("services", {}).items() if info.get("has_metrics")}
    unseen = {cand["service"]: sorted(c for c in graph.calls.get(cand["service"], set()) if c not in metered)
              for cand in origins[:6]}
    # Callees anomalous from as early as the candidate, however faint next to it: read without logs, nothing shows
    # which of the two failed first (ranking: ``callee_unruled``; issue #15 round 4).
    early = {cand["service"]: sorted(c for c in graph.calls.get(cand["service"], set())
                                     if _onset_no_later(services.get(c, {}), cand.get("onset")))
             for cand in origins[:6]}
    # With no service map, error text gives the only call edges: another service anomalous as early may as well be
    # the candidate's callee (ranking: ``map_unruled``; issue #15 round 7).
    unmapped = {} if ctx.get("topology") else {
        cand["service"]: unmapped_rivals(cand, services, graph) for cand in origins[:6]}
    return {"origins": origins, "changes": scored, "neighbours": sorted(neighbours),
            "capacity_services": capacity, "unseen_callees": {k: v for k, v in unseen.items() if v},
            "early_callees": {k: v for k, v in early.items() if v},
            "unmapped_rivals": {k: v for k, v in unmapped.items() if v}}


def _onset_no_later(callee: dict[str, Any], onset: float | None) -> bool:
    """Whether a callee is anomalous with an onset no later than ``onset`` (within the topology's tolerance), or
    anomalous with its onset unknown: first seen failing after its metrics went missing across the trigger
    (signals' ``onset_unseen``), it may have failed at any time in that gap (issue #15 round 14)."""
    if float(callee.get("score", 0.0)) <= 0:
        return False
    theirs = callee.get("onset")
    if theirs is None:
        return bool(callee.get("onset_unseen"))
    return onset is not None and theirs <= onset + ONSET_TOLERANCE_S


def hypothesise(ctx: dict[str, Any], sig: dict[str, Any], chg: dict[str, Any], cor: dict[str, Any],
                rejected: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """HYPOTHESES: ranked hypotheses with evidence, counter-evidence and calibrated confidence.

    Params: rejected — hypotheses (``service``, ``change_id``) declined by earlier verification rounds.
    Returns: ``{hypotheses: [...], rejected: [...]}``.
    """
    ctx_for_rank = {**ctx, "missing_sources": ctx.get("missing_sources", []) + sig.get("missing_sources", [])}
    hyps = ranking.rank(ctx_for_rank, sig, cor, rejected or [])
    return {"hypotheses": hyps, "rejected": list(rejected or [])}


def verify(tools: Any, ctx: dict[str, Any], sig: dict[str, Any], chg: dict[str, Any], cor: dict[str, Any],
           hyp: dict[str, Any]) -> dict[str, Any]:
    """VERIFICATION: check the top hypothesis' predictions through the tools.

    Returns: ``{outcome: CONFIRMED | LIKELY | DECLINED, hypothesis, checks}``.
    """
    return verification.check(tools, ctx, sig, chg, cor, hyp)


def fix_plan(ctx: dict[str, Any], hyp: dict[str, Any], ver: dict[str, Any],
             chg: dict[str, Any] | None = None, sig: dict[str, Any] | None = None) -> dict[str, Any]:
    """FIX_PLAN: concrete steps for the top hypothesis (``chg`` names versions, flags and keys to return to;
    ``sig`` gives the baselines to verify recovery against)."""
    return report.fix_plan(ctx, hyp, ver, (chg or {}).get("changes"), sig)


def build_report(ctx: dict[str, Any], sig: dict[str, Any], chg: dict[str, Any], cor: dict[str, Any],
                 hyp: dict[str, Any], ver: dict[str, Any], fix: dict[str, Any]) -> dict[str, Any]:
    """REPORT: the world-format report JSON plus fix_plan, timeline, chart and missing_sources."""
    ctx_all = {**ctx, "missing_sources": ctx.get("missing_sources", []) + chg.get("missing_sources", [])}
    return report.build(ctx_all, sig, chg, cor, hyp, ver, fix)


def run_all(tools: Any, trigger: dict[str, Any] | None, window: dict[str, str] | None, *,
            template_state: Any = None) -> dict[str, Any]:
    """Run every phase in order, with the hypothesis ⇄ verification loop (≤ 5 rounds).

    Params: tools — ToolSource; trigger and window as for gather_context;
    template_state — see analyse_signals.
    Returns: the report dict.
    """
    return run_phases(tools, trigger, window, template_state=template_state)[0]


def run_phases(tools: Any, trigger: dict[str, Any] | None, window: dict[str, str] | None, *,
               template_state: Any = None) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """As run_all, and also the CONTEXT_GATHERING and change outputs (the agents' evidence pack reads them).

    Returns: (report, ctx, chg).
    """
    ctx = gather_context(tools, trigger, window)
    sig = analyse_signals(tools, ctx, template_state=template_state)
    chg = gather_changes(tools, ctx)
    cor = correlate(ctx, sig, chg)
    rejected: list[dict[str, Any]] = []
    first_hyp = hyp = hypothesise(ctx, sig, chg, cor, rejected=rejected)
    ver = verify(tools, ctx, sig, chg, cor, hyp)
    for _ in range(MAX_ROUNDS - 1):
        if ver["outcome"] != "DECLINED" or not hyp["hypotheses"]:
            break
        rejected.append(ver["hypothesis"])
        hyp = hypothesise(ctx, sig, chg, cor, rejected=rejected)
        if not hyp["hypotheses"]:
            break
        ver = verify(tools, ctx, sig, chg, cor, hyp)
    if not hyp["hypotheses"]:
        hyp, ver = first_hyp, {**ver, "outcome": "DECLINED"}
    fix = fix_plan(ctx, hyp, ver, chg, sig)
    return build_report(ctx, sig, chg, cor, hyp, ver, fix), ctx, chg
