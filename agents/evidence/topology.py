"""Propagation over the call graph: which anomalous service is the origin, which are victims.

A caller degrades when a service it calls fails, so an anomalous service that
has an anomalous callee starting no later than itself is a victim; the origin
is anomalous and unexplained downstream (the same reasoning as MicroRCA's
attributed graph, Wu et al., NOMS 2020, without the random walk). Error text
of a caller that names another service ("... mysql-legacy:5432 ...") is an
edge and evidence too, so the graph also works when topology.yaml is missing.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Any

# Two metric steps: onsets on a 60 s grid that differ by less are simultaneous.
ONSET_TOLERANCE_S = 120.0
MIN_NAMER_SCORE = 0.3
# A callee explains a caller's anomaly only when at least this fraction as anomalous.
EXPLAIN_SHARE = 0.5
# Without a map: a service that went bad no later than another and fails at least this many times its error share
# may be the callee the other fails on (_errors_above).
ERROR_SHARE_ABOVE = 1.25
# A callee slower by at least this share of the milliseconds its caller got slower accounts for the caller's delay
# (_latency_explains).
LATENCY_EXPLAIN_SHARE = 0.5
# Extra origin-score penalty of a victim whose callee's onset is clearly (ONSET_TOLERANCE_S) earlier than its own.
LATER_VICTIM_PENALTY = 1.0
# A service whose own fault signature (engine._add_signatures, 0..1) is at least this clear is no victim.
OWN_FAULT_SHARE = 0.2
# Origin-score weight of a request-rate collapse at a callee whose callers kept sending (traffic.collapses,
# 0..1): the weight of anomaly strength, kept apart from it so the confidence model's strength is unchanged.
COLLAPSE_WEIGHT = 1.5
# Signature families (engine._add_signatures) read from traces rather than from the service's own resources.
TRACE_FAMILIES = ("network", "first_error", "skipped")


class CallGraph:
    """Directed call graph: ``calls[a]`` is the set of services a calls."""

    def __init__(self, services: list[dict[str, Any]] | None = None) -> None:
        """Params: services — topology.get's ``services`` list (``name``, ``calls``); None or [] is fine."""
        self.calls: dict[str, set[str]] = {}
        self.tiers: dict[str, str] = {}
        for item in services or []:
            name = str(item.get("name", "")).strip()
            if not name:
                continue
            self.calls.setdefault(name, set()).update(str(c) for c in (item.get("calls") or []) if c)
            if item.get("tier"):
                self.tiers[name] = str(item["tier"])
            for callee in self.calls[name]:
                self.calls.setdefault(callee, set())

    def add_edge(self, caller: str, callee: str) -> None:
        """Add one call edge (learnt from error text)."""
        if caller == callee:
            return
        self.calls.setdefault(caller, set()).add(callee)
        self.calls.setdefault(callee, set())

    def callers(self, service: str) -> set[str]:
        """Services that call ``service`` directly."""
        return {a for a, callees in self.calls.items() if service in callees}

    def descendants(self, service: str) -> set[str]:
        """Every service reachable from ``service`` along calls (not itself)."""
        return self._walk(service, lambda s: self.calls.get(s, set()))

    def ancestors(self, service: str) -> set[str]:
        """Every service that reaches ``service`` along calls (not itself)."""
        reverse: dict[str, set[str]] = {}
        for caller, callees in self.calls.items():
            for callee in callees:
                reverse.setdefault(callee, set()).add(caller)
        return self._walk(service, lambda s: reverse.get(s, set()))

    @staticmethod
    def _walk(start: str, step) -> set[str]:
        seen: set[str] = set()
        queue = deque([start])
        while queue:
            for nxt in step(queue.popleft()):
                if nxt not in seen and nxt != start:
                    seen.add(nxt)
                    queue.append(nxt)
        return seen


def mentioned_services(message: str, names: list[str], own: str) -> set[str]:
    """Known service names that appear as whole words in a log message (other than the logger's own).

    Names of two characters count too (an object store called ``s3``): whole-word matching against the
    known names is what keeps short ones apart from other words (bench/README.md, issue #15 round 3).
    Params: message — the log text; names — known service names; own — the
    service that logged it. Returns the set of names found.
    """
    lowered = message.lower()
    found = set()
    for name in names:
        if name == own or len(name) < 2:
            continue
        key = name.lower()
        at = lowered.find(key)
        while at >= 0:
            before = lowered[at - 1] if at > 0 else " "
            after = lowered[at + len(key)] if at + len(key) < len(lowered) else " "
            if not (before.isalnum() or before in "-_") and not (after.isalnum() or after in "-_"):
                found.add(name)
                break
            at = lowered.find(key, at + 1)
    return found


def against_topology(graph: CallGraph, mentions: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Drop mentions of a service's own (direct or indirect) callers: a callee does not depend on them.

    When the topology says A calls B (or reaches it through others), B's error text naming A ("TLS
    handshake failed for A") is noise, neither a call edge nor blame; taking it as an edge would close
    a cycle and make each the other's victim.
    Params: graph — the topology call graph (before mention edges); mentions — caller → {named → excess}.
    Returns: the mentions without those that run against a known call edge.
    """
    out: dict[str, dict[str, float]] = {}
    below: dict[str, set[str]] = {}
    for caller, named in mentions.items():
        kept = {}
        for callee, excess in named.items():
            for svc in (caller, callee):
                if svc not in below:
                    below[svc] = graph.descendants(svc) if svc in graph.calls else set()
            if caller in below[callee] and callee not in below[caller]:
                continue  # the named service sits upstream of the one complaining
            kept[callee] = excess
        if kept:
            out[caller] = kept
    return out


_WORD = re.compile(r"[A-Za-z0-9_.-]+")


# Weight, in the origin score, of callers starting to name a service in their error text right around the
# anchor (two such callers give the full weight). Round 5 on nezha-tt, 0.8 lowered service top-1 on both
# halves (odd 0.391 -> 0.348, even 0.318 -> 0.227), so the mention is reported (``named_near``), not scored.
NAMED_NEAR_WEIGHT = 0.0


def _not_earlier(caller_onset: float | None, onset: float | None) -> bool:
    # A caller that went bad well before its callee was not broken by it.
    return caller_onset is None or onset is None or caller_onset >= onset - ONSET_TOLERANCE_S


def _errors_explain(caller: dict[str, Any], callee: dict[str, Any]) -> bool:
    """Whether the callee's errors are at least as clear as the caller's own (both anomalous).

    A caller's failed requests are often its callee's failures passed on, plus the latency of waiting for them:
    the caller then shows more modalities (errors and latency) than the callee (errors only), and its overall
    score can dwarf the callee's. Errors do not grow on their way up, so a callee whose error signal is at least
    the caller's can explain it (issue #15: a 5 % flag failing on a callee, its caller shipping no logs).
    """
    mine = float((caller.get("families") or {}).get("error", 0.0))
    theirs = float((callee.get("families") or {}).get("error", 0.0))
    return mine > 0 and theirs >= mine


def _latency_explains(caller: dict[str, Any], callee: dict[str, Any]) -> bool:
    """Whether the callee got slower by at least LATENCY_EXPLAIN_SHARE of the milliseconds the caller did.

    A caller waits on its callee: milliseconds a call takes longer are milliseconds its own request takes longer,
    so a callee's rise that large accounts for the caller's delay however much louder the caller's anomaly scores
    (more series move on it: errors from timeouts, queues and busy threads behind the wait). A callee a caller's
    own fault merely loads gets slower by a few milliseconds against the caller's hundreds (issue #15 round 9: a
    cache 25 → 470 ms below a caller 60 → 600 ms, its faint-by-score anomaly read as downstream noise and the
    caller's deploy blamed at 80). Compared on the latency series both export (p95 against p95); any one will do.
    """
    # Only while it lasts: a callee whose slowness was over while the caller stayed slow accounts for none of it.
    ended, still = callee.get("recovered"), caller.get("recovered")
    if ended is not None and (still is None or float(ended) < float(still) - ONSET_TOLERANCE_S):
        return False
    return latency_share(caller, callee) is not None


def latency_share(caller: dict[str, Any], callee: dict[str, Any]) -> tuple[str, float, float] | None:
    """The latency series on which the callee got slower by at least LATENCY_EXPLAIN_SHARE of the milliseconds the
    caller did: ``(series name, caller's rise ms, callee's rise ms)``, or None. Compared on a series both export
    (p95 against p95), else on each one's largest rise. Params: the services' anomalies (``latency_rise``: series
    name → ms, signals.analyse)."""
    mine, theirs = caller.get("latency_rise") or {}, callee.get("latency_rise") or {}
    shared = [name for name in mine if name in theirs]
    pairs = [(n, mine[n], theirs[n]) for n in shared] if shared else (
        [("latency", max(mine.values()), max(theirs.values()))] if mine and theirs else [])
    return next(((n, rise, below) for n, rise, below in pairs
                 if rise > 0 and below >= LATENCY_EXPLAIN_SHARE * rise), None)


def _errors_above(callee: dict[str, Any], caller: dict[str, Any]) -> bool:
    """Whether a service that went bad no later than another fails a clearly larger share of its requests.

    A caller passes on a callee's failures only on the requests that reach it, so its error share does not exceed
    the callee's; one whose share rose to less than the other's (ERROR_SHARE_ABOVE) while the other started no
    later may be failing on it (issue #15 round 8: without a map, an entry service's errors and latency rising
    30–60 s after a callee's larger error share, within the onset tolerance). Both must show errors risen.
    """
    mine, theirs = caller.get("error_level"), callee.get("error_level")
    # A service whose completed requests collapsed counts its error share over the few that still complete (its
    # callers' timeouts do not show in it): the share then says nothing of who fails on whom (the field shape).
    if _collapsed(caller) or caller.get("requests_fell") or mine is None or theirs is None \
            or float((caller.get("families") or {}).get("error", 0.0)) <= 0 \
            or float((callee.get("families") or {}).get("error", 0.0)) <= 0:
        return False
    return float(theirs) >= ERROR_SHARE_ABOVE * float(mine)


def _collapsed(info: dict[str, Any]) -> bool:
    """Whether the service's request rate collapsed while its callers kept sending (traffic.collapses)."""
    return float((info.get("families") or {}).get("collapse", 0.0)) > 0


def _failing(info: dict[str, Any]) -> float:
    """How clearly a service fails its callers: its error, latency and request-collapse signals (engine families),
    not the load it carries (busier, more connections, more CPU) — a callee breaks a caller only by failing or
    slowing its calls."""
    score = float(info.get("score", 0.0))
    families = info.get("families") or {}
    if not families:
        return score
    return min(score, sum(float(families.get(key, 0.0)) for key in ("error", "latency", "collapse")))


def _latency_only(info: dict[str, Any]) -> bool:
    """Whether a service's anomaly is latency alone: no errors, saturation, collapse or trace signature."""
    families = info.get("families") or {}
    return float(families.get("latency", 0.0)) > 0 and not any(
        float(value) > 0 for key, value in families.items() if key not in ("latency", "other"))


def _waits_on(caller: dict[str, Any], callee: dict[str, Any]) -> bool:
    """Whether a callee's anomaly can explain its caller's: a slow callee explains only a caller that got slow.

    A callee whose only symptom is latency makes its callers wait; a caller whose own latency did not rise
    (``own_latency`` False: its failure shows as errors or a traffic drop) was not held up by it, and the
    callee's small rise is downstream noise (issue #15: 102 → 181 ms below an origin that only fails).
    """
    return not (_latency_only(callee) and caller.get("own_latency") is False)


def _blamers(service: str, named_by: dict[str, list[str]]) -> set[str]:
    """Services whose error text names ``service``, or names a service whose errors name it, and so on."""
    seen: set[str] = set()
    queue = deque(named_by.get(service, []))
    while queue:
        caller = queue.popleft()
        if caller in seen or caller == service:
            continue
        seen.add(caller)
        queue.extend(named_by.get(caller, []))
    return seen


def _earliest(info: dict[str, Any]) -> float:
    """The earliest its failure can have begun: its onset, or, when the series dating it had missing samples just
    before it, the first missing one's time (``onset_earliest``; the failure began somewhere in that gap)."""
    earliest = info.get("onset_earliest")
    return float(info["onset"]) if earliest is None else min(float(info["onset"]), float(earliest))


def leading_onset(info: dict[str, Any]) -> float | None:
    """A service's onset, moved back to its earliest series that left its baseline shortly before (within two
    onset tolerances): the caller-side latency of a failing callee often moves a step or two before its error
    share does. A series that went off well before belongs to something else (a dip in traffic, a second incident).
    Params: info — the service's anomaly (``onset``, ``sign_onsets``: its anomalous series' onsets, epoch s)."""
    onset = info.get("onset")
    if onset is None:
        return None
    near = [float(t) for t in info.get("sign_onsets") or [] if float(onset) - 2 * ONSET_TOLERANCE_S <= float(t)]
    return min([float(onset), *near])


def _still_bad(info: dict[str, Any], at: float) -> bool:
    """Whether a service's anomaly was still under way at ``at`` (a wobble that recovered before is not)."""
    return info.get("recovered") is None or float(info["recovered"]) > at


def unmapped_rivals(cand: dict[str, Any], anomalies: dict[str, dict[str, Any]], graph: CallGraph) -> list[str]:
    """Services a candidate origin cannot be told apart from when there is no topology file.

    Without a map, only error text says who calls whom. Another service anomalous from as early as the candidate
    (before its leading onset plus the tolerance, and still bad then), at least EXPLAIN_SHARE as strongly, could be
    the callee whose failure the candidate passes on, unless the text makes it one of the candidate's callers that
    went bad no earlier than the candidate did. A candidate that ships logs names in its error text the callees it
    fails on, so this holds only for one that ships none (the twin of ``unmapped_earlier`` in locate_origin).
    Params: cand — a locate_origin entry; anomalies — as for locate_origin; graph — the call graph.
    Returns: those services, strongest first.
    """
    strength = float(cand.get("strength", 0.0))
    own = anomalies.get(cand["service"], {})
    onset = leading_onset({**own, "onset": cand.get("onset")})
    if onset is None or strength <= 0 or own.get("has_logs"):
        return []
    callers = graph.callers(cand["service"])
    out = []
    for svc, info in anomalies.items():
        theirs = info.get("onset")
        if svc == cand["service"] or theirs is None or float(info.get("score", 0.0)) < EXPLAIN_SHARE * strength:
            continue
        if theirs >= onset + ONSET_TOLERANCE_S or not _still_bad(info, onset):
            continue
        if svc in callers and theirs >= onset - ONSET_TOLERANCE_S:
            continue
        out.append(svc)
    return sorted(out, key=lambda s: (-float(anomalies[s].get("score", 0.0)), s))


def locate_origin(graph: CallGraph, anomalies: dict[str, dict[str, Any]],
                  mentions: dict[str, dict[str, float]], *,
                  named_near: dict[str, dict[str, float]] | None = None, mapped: bool = True) -> list[dict[str, Any]]:
    """Score every implicated service as the incident's origin.

    Params: graph — the call graph (mention edges already added);
    anomalies — service → {``score`` (0..1 strength), ``onset`` (epoch s or
    None), ``new_errors`` (count of new/bursting error templates)};
    mentions — caller → {named service → excess error lines naming it after
    the onset}; named_near — named service → {caller: excess lines} in the
    short stretch around the anchor (logcontrast.named_near), or None; mapped — False when there is no
    topology file (the graph holds only edges error text gave).
    Returns: candidates sorted best first, each ``{service, score,
    victim_of: [...], explains: [...], named_by: [...], named_near: [...], onset, strength}``.
    """
    implicated = {s for s, a in anomalies.items() if a.get("score", 0) > 0 or _collapsed(a)}
    named_by: dict[str, list[str]] = {}
    for caller, named in mentions.items():
        # Only a clearly failing caller's words count: noisy services name others all day.
        if anomalies.get(caller, {}).get("score", 0) < MIN_NAMER_SCORE:
            continue
        for callee, excess in named.items():
            known = anomalies.get(callee, {})
            # A callee whose own metrics look healthy is not broken, whatever callers say.
            # (Its own noisy logs do not count: only a metric excursion shows a callee is failing.)
            # A request rate that collapsed while callers kept sending is such an excursion too (traffic.collapses).
            quiet = known.get("has_metrics") and known.get("metric_score", known.get("score", 0)) <= 0 \
                and not _collapsed(known)
            if excess > 0 and not quiet:
                named_by.setdefault(callee, []).append(caller)
    implicated |= set(named_by)
    near: dict[str, list[str]] = {}
    for callee, callers in (named_near or {}).items():
        if callee not in implicated:
            continue  # naming alone does not make a quiet service the origin
        below = graph.descendants(callee) if callee in graph.calls else set()
        # As against_topology: a service's own callers named in its error text are noise.
        near[callee] = sorted(c for c in callers if c not in below and c in implicated)
    if not implicated:
        return []
    onsets = [a["onset"] for a in anomalies.values() if a.get("onset") is not None]
    first = min(onsets) if onsets else None
    out = []
    for service in implicated:
        info = anomalies.get(service, {})
        onset = info.get("onset")
        downstream = graph.descendants(service)
        victim_of = []
        # A service's own CPU running out is not something a slow or failing callee causes.
        own_cpu = float(info.get("families", {}).get("cpu", 0.0))
        # Nor a delay on the path to it (its callers wait while it does not work longer), a utilisation at
        # its limit, or errors it logged before any service it called did in the same traces: a fault
        # signature of its own (engine._add_signatures, ``own_fault`` 0..1).
        own = own_cpu >= EXPLAIN_SHARE * float(info.get("score", 0.0)) > 0 or float(info.get("own_fault", 0.0)) >= OWN_FAULT_SHARE
        # Of those, only what its traces show (a delay on the path to it, errors it wrote first, code it no
        # longer reaches) also holds against a callee its own errors name: a busy or saturated service (a
        # cron job's CPU, a traffic surge) whose errors are about a callee failing at least half as clearly
        # fails because of it.
        traced = any(float(info.get("families", {}).get(key, 0.0)) > 0 for key in TRACE_FAMILIES)
        for callee in sorted(downstream & implicated):
            callee_onset = anomalies.get(callee, {}).get("onset")
            callee_named = service in named_by.get(callee, [])
            if own and (traced or not callee_named or float(anomalies.get(callee, {}).get("score", 0.0))
                        < EXPLAIN_SHARE * float(info.get("score", 0.0))):
                continue
            if callee_onset is None and not callee_named:
                continue  # a callee with no onset of its own explains nothing unless named
            callee_strength = float(anomalies.get(callee, {}).get("score", 0.0))
            # A callee that stopped completing its callers' requests (traffic.collapses) explains their errors
            # however much louder they are: fan-out and retries amplify a failure on its way up (issue #15).
            if not callee_named and callee_strength < EXPLAIN_SHARE * float(info.get("score", 0.0)) \
                    and not _errors_explain(info, anomalies.get(callee, {})) \
                    and not _latency_explains(info, anomalies.get(callee, {})) \
                    and not _collapsed(anomalies.get(callee, {})):
                continue  # a faint blip downstream cannot explain a strong anomaly here
            if not callee_named and not _waits_on(info, anomalies.get(callee, {})):
                continue
            if not callee_named and (named_by.get(service) or near.get(service)) and info.get("has_logs", True):
                # Failing callers blame this service by name, and it blames nobody below. A service that
                # ships no logs could not have named its callee, so its silence says nothing (issue #15).
                continue
            # With a map, error text naming a callee is trusted whatever the onsets say; with none, that text is
            # the only edge, and a callee that went bad clearly after the caller did not break it (issue #15
            # round 7: a "TLS session resumption failed for <caller>" line read as an edge the wrong way).
            in_time = onset is None or callee_onset is None or \
                _earliest(anomalies.get(callee, {})) <= onset + ONSET_TOLERANCE_S
            if in_time or (callee_named and mapped):
                victim_of.append(callee)
        upstream = graph.ancestors(service)
        strength = float(info.get("score", 0.0))
        # A faint anomaly here cannot explain a much stronger one upstream, unless the caller names it.
        chain = _blamers(service, named_by)
        # A caller whose errors name this service (directly or through the callees it names in turn) is
        # explained by it even when one of its series moved earlier (a surge's CPU, a cron job): the
        # error text says what its errors are about, an onset is only its earliest strong series.
        explains = sorted(s for s in upstream & implicated if s != service
                          and (s in chain or _not_earlier(anomalies.get(s, {}).get("onset"),
                                                          _earliest(info) if onset is not None else None))
                          and (s in named_by.get(service, [])
                               or (_waits_on(anomalies.get(s, {}), info)
                                   and (strength >= EXPLAIN_SHARE * float(anomalies.get(s, {}).get("score", 0.0))
                                        or _latency_explains(anomalies.get(s, {}), info)
                                        or _collapsed(info)))))
        if onset is None:
            # Without telemetry of its own, a service explains only those that name it and their callers.
            namers = set(named_by.get(service, []))
            explains = sorted(s for s in explains if s in namers or graph.descendants(s) & namers)
        if not strength and service in named_by:
            # No own telemetry, but callers blame it by name: moderate strength.
            strength = 0.5
        early = 0.0
        if first is not None and onset is not None:
            early = max(0.0, 1.0 - max(0.0, onset - first) / 600.0)
        elif service in named_by:
            early = 0.5
        # A victim whose callee went bad clearly before it (more than the onset tolerance) is a victim twice
        # over: its own failure began after that callee's (issue #15: an entry service above the callee whose
        # fault it passes on, on metrics only).
        later = onset is not None and any(
            anomalies.get(c, {}).get("onset") is not None and anomalies[c]["onset"] < onset - ONSET_TOLERANCE_S
            for c in victim_of)
        # With no service map, a service that ships no logs could not name the callee it fails on: another one
        # that went bad clearly before any series of its own did, is still bad then, at least EXPLAIN_SHARE as
        # strongly, can explain its symptoms (_waits_on) and is not one of its known callers, may be that callee.
        # Precedence stands in for the missing edge (issue #15 round 7); a wobble that recovered before it is no
        # cause of it.
        # A fault of its own (CPU, a saturated resource, a trace signature) keeps it an origin, as with a map.
        own_first = None if own or float(info.get("families", {}).get("saturation", 0.0)) > 0 else leading_onset(info)
        unmapped_earlier = [] if mapped or own_first is None or info.get("has_logs", True) else sorted(
            s for s in implicated - graph.callers(service) - {service}
            if anomalies.get(s, {}).get("onset") is not None
            and (anomalies[s]["onset"] <= own_first - ONSET_TOLERANCE_S
                 or (anomalies[s]["onset"] <= own_first and _errors_above(anomalies[s], info)))
            and _still_bad(anomalies[s], own_first)
            and _waits_on(info, anomalies[s])
            and _failing(anomalies[s]) >= EXPLAIN_SHARE * strength)
        others = max(1, len(implicated) - 1)
        # Explaining many callers is evidence, but a popular leaf has many callers
        # by construction: count the share of its own callers that degraded.
        explain_share = 0.5 * len(explains) / others + 0.5 * len(explains) / max(1, len(upstream))
        score = (1.5 * strength + 1.2 * explain_share + 0.8 * min(1.0, len(named_by.get(service, [])) / 2)
                 + 0.6 * early + 0.4 * min(1.0, info.get("new_errors", 0) / 2) - 1.5 * (1 if victim_of else 0)
                 - LATER_VICTIM_PENALTY * (1 if later or unmapped_earlier else 0)
                 + NAMED_NEAR_WEIGHT * min(1.0, len(near.get(service, [])) / 2)
                 + COLLAPSE_WEIGHT * float((info.get("families") or {}).get("collapse", 0.0)))
        out.append({"service": service, "score": round(score, 4), "victim_of": victim_of, "explains": explains,
                    "named_by": sorted(named_by.get(service, [])), "named_near": near.get(service, []),
                    "onset": onset, "strength": round(strength, 4), "unmapped_earlier": unmapped_earlier,
                    "own_fault": round(float(info.get("own_fault", 0.0)), 4)})
    out.sort(key=lambda c: (-c["score"], c["service"]))
    return out
