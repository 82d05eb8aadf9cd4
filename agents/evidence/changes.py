"""Change correlation: score every recorded change as the cause of the incident.

A cause precedes its effect: a change after the onset is counter-evidence
only. Before the onset, a change scores by how close it lands to the onset,
whether it touched the origin (or a neighbour on the origin's call path),
whether error templates new on that service appear after it, whether a flag's
rollout share matches the share of failing traffic, and a small prior per
kind (deploys and flags cause most incidents in the SRE literature; Google
SRE book ch. 1 puts ~70% of outages on changes to a live system).
"""

from __future__ import annotations

import math
import re
from typing import Any

LOOKBACK_S = 4 * 3600.0
# A change within this long after the onset estimate may still be its cause:
# metric onsets sit on a 60 s grid and lag the change by up to one step.
AFTER_TOLERANCE_S = 75.0
# Half-life of the time score: a change 15 min before the onset scores 0.5.
HALF_LIFE_S = 900.0
# Half-life of the link between a change and the origin it touched: a change 20 min before the onset
# carries half the weight of being on the origin, one an hour before an eighth. Culprits land minutes
# before the onset (our generator: 0.5-12 min; the independent writer: 0.4-7 min; slow rolling deploys
# a little more), and on both writers harmless changes on the origin sit 25-120 min before it.
LINK_HALF_LIFE_S = 1200.0
# New errors on a change's service that begin within this long after it "begin right after it".
FOLLOW_S = 15 * 60.0
# Share of the "new errors after it" credit a change gets on a service that is no candidate origin.
VICTIM_ERRORS_SHARE = 0.3
# How far the incident onset estimate may sit before the true onset (it is the earliest onset among
# several series): a change this long after it still counts when every new error on its service follows it.
MAX_ONSET_ERROR_S = 10 * 60.0
# The change's own service dates its own failure better than the incident onset (the earliest of several services,
# one of them maybe drifting early): a change landing past the onset estimate counts, however far past it, when its
# service's telemetry went bad after it; never when its service was failing more than this long before it (a
# scale-down 7 min into a saturation). Its own onset may sit 2 min early (a ramp's first samples: alt3-034's culprit
# landed 125 s after its service's onset estimate): two samples of the coarsest metrics step we read (60 s) plus the
# step by which a ramp's first sample past a threshold can lag its start, as ranking.LATE_UNRULED_S. It was 5 min
# until issue #15's wrong80 round: a migration 244 s and a flag 251 s into their services' failures (the services
# had been failing on their own) were blamed at 98 and 99 because their new log lines came after them.
OWN_ONSET_ERROR_S = 180.0

# A service that stays healthy (no telemetry onset, no new error) this long after a change was not broken by it
# at once: its later errors do not "begin right after it" (issue #15: an exporter upgrade 13-16 min before a
# datastore degrades on its own). 10 min lost a slow canary whose service's onset showed 12 min after it.
HEALTHY_AFTER_S = FOLLOW_S
# Changes that touch only how a service is observed or maintained (its logs, metrics, traces, exporters,
# backups) do not change how it serves requests: their score keeps this share unless the service's new errors
# begin within FAST_FOLLOW_S of them (a log flood filling a disk shows at once).
INERT_SHARE = 0.35
FAST_FOLLOW_S = 5 * 60.0
_INERT_WORDS = frozenset({"log", "logs", "logging", "logger", "loglevel", "metric", "metrics", "exporter",
                          "exporters", "tracing", "trace", "traces", "sampling", "sample", "monitoring",
                          "monitor", "telemetry", "scrape", "backup", "backups", "dashboard", "dashboards"})
_WORD = re.compile(r"[a-z]+")

KIND_PRIOR = {"deploy": 1.0, "feature_flag": 0.95, "config": 0.9, "db_migration": 0.9, "infra": 0.85}


def flag_share(change: dict[str, Any]) -> float | None:
    """The rolled-out share (0..1) of a feature-flag change, or None when unknown."""
    details = change.get("details") or {}
    for key in ("rollout_pct", "to"):
        value = details.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return max(0.0, min(1.0, float(value) / 100.0))
        if isinstance(value, str) and value.strip().endswith("%"):
            try:
                return max(0.0, min(1.0, float(value.strip()[:-1]) / 100.0))
            except ValueError:
                return None
    return None


def failing_share_of(service_info: dict[str, Any]) -> float | None:
    """The share of a service's requests that fail after the onset, to set against a flag's rollout; None if unknown.

    A flag breaks the requests it routes: their share of the traffic bounds the failing share. That bound holds
    only while the service still completes its other requests. When its completed request rate collapsed while its
    callers kept sending (``traffic.collapses``), the failure stalls requests beyond the flagged ones, and its error
    share is counted over the few that still complete (issue #15: a 5 % and a 20 % rollout on low-traffic services
    whose requests fell by two thirds, each declined for "failing share 31 %" and the service's older change blamed at
    99): the share says nothing about the rollout then. Params: service_info — signals' entry of the service.
    """
    level = service_info.get("error_level")
    if level is None or service_info.get("collapse"):
        return None
    return float(level)


def inert_change(change: dict[str, Any]) -> str | None:
    """What an observability- or maintenance-only change touches (``"logging"``, ``"backup"``...), else None.

    Only config, infra and flag changes qualify (a deploy ships code, a migration alters data, whatever their
    wording). A config change is judged by its key, an infra change by its action and summary, a flag by its
    name; the change is inert when one of their words is about logs, metrics, traces, exporters, monitoring,
    backups or dashboards.
    """
    kind = str(change.get("kind") or "")
    details = change.get("details") or {}
    if kind == "config":
        text = str(details.get("key") or change.get("summary") or "")
    elif kind == "infra":
        text = f"{details.get('action') or ''} {change.get('summary') or ''}"
    elif kind == "feature_flag":
        text = str(details.get("flag") or "")
    else:
        return None
    words = _WORD.findall(re.sub(r"([a-z])([A-Z])", r"\1 \2", text).lower())
    hits = [w for w in words if w in _INERT_WORDS]
    return hits[0] if hits else None


def score_change(change: dict[str, Any], *, change_ts: float, onset: float | None,
                 origin_rank: dict[str, float], neighbours: set[str],
                 new_error_after: dict[str, list[float]], failing_share: dict[str, float],
                 service_onset: float | None = None, first_sign: float | None = None) -> dict[str, Any]:
    """Score one change as a cause.

    Params: change — a changes.list item; change_ts — its epoch seconds;
    onset — incident onset (epoch s) or None; origin_rank — service → origin
    score normalised to 0..1 (1 = best origin); neighbours — services on the
    best origin's call path (direct callers/callees); new_error_after —
    service → first-seen times of new or bursting error templates;
    failing_share — service → error_rate level after the onset; service_onset — when the change's own
    service began to fail (its telemetry), or None; first_sign — the earliest onset of any anomalous series of
    that service, however faint (None: none).
    Returns: ``{id, service, kind, score, dt_s, position, reasons:[...], against:[...]}``
    with position ``before`` | ``after`` | ``unknown``.
    """
    service = str(change.get("service") or "")
    kind = str(change.get("kind") or "")
    reasons: list[str] = []
    against: list[str] = []
    firsts = sorted(new_error_after.get(service, []))
    # The service's new errors begin right after the change: the clearest link a change can have.
    leads = bool(firsts) and firsts[0] >= change_ts - 30 and firsts[0] - change_ts <= FOLLOW_S
    past_onset = False
    signs = [t for t in (service_onset, firsts[0] if firsts else None) if t is not None and t >= change_ts - 30]
    healthy = min(signs) - change_ts if signs else None
    if healthy is not None and healthy > HEALTHY_AFTER_S:
        # Its service stayed healthy well after it: errors that begin with the service's failure do not
        # "begin right after" the change.
        against.append(f"{service} stayed healthy for {int(healthy // 60)} min after it")
        leads = False
    # How long the change's own service had been failing (its telemetry onset) when it landed; None when unknown.
    own_before_s = change_ts - service_onset if service_onset is not None else None
    if onset is None:
        position, dt, time_score = "unknown", None, 0.3
        closeness = 0.5
    else:
        dt = onset - change_ts
        own_before = change_ts - service_onset if service_onset is not None else None
        admitted = leads and (own_before is None or own_before <= OWN_ONSET_ERROR_S) and (
            dt >= -MAX_ONSET_ERROR_S or (own_before is not None and own_before <= 30))
        # Its own service's telemetry went bad right after it (not before): it counts as a change its new errors
        # follow does, within the estimate's error (issue #15: a migration 74 s before its store's onset, 166 s past
        # an estimate set by another service's wobble, lost to "no change" at 93 over one stray warning 33 s before
        # it).
        # Every sign of its trouble must follow it, the faint ones too (a thread pool filling 4 min before it).
        own_follows = (own_before is not None and -FOLLOW_S <= own_before <= 30
                       and (first_sign is None or first_sign >= change_ts - 30))
        admitted = admitted or (own_follows and dt >= -MAX_ONSET_ERROR_S)
        if dt < -AFTER_TOLERANCE_S and not admitted:
            if own_before is not None and own_before > OWN_ONSET_ERROR_S:
                against.append(f"{service} was already failing {int(own_before // 60)} min before it")
            against.append(f"lands {int(-dt)} s after the onset, so it cannot have caused it")
            return {"id": change.get("id"), "service": service, "kind": kind, "score": 0.0,
                    "dt_s": dt, "position": "after", "reasons": reasons, "against": against}
        position = "before"
        past_onset = dt < -AFTER_TOLERANCE_S
        if dt < -AFTER_TOLERANCE_S:
            # The onset is an estimate (the earliest of several series, some noisy); the change's own
            # service says more: every new error there comes after it, or its telemetry went bad after it.
            reasons.append(f"lands {int(-dt)} s after the estimated onset, but before every new error on its service"
                           if leads else f"lands {int(-dt)} s after the estimated onset, but before the telemetry of "
                           f"{service} went bad")
            dt = 0.0
        time_score = math.pow(0.5, max(dt, 0.0) / HALF_LIFE_S)
        closeness = math.pow(0.5, max(dt, 0.0) / LINK_HALF_LIFE_S)
        reasons.append(f"{int(max(dt, 0) // 60)} min before the onset")
        if dt > LINK_HALF_LIFE_S and not leads:
            against.append(f"lands {int(dt // 60)} min before the onset, and its service's errors began much later")
    origin = origin_rank.get(service, 0.0)
    if origin >= 0.999:
        reasons.append("on the origin service")
    elif origin > 0:
        reasons.append("on a service that is a candidate origin")
    path = 0.25 if service in neighbours else 0.0
    if path and origin == 0:
        reasons.append("on the origin's call path")
    if not origin and not path:
        against.append("its service is not implicated by the telemetry")
    follows = any(ts >= change_ts - 30 for ts in firsts)
    if leads:
        reasons.append("new error templates on its service begin right after it")
    elif follows:
        reasons.append("new error templates on its service appear after it")
    share_fit = 0.0
    share = flag_share(change) if kind == "feature_flag" else None
    failing = failing_share.get(service)
    if share is not None and failing is not None and failing > 0.02:
        ratio = failing / max(share, 1e-3)
        if 0.3 <= ratio <= 1.3:
            share_fit = 1.0
            reasons.append(f"rollout {share:.0%} matches failing share {failing:.0%}")
        else:
            against.append(f"rollout {share:.0%} does not match failing share {failing:.0%}")
            share_fit = -0.5
    prior = KIND_PRIOR.get(kind, 0.7)
    # Being on the origin links a change to the incident only as far as it is close in time to it (or the
    # origin's new errors begin right after it): a change an hour before a traffic surge saturates the
    # same service is history, not cause. Without the link an old change on the origin outscored
    # "no change" (bench/README.md, issue #3: 12 of 37 misses on independently written worlds).
    link = max(closeness, 1.0 if leads else 0.0)
    # New errors right after the change say it broke its service only when that service is a candidate
    # origin: a victim's new errors are its callee's failure passed on, and begin with it whatever changed.
    own_errors = 1.0 if origin > 0 else VICTIM_ERRORS_SHARE
    score = prior * (0.35 * time_score + 0.45 * max(origin, path) * link
                     + own_errors * (0.15 * leads + 0.05 * follows) + 0.1 * share_fit)
    if not origin and not path:
        score *= 0.3
    inert = inert_change(change)
    fast = bool(firsts) and firsts[0] >= change_ts - 30 and firsts[0] - change_ts <= FAST_FOLLOW_S
    if inert and not fast:
        against.append(f"it changes only {service}'s {inert}, which does not alter how it serves requests")
        score *= INERT_SHARE
    return {"id": change.get("id"), "service": service, "kind": kind, "score": round(score, 4),
            "dt_s": dt, "position": position, "reasons": reasons, "against": against, "leads": leads,
            "past_onset": past_onset, "own_before_s": own_before_s, "share_fit": share_fit}


def earlier_lead(scored: list[dict[str, Any]], times: dict[str, float]) -> None:
    """Rule out changes admitted past the onset estimate when an earlier change on their service leads too (in place).

    A change that lands after the estimated onset counts when every new error of its service follows it
    (score_change). When an earlier change on the same service, before the onset, is also followed right away
    by those errors, the errors began with the earlier one and the later change (a follow-up deploy during a
    slow onset) landed while they were beginning. Params: scored — score_change results; times — id → epoch s.
    """
    for change in scored:
        if not change.get("past_onset") or change["position"] != "before":
            continue
        ts = times.get(str(change["id"]))
        earlier = [c for c in scored if c["service"] == change["service"] and c is not change and c.get("leads")
                   and not c.get("past_onset") and c["position"] == "before" and ts is not None
                   and times.get(str(c["id"]), ts) < ts]
        if earlier:
            change["position"], change["score"] = "after", 0.0
            change["against"].append(f"lands after {earlier[0]['id']} on {change['service']}, which the service's "
                                     "new errors already follow")
