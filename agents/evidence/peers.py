"""Dependencies that are no service of ours: names the callers' error lines give to what they called.

A third-party API or a managed datastore often has no telemetry of its own and, without a topology
file, no entry anywhere but in its callers' errors: ``upstream=adyen``, ``request to
http://tax-provider:443/v1 failed``, ``tax-provider returned HTTP 503``. Such a name can only be
blamed if it is a candidate, so we collect the names that error lines give to the peer of a failed
call, in shapes that do not depend on one writer's wording:

- a key/value field whose key says "the other side" (``upstream=``, ``peer.service=``, ``"host": ...``);
- an Envoy / Istio cluster name (``outbound|80||adyen``);
- a name right before "returned/responded <status>" or after "<status> from";
- a network address (``kafka:9092``) or the object of "connect(ion) to".

A name counts when it is no known service and no host of ours, is not a common word, and appears in
more WARN/ERROR lines after the onset than before (by ``MIN_EXCESS_LINES`` at the window's pace), so
a peer that always fails a little is not promoted. The names are added to the known services; the
mention machinery (signals._mentions, topology.locate_origin) then treats them like any silent
callee named by failing callers.
"""

from __future__ import annotations

import re
from typing import Any

from agents.evidence.timeutil import parse_ts

_NAME = r"[A-Za-z][A-Za-z0-9]*(?:[-_.][A-Za-z0-9]+)*"
_PEER_KEYS = r"upstream|upstream_host|upstream_cluster|peer|peer\.service|dependency|provider|remote|backend|target|" \
             r"destination|dest|server|host|hostname|endpoint"
_SCHEME = r"(?:[a-z][a-z0-9+.-]*://)?"
# ``upstream=adyen``, ``peer.service="tax-api"``, ``"upstream": "pg-users"`` (a bare ``server: ...`` is prose, not a field).
_FIELD = re.compile(rf"(?<![A-Za-z0-9_.])(?:{_PEER_KEYS})\s*=\s*[\"']?{_SCHEME}({_NAME})"
                    rf"|[\"'](?:{_PEER_KEYS})[\"']\s*:\s*[\"']{_SCHEME}({_NAME})", re.I)
# Envoy / Istio cluster names: ``outbound|80||mailer.default.svc.cluster.local``.
_CLUSTER = re.compile(rf"\b(?:inbound|outbound)\|\d*\|[^|\s]*\|({_NAME})", re.I)
_RETURNED = re.compile(rf"(?<![A-Za-z0-9_./-]){_SCHEME}({_NAME})\s+(?:returned|responded|answered)\s+(?:with\s+)?"
                       rf"(?:HTTP\s*|status\s*)?[1-5]\d\d\b", re.I)
_FROM = re.compile(rf"\b[1-5]\d\d\s+(?:[A-Za-z ]{{0,24}}\s)?from\s+(?:(?:GET|POST|PUT|PATCH|DELETE|HEAD)\s+)?{_SCHEME}({_NAME})",
                   re.I)
# A network address: ``elasticsearch:9200``, ``"pg-users", port 5432`` is prose (not caught), ``kafka:9092``.
_ADDRESS = re.compile(r"(?<![A-Za-z0-9_./:-])([A-Za-z]{2}[A-Za-z0-9]*(?:[-_.][A-Za-z0-9]+)*):\d{2,5}\b")
# ``Lost connection to X``, ``could not connect to server at X``.
_CONNECT = re.compile(rf"\bconnect(?:ion|ing|ed)?\s+to\s+(?:server\s+(?:at\s+)?)?[\"']?{_SCHEME}({_NAME})", re.I)
# Names these shapes catch that are no peer: words, local addresses, protocol words.
_NOT_NAMES = {"localhost", "unknown", "none", "null", "nil", "true", "false", "the", "server", "service", "upstream",
              "downstream", "backend", "remote", "peer", "host", "target", "http", "https", "grpc", "tcp", "udp",
              "error", "request", "response", "status", "client", "api", "internal", "default", "local", "it", "we",
              "call", "calls", "dependency", "provider", "endpoint", "inbound", "outbound", "get", "post", "put", "patch",
              "delete", "head", "node", "broker", "database", "db", "cluster", "instance", "replica", "shard", "leader",
              "primary", "master", "socket", "port"}
# Source files in stack traces (``HttpServlet.java:750``) are no peers.
_CODE_FILE = re.compile(r".*\.(?:java|kt|scala|groovy|py|go|js|mjs|cjs|ts|tsx|jsx|rb|php|cs|cpp|cc|c|h|hpp|rs|swift|ex|exs|erl|clj)$")
# What a pod or replica adds to its service's name: ``-7d9f8c6b5-x2kq4``, ``-03``.
_POD_SUFFIX = re.compile(r"(?:[0-9a-f]{5,10}-)?[0-9a-z]{5}|\d{1,3}")
MIN_EXCESS_LINES = 5.0
ERROR_LEVELS = ("WARN", "WARNING", "ERROR", "FATAL", "CRITICAL")


def peer_names(message: str) -> set[str]:
    """Names a log message gives to the other side of a call (lower-cased; may include our own services)."""
    found = set()
    for pattern in (_CLUSTER, _FIELD, _RETURNED, _FROM, _ADDRESS, _CONNECT):
        for match in pattern.finditer(message):
            name = next(group for group in match.groups() if group).strip(".-_").lower()
            if len(name) >= 3 and name not in _NOT_NAMES and not _CODE_FILE.match(name):
                found.add(name)
    return found


def discover(lines: list[dict[str, Any]], *, known: list[str], onset: float, ratio: float) -> dict[str, float]:
    """Peers named by error lines that are no known service, with their excess lines after the onset.

    Params: lines — log lines; known — known service names; onset — epoch s; ratio — the after span over
    the before span (as signals._mentions).
    Returns: ``{name: excess}`` for names with at least MIN_EXCESS_LINES excess lines.
    """
    ours = {name.lower() for name in known}
    counts: dict[str, list[int]] = {}
    cache: dict[str, set[str]] = {}
    for line in lines:
        if str(line.get("level", "")).upper() not in ERROR_LEVELS:
            continue
        message = str(line.get("message", ""))[:2000]
        names = cache.get(message)
        if names is None:
            names = cache[message] = {n for n in peer_names(message) if n not in ours and not _is_ours(n, ours)}
        if not names:
            continue
        ts = parse_ts(line.get("ts"))
        if ts is None:
            continue
        for name in names:
            counts.setdefault(name, [0, 0])[0 if ts < onset else 1] += 1
    found = {name: round(after - before * ratio, 2) for name, (before, after) in counts.items()
             if after - before * ratio >= MIN_EXCESS_LINES}
    if found:
        # A pod or host of ours that a line names (``host=web-7d9f``) is no peer.
        hosts = {str(line.get("host")).lower() for line in lines if line.get("host")}
        found = {name: excess for name, excess in found.items() if name not in hosts}
    return found


def _is_ours(name: str, ours: set[str]) -> bool:
    """An address of one of our services (``feed.default.svc.cluster.local``, ``feed-svc``, ``feed-7d9f``)."""
    first = name.split(".")[0]
    if first in ours:
        return True
    for svc in ours:
        if name.startswith(f"{svc}-") or name.startswith(f"{svc}_"):
            rest = name[len(svc) + 1:]
            if rest in ("svc", "service", "srv") or _POD_SUFFIX.fullmatch(rest):
                return True
    return False
