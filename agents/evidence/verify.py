"""Verification: test the top hypothesis' predictions against the tools and demote it when they fail."""

from __future__ import annotations

import re
from typing import Any

from agents.evidence.changes import failing_share_of, flag_share
from agents.evidence.timeutil import fmt_ts, parse_ts
from agents.evidence.toolcall import safe_call

# New error templates of the blamed service tested for absence before its change (the majority must be new).
MAX_TEMPLATES_CHECKED = 3
# A new template's literal parts seen before the change count as "there before" only at more than this share of
# the template's pace since the onset (per second).
BEFORE_PACE_SHARE = 0.1
# Only new templates with at least this many lines since the onset are checked.
MIN_TEMPLATE_AFTER = 5
# Literal parts of a template shorter than this say little (": ", '", "', "[status=").
MIN_NEEDLE_CHARS = 12
MAX_NEEDLES = 3
_PLACEHOLDER = re.compile(r"<[^<>\s]{1,16}>")


def template_needles(template: str, example: str) -> list[str]:
    """The most distinctive literal parts of a mined template, to search for its lines by substring.

    A raw prefix of the example is not distinctive when messages share a structured head (JSON in the
    message: ``{"level": "error", "msg": "request failed", ...``); the template's literal parts between
    its variables are. Params: template — the mined template (variables as ``<*>``); example — one
    line of it. Returns: up to MAX_NEEDLES runs of the template's literal words found verbatim in the
    example, longest first (the example's first 60 characters when there is none).
    """
    runs: set[str] = set()
    for part in _PLACEHOLDER.split(template):
        runs.update(_verbatim_runs(part, example))
    parts = sorted((p for p in runs if len(p) >= MIN_NEEDLE_CHARS), key=lambda p: (-len(p), p))
    return parts[:MAX_NEEDLES] or ([example[:60]] if example else [])


def _verbatim_runs(part: str, example: str) -> list[str]:
    # The miner joins a multi-line message (a stack trace) with single spaces; the line itself keeps its
    # newlines and indents. Runs of the part's words that occur verbatim in the example are searchable.
    runs, current = [], ""
    for word in part.split():
        joined = f"{current} {word}" if current else word
        if joined in example:
            current = joined
            continue
        if current:
            runs.append(current)
        current = word if word in example else ""
    if current:
        runs.append(current)
    return [run.strip() for run in runs]


# A request-rate rise of at least this share (+50 %) on a saturated service is a surge that can saturate it.
SURGE_SHIFT = 0.5
# A surge that begins this long after a change was not set off by it (retry storms follow a change at once).
SURGE_AFTER_CHANGE_S = 300.0


def load_surge(sig: dict[str, Any], service: str, *, after: float) -> dict[str, Any] | None:
    """A traffic surge on a saturated ``service`` that began well after ``after`` (a change's time), or None.

    A person reading a capacity incident sees the requests climb, then CPU, memory or the pool run out,
    and does not blame a change made before the load arrived (bench/README.md, issue #3: old changes on
    a saturated origin outranked "no change"). Params: sig — the evidence phase's output; service —
    the blamed service; after — epoch s. Returns: the anomalous requests series (``name``, ``onset``,
    ``shift``) or None.
    """
    info = sig.get("services", {}).get(service, {})
    if not info.get("saturation"):
        return None
    for series in sig.get("series", []):
        name = str(series.get("name", "")).lower()
        if series.get("service") != service or not any(key in name for key in ("request", "rps", "qps", "throughput")):
            continue
        start = parse_ts(series.get("onset"))
        if start is not None and float(series.get("shift") or 0.0) >= SURGE_SHIFT and start >= after + SURGE_AFTER_CHANGE_S:
            return series
    return None


def check(tools: Any, ctx: dict[str, Any], sig: dict[str, Any], chg: dict[str, Any], cor: dict[str, Any],
          hyp: dict[str, Any]) -> dict[str, Any]:
    """Run the top hypothesis' predictions.

    Predictions: (1) a blamed change's new error templates are absent before
    it; (2) the blamed service itself shows trouble after the onset (own
    anomaly, new errors, or callers naming it); (3) a flag's rollout share is
    not far from the failing share.
    Params: tools — ToolSource; the phase outputs. Returns ``{outcome, hypothesis, checks}``
    with outcome CONFIRMED | LIKELY | DECLINED.
    """
    ranked = hyp.get("hypotheses") or []
    if not ranked:
        return {"outcome": "DECLINED", "hypothesis": None, "checks": [
            {"name": "has_hypothesis", "passed": False, "detail": "no hypothesis to verify"}]}
    top = ranked[0]
    checks = []
    svc, change_id = top["service"], top.get("change_id")
    missing: list[str] = []
    change = next((c for c in chg.get("changes", []) if c.get("id") == change_id), None)
    service_info = sig.get("services", {}).get(svc, {})
    named = any(o["service"] == svc and o.get("named_by") for o in cor.get("origins", []))
    # A request rate that collapsed while its callers kept sending is trouble of its own too (traffic.collapses).
    trouble = service_info.get("score", 0) > 0 or named or bool(service_info.get("collapse"))
    via = top.get("via")
    if via and not trouble:
        # A callee with no telemetry of its own, read without logs (ranking._sole_unseen_callee): its one caller
        # is the only window onto it, and the prediction is that the caller shows the failure.
        trouble = sig.get("services", {}).get(via, {}).get("score", 0) > 0
        checks.append({"name": "blamed_service_degraded", "passed": bool(trouble),
                       "detail": f"{svc} has no telemetry of its own; its caller {via} shows the failure" if trouble
                       else f"{svc} has no telemetry of its own and its caller {via} shows no anomaly"})
    else:
        checks.append({"name": "blamed_service_degraded", "passed": bool(trouble),
                       "detail": f"{svc} shows its own anomaly or is named by failing callers" if trouble
                       else f"{svc} shows no anomaly and nobody names it"})
    if change is not None:
        change_ts = parse_ts(change.get("ts"))
        # A template of a few lines is too thin to judge a change by (a noisy caller's stray warnings).
        new_tpls = [t for t in sig.get("templates", []) if t["service"] == svc and t["kind"] == "new"
                    and t["level"] in ("WARN", "ERROR", "FATAL")
                    and not (isinstance(t.get("after"), int | float) and t["after"] < MIN_TEMPLATE_AFTER)
                    ][:MAX_TEMPLATES_CHECKED]
        if change_ts is not None and new_tpls:
            start = ctx["window"]["start"]
            before_span = max(60.0, change_ts - (parse_ts(start) or change_ts))
            onset_ts = parse_ts(sig.get("onset")) or change_ts
            after_span = max(60.0, (parse_ts(ctx["window"].get("end")) or onset_ts) - onset_ts)
            seen = []
            for tpl in new_tpls:
                needles = template_needles(str(tpl.get("template") or ""), str(tpl.get("example") or ""))
                counts = [int(safe_call(tools, "logs.search", missing, "logs", service=svc, text=needle, start=start,
                                        end=fmt_ts(change_ts), limit=1).get("total") or 0) for needle in needles]
                # A line of the template holds every literal part of it, so the rarest part bounds its count.
                count = min(counts) if counts else 0
                # Literal parts can be a generic envelope (``level=error msg="call failed" err="``) that a
                # stray older line shares: the template was there before only if it came at a pace near
                # its pace since the onset, not once in hours.
                after = tpl.get("after")
                there = count > 0 and (not isinstance(after, int | float) or after <= 0
                                       or count / before_span > BEFORE_PACE_SHARE * float(after) / after_span)
                seen.append((count, needles[0] if needles else tpl.get("example", "")[:40], there))
            before_change = [item for item in seen if item[2]]
            checks.append({"name": "errors_absent_before_change", "passed": 2 * len(before_change) <= len(seen),
                           "detail": "; ".join(f"'{needle[:60]}' seen {count}× before {change_id}"
                                               for count, needle, _ in seen)})
        share = flag_share(change) if change.get("kind") == "feature_flag" else None
        failing = failing_share_of(service_info)
        if share is not None and failing is not None and failing > 0.02:
            ok = failing <= share * 1.3 + 0.02
            checks.append({"name": "flag_share_matches", "passed": ok,
                           "detail": f"rollout {share:.0%}, failing share {failing:.0%}"})
        surge = load_surge(sig, svc, after=change_ts) if change_ts is not None else None
        if surge is not None:
            checks.append({"name": "fault_not_explained_by_load", "passed": False,
                           "detail": f"{svc} saturated under a traffic surge ({surge['name']} ×{1 + surge['shift']:.1f} "
                                     f"from {surge['onset']}) that began {int((parse_ts(surge['onset']) - change_ts) // 60)}"
                                     f" min after {change_id}: load, not the change, explains the fault"})
        onset = sig.get("onset")
        if onset is not None and change_ts is not None:
            scored = next((c for c in cor.get("changes", []) if c.get("id") == change_id), None)
            # The correlation phase may admit a change just after the onset estimate when every new error
            # of its service follows it (changes.score_change): its position is the verdict.
            ok = scored["position"] != "after" if scored else change_ts <= parse_ts(onset) + 75
            checks.append({"name": "change_precedes_onset", "passed": ok,
                           "detail": f"{change_id} at {change.get('ts')}, onset {onset}"})
    failed = [c for c in checks if not c["passed"]]
    if failed:
        outcome = "DECLINED"
    elif top.get("confidence", 0) >= 75:
        outcome = "CONFIRMED"
    else:
        outcome = "LIKELY"
    return {"outcome": outcome, "hypothesis": {"service": svc, "change_id": change_id,
                                               "category": top.get("category")}, "checks": checks}
