"""A stand-in for Grafana's official MCP server (``mcp-grafana``), built with our ``mcp`` SDK.

It offers the tools our ``grafana`` normaliser reads, with mcp-grafana's documented argument names
and answer shapes (tools/prometheus.go, tools/loki.go in grafana/mcp-grafana), over an in-memory
dataset: a world's ``metrics.jsonl`` behind a Prometheus datasource and its ``logs.jsonl`` behind a
Loki datasource (streams labelled ``service``, ``level`` — lower case, as Loki labels usually are —
and ``host``; the line is the message).

* ``query_prometheus(datasourceUid, expr, startTime, endTime?, stepSeconds?, queryType?)`` ->
  ``{"data": <Prometheus matrix|vector>, "hints"?: {...}}``; a PromQL subset: ``metric{matchers}`` or
  ``last_over_time(metric{matchers}[d])``, optionally inside ``sum|max|min|avg|count [by (labels)] (...)``,
  with Prometheus's 5-minute lookback for bare selectors.
* ``query_loki_logs(datasourceUid, logql, startRfc3339?, endRfc3339?, limit?, direction?, queryType?,
  stepSeconds?, format?)`` -> ``{"data": [{timestamp, line, labels}], "streams"?: [...compact...],
  "metadata": {...}, "hints"?: {...}}`` for log queries (limit default 10, capped at the server's
  maximum, 100; ``compact`` by default above 20 lines), and ``{labels, values: [{timestamp, value}]}``
  rows (range) or ``{timestamp, value, labels}`` (instant) for ``[sum [by (..)] (]count_over_time(...)``.
* ``query_loki_stats(datasourceUid, logql, startRfc3339?, endRfc3339?)`` -> ``{streams, chunks, entries, bytes}``.
* ``list_datasources()`` -> ``[{id, uid, name, type, isDefault}]``.

Like the real server it refuses unknown arguments and unknown datasource UIDs with an error result
(isError), and answers text content (JSON) only. Faults for tests: ``--delay-s`` (every tool sleeps
first), ``--garbage text|json`` (every tool answers non-JSON text, or JSON of another shape).

Run: ``python -m tests.fakes.grafana_mcp --world DIR [--transport stdio|streamable-http --port N
--require-header NAME=VALUE]``.
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import re
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import ConfigDict

LOOKBACK_S = 300.0
DEFAULT_LOKI_LIMIT, MAX_LOKI_LIMIT = 10, 100
_COMPACT_ABOVE = 20


# ------------------------------------------------------------------------------------------- time


def parse_time(text: str, now: float | None = None) -> float:
    """RFC 3339 (fractional seconds allowed, up to ns) or ``now`` / ``now-1h30m`` -> epoch seconds."""
    now = time.time() if now is None else now
    text = text.strip()
    if text == "now":
        return now
    rel = re.fullmatch(r"now-((?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h|d))+)", text)
    if rel:
        units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400}
        total = sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)", rel.group(1)))
        return now - total
    m = re.fullmatch(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)", text)
    if not m:
        raise ValueError(f'parsing time "{text}" as "2006-01-02T15:04:05Z07:00": cannot parse')
    import calendar

    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    epoch = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) + (int((m.group(7) or "0").ljust(9, "0")) / 1e9)
    zone = m.group(8)
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        epoch -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return epoch


def _ns(text: str) -> int:
    return round(parse_time(text) * 1e9)


def _duration_s(text: str) -> float:
    units = {"ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w|y)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ToolError(f'parse error : not a valid duration string: "{text}"')
    return sum(int(n) * units[u] for n, u in parts)


def _go_float(value: float) -> str:
    """Go's strconv.FormatFloat(v, 'f', -1, 64): shortest decimal, never an exponent."""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return format(Decimal(repr(value)), "f")


def _prom_ts(epoch: float) -> float | int:
    """model.Time's JSON: seconds with up to millisecond decimals."""
    ms = round(epoch * 1000)
    return ms // 1000 if ms % 1000 == 0 else ms / 1000


# ------------------------------------------------------------------------------------------- matchers


_MATCHER = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|`[^`]*`)\s*(,|$)')


def _unquote(token: str) -> str:
    if token.startswith("`"):
        return token[1:-1]
    return str(json.loads(token))


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str

    def matches(self, labels: dict[str, str]) -> bool:
        got = labels.get(self.name, "")
        if self.op == "=":
            return got == self.value
        if self.op == "!=":
            return got != self.value
        found = re.fullmatch(self.value, got) is not None
        return found if self.op == "=~" else not found

    def empty_compatible(self) -> bool:
        return self.matches({})


def parse_matchers(text: str, where: str) -> list[Matcher]:
    out, pos, text = [], 0, text.strip()
    while pos < len(text):
        m = _MATCHER.match(text, pos)
        if not m:
            raise ToolError(f"{where}: parse error at {text[pos:pos + 20]!r}: unexpected character inside braces")
        value = _unquote(m.group(3))
        if m.group(2) in ("=~", "!~"):
            try:
                re.compile(value)
            except re.error as exc:
                raise ToolError(f"{where}: error parsing regexp: {exc}") from None
        out.append(Matcher(m.group(1), m.group(2), value))
        pos = m.end()
    return out


# ------------------------------------------------------------------------------------------- dataset


class Dataset:
    """A world's metrics and logs, indexed for the queries above."""

    def __init__(self, world: Path) -> None:
        self.series: dict[tuple[tuple[str, str], ...], tuple[list[float], list[float]]] = {}
        raw: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = defaultdict(list)
        metrics = world / "metrics.jsonl"
        if metrics.exists():
            for line in metrics.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    rec = json.loads(line)
                    key = tuple(sorted({"__name__": rec["name"], "service": rec["service"]}.items()))
                    raw[key].append((parse_time(rec["ts"]), float(rec["value"])))
        for key, points in raw.items():
            points.sort()
            self.series[key] = ([p[0] for p in points], [p[1] for p in points])
        # Logs: (ns, stream labels, line), ordered by time then stream then file order (stable across calls).
        entries = []
        logs = world / "logs.jsonl"
        if logs.exists():
            for i, line in enumerate(logs.read_text(encoding="utf-8").splitlines()):
                if line.strip():
                    rec = json.loads(line)
                    labels = {"service": rec["service"], "level": str(rec["level"]).lower()}
                    if rec.get("host"):
                        labels["host"] = rec["host"]
                    if rec.get("trace_id"):
                        labels["trace_id"] = rec["trace_id"]
                    entries.append((round(parse_time(rec["ts"]) * 1e9), i, labels, rec["message"]))
        entries.sort(key=lambda e: (e[0], e[1]))
        self.logs = [(ns, labels, text) for ns, _, labels, text in entries]
        self.log_ns = [e[0] for e in self.logs]


# ------------------------------------------------------------------------------------------- PromQL subset


_AGG = re.compile(r"^\s*(sum|max|min|avg|count)\s*(?:by\s*\(([^)]*)\))?\s*\((.*)\)\s*$", re.S)
_SELECTOR = re.compile(r"^\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*(?:\{(.*)\})?\s*$", re.S)
_LAST = re.compile(r"^\s*last_over_time\s*\((.*)\[([0-9a-z]+)\]\s*\)\s*$", re.S)
_AGGREGATE: dict[str, Callable[[list[float]], float]] = {
    "sum": sum, "max": max, "min": min, "avg": lambda v: sum(v) / len(v), "count": lambda v: float(len(v))}


def _promql(expr: str) -> tuple[str | None, list[str] | None, float | None, list[Matcher]]:
    """``(aggregation, by labels, last_over_time window or None, matchers)`` of the supported subset."""
    agg = _AGG.match(expr)
    by: list[str] | None = None
    op = None
    inner = expr
    if agg:
        op, inner = agg.group(1), agg.group(3)
        by = [b.strip() for b in agg.group(2).split(",") if b.strip()] if agg.group(2) is not None else []
    window = None
    last = _LAST.match(inner)
    if last:
        inner, window = last.group(1), _duration_s(last.group(2))
    sel = _SELECTOR.match(inner)
    if not sel or inner.count("(") != inner.count(")"):
        why = "unclosed left parenthesis" if expr.count("(") > expr.count(")") else "unexpected expression"
        raise ToolError(f'bad_data: invalid parameter "query": 1:{len(expr)}: parse error: {why}')
    matchers = [Matcher("__name__", "=", sel.group(1)), *parse_matchers(sel.group(2) or "", "bad_data")]
    return op, by, window, matchers


def eval_promql(data: Dataset, expr: str, times: list[float], lookback_s: float) -> list[dict[str, Any]]:
    """Evaluate at each time; return ``[(labels, [(t, value), ...])]`` as Prometheus matrix rows."""
    op, by, window, matchers = _promql(expr)
    rows: dict[tuple[tuple[str, str], ...], dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for key, (ts, vals) in data.series.items():
        labels = dict(key)
        if not all(m.matches(labels) for m in matchers):
            continue
        if op is None:
            group = key
        else:
            group = tuple(sorted((k, v) for k, v in labels.items() if by and k in by))
        for t in times:
            i = bisect.bisect_right(ts, t) - 1
            # last_over_time(x[w]) takes the newest sample in (t - w, t]; a bare selector the newest
            # within the lookback delta.
            if i >= 0 and (ts[i] > t - window if window is not None else ts[i] >= t - lookback_s):
                rows[group][t].append(vals[i])
    out = []
    for group in sorted(rows):
        values = []
        for t in sorted(rows[group]):
            vs = rows[group][t]
            values.append([_prom_ts(t), _go_float(_AGGREGATE[op](vs) if op else vs[0])])
        out.append({"metric": dict(group), "values": values})
    return out


# ------------------------------------------------------------------------------------------- LogQL subset


_FILTER = re.compile(r'\s*(\|=|!=|\|~|!~)\s*("(?:[^"\\]|\\.)*"|`[^`]*`)')
_METRIC = re.compile(r"^\s*(?:(sum)\s*(?:by\s*\(([^)]*)\))?\s*\()?\s*count_over_time\s*\((.*)\[([0-9a-z]+)\]\s*\)"
                     r"\s*(\))?\s*$", re.S)


@dataclass
class LogQuery:
    matchers: list[Matcher]
    filters: list[tuple[str, str]]

    def keep(self, labels: dict[str, str], line: str) -> bool:
        if not all(m.matches(labels) for m in self.matchers):
            return False
        for op, arg in self.filters:
            if op == "|=" and arg not in line or op == "!=" and arg in line:
                return False
            if op in ("|~", "!~") and (re.search(arg, line) is not None) != (op == "|~"):
                return False
        return True


def parse_log_query(text: str) -> LogQuery:
    text = text.strip()
    if not text.startswith("{"):
        raise ToolError("parse error : syntax error: unexpected IDENTIFIER, expecting { or ( or count_over_time")
    close = text.find("}")
    if close < 0:
        raise ToolError("parse error : syntax error: unexpected $end, expecting } or ,")
    matchers = parse_matchers(text[1:close], "parse error")
    if not matchers or all(m.empty_compatible() for m in matchers):
        raise ToolError('parse error : queries require at least one regexp or equality matcher that does not have '
                        'an empty-compatible value. For instance, app=~".*" does not meet this requirement, but '
                        'app=~".+" will')
    filters, pos, rest = [], 0, text[close + 1:]
    while pos < len(rest.rstrip()):
        m = _FILTER.match(rest, pos)
        if not m:
            raise ToolError(f"parse error : syntax error near {rest[pos:pos + 20]!r}")
        arg = _unquote(m.group(2))
        if m.group(1) in ("|~", "!~"):
            try:
                re.compile(arg)
            except re.error as exc:
                raise ToolError(f"parse error : invalid regexp {arg!r}: {exc}") from None
        filters.append((m.group(1), arg))
        pos = m.end()
    return LogQuery(matchers, filters)


# ------------------------------------------------------------------------------------------- the server


def _hints(kind: str, query: str) -> dict[str, Any]:
    return {"summary": f"The {kind} query returned no data for the given time range.",
            "possibleCauses": ["The selector matches no series/streams", "The time range holds no data"],
            "suggestedActions": [f"Check the labels used in {query!r}", "Widen the time range"]}


def build_server(world: Path, *, prometheus_uid: str = "prometheus", loki_uid: str = "loki",
                 lookback_s: float = LOOKBACK_S, max_loki_limit: int = MAX_LOKI_LIMIT, delay_s: float = 0.0,
                 garbage: str = "") -> MCPServer:
    """The stand-in server over ``world``'s data."""
    data = Dataset(world)
    datasources = {prometheus_uid: ("prometheus", "Prometheus"), loki_uid: ("loki", "Loki")}
    server = MCPServer("mcp-grafana", log_level="WARNING")

    def datasource(uid: str, want: str, what: str) -> None:
        found = datasources.get(uid)
        if found is None:
            raise ToolError(f"{what}: datasource with UID '{uid}' not found. Please check if the datasource "
                            "exists and is accessible")
        if found[0] != want:
            raise ToolError(f"{what}: datasource {uid} is of type {found[0]}, not {want}")

    async def answer(value: Any) -> str:
        if delay_s:
            await anyio.sleep(delay_s)
        if garbage == "text":
            return "<html><body>502 Bad Gateway</body></html>"
        if garbage == "json":
            return json.dumps({"status": "ok", "message": "query accepted"})
        return json.dumps(value, separators=(",", ":"))

    @server.tool(structured_output=False)
    async def list_datasources() -> str:
        """List all configured datasources in Grafana."""
        return await answer([{"id": i + 1, "uid": uid, "name": name, "type": kind, "isDefault": i == 0}
                             for i, (uid, (kind, name)) in enumerate(datasources.items())])

    @server.tool(structured_output=False)
    async def query_prometheus(datasourceUid: str, expr: str, startTime: str, endTime: str = "",  # noqa: N803
                               stepSeconds: int = 0, queryType: str = "") -> str:  # noqa: N803
        """Query Prometheus using a PromQL expression (range or instant)."""
        datasource(datasourceUid, "prometheus", "getting Prometheus client")
        kind = queryType or "range"
        try:
            t0 = parse_time(startTime)
        except ValueError as exc:
            raise ToolError(f"parsing start time: {exc}") from None
        if kind == "range":
            if stepSeconds == 0:
                raise ToolError("stepSeconds must be provided when queryType is 'range'")
            try:
                t1 = parse_time(endTime)
            except ValueError as exc:
                raise ToolError(f"parsing end time: {exc}") from None
            if (t1 - t0) / stepSeconds > 11_000:
                raise ToolError("querying Prometheus range: bad_data: exceeded maximum resolution of 11,000 points "
                                "per timeseries. Try decreasing the query resolution (?step=XX)")
            times = [t0 + k * stepSeconds for k in range(int(math.floor((t1 - t0) / stepSeconds)) + 1)]
            try:
                result: Any = eval_promql(data, expr, times, lookback_s)
            except ToolError as exc:
                raise ToolError(f"querying Prometheus range: {exc}") from None
        elif kind == "instant":
            rows = eval_promql(data, expr, [t0], lookback_s)
            result = [{"metric": r["metric"], "value": r["values"][0]} for r in rows if r["values"]]
        else:
            raise ToolError(f"invalid query type: {kind}")
        out: dict[str, Any] = {"data": result}
        if not result:
            out["hints"] = _hints("prometheus", expr)
        return await answer(out)

    @server.tool(structured_output=False)
    async def query_loki_logs(datasourceUid: str, logql: str, startRfc3339: str = "",  # noqa: N803
                              endRfc3339: str = "", limit: int = 0, direction: str = "",  # noqa: N803
                              queryType: str = "", stepSeconds: int = 0, format: str = "") -> str:  # noqa: A002, N803
        """Executes a LogQL query against a Loki datasource (log lines or count_over_time metrics)."""
        if not logql.strip():
            raise ToolError("logql is required")
        fmt = format.strip().lower()
        if fmt not in ("", "full", "compact"):
            raise ToolError(f"invalid format {format!r}: must be 'full' or 'compact'")
        datasource(datasourceUid, "loki", "creating Loki backend")
        now = time.time()
        try:
            if queryType == "instant":
                at = parse_time(endRfc3339 or startRfc3339 or "now")
                t0 = t1 = at
            else:
                t0 = parse_time(startRfc3339) if startRfc3339 else now - 3600
                t1 = parse_time(endRfc3339) if endRfc3339 else now
        except ValueError as exc:
            raise ToolError(f"parsing start time: {exc}") from None
        cap = max(1, max_loki_limit)
        lim = DEFAULT_LOKI_LIMIT if limit <= 0 else min(limit, cap)
        metric = _METRIC.match(logql)
        if metric:
            if bool(metric.group(1)) != bool(metric.group(5)):
                raise ToolError("parse error : syntax error: unexpected )")
            query = parse_log_query(metric.group(3))
            window = _duration_s(metric.group(4))
            by = [b.strip() for b in (metric.group(2) or "").split(",") if b.strip()]
            summed = bool(metric.group(1))
            if queryType == "instant":
                times = [t0]
            else:
                step = stepSeconds or max(1, math.ceil((t1 - t0) / 250))
                times = [t0 + k * step for k in range(int(math.floor((t1 - t0) / step)) + 1)]
            groups: dict[tuple[tuple[str, str], ...], dict[float, int]] = defaultdict(lambda: defaultdict(int))
            for t in times:
                hi = bisect.bisect_right(data.log_ns, round(t * 1e9))
                lo = bisect.bisect_right(data.log_ns, round((t - window) * 1e9))
                for _ns, labels, line in data.logs[lo:hi]:
                    if query.keep(labels, line):
                        key = tuple(sorted((k, v) for k, v in labels.items() if k in by)) if summed \
                            else tuple(sorted(labels.items()))
                        groups[key][t] += 1
            entries: list[dict[str, Any]] = []
            for key in sorted(groups):
                if queryType == "instant":
                    for t, n in groups[key].items():
                        entries.append({"timestamp": f"{t:.3f}", "value": float(n), "labels": dict(key)})
                else:
                    values = [{"timestamp": f"{t:.3f}", "value": float(n)} for t, n in sorted(groups[key].items())]
                    entries.append({"values": values, "labels": dict(key)})
            out: dict[str, Any] = {"data": entries, "metadata": {
                "linesReturned": len(entries), "maxLinesAllowed": lim, "resultsTruncated": False,
                "totalLinesScanned": None, "startTime": startRfc3339, "endTime": endRfc3339}}
            if not entries:
                out["hints"] = _hints("loki", logql)
            return await answer(out)
        query = parse_log_query(logql)
        lo = bisect.bisect_left(data.log_ns, round(t0 * 1e9))
        hi = bisect.bisect_left(data.log_ns, round(t1 * 1e9))
        matched = [e for e in data.logs[lo:hi] if query.keep(e[1], e[2])]
        ask = lim + 1  # the real tool asks one more than it returns, to know it cut the answer
        picked = matched[:ask] if (direction or "backward") == "forward" else matched[::-1][:ask]
        truncated = len(picked) > lim
        rows = [{"timestamp": str(ns), "line": line, "labels": dict(labels)} for ns, labels, line in picked[:lim]]
        out = {"data": rows, "metadata": {"linesReturned": len(rows), "maxLinesAllowed": lim,
                                          "resultsTruncated": truncated, "totalLinesScanned": hi - lo,
                                          "startTime": startRfc3339, "endTime": endRfc3339}}
        if not rows:
            out["hints"] = _hints("loki", logql)
        if (fmt or ("compact" if lim > _COMPACT_ABOVE else "full")) == "compact":
            streams: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
            for row in rows:
                key = tuple(sorted(row["labels"].items()))
                streams.setdefault(key, {"labels": row["labels"], "lines": []})["lines"].append(
                    {"timestamp": row["timestamp"], "line": row["line"]})
            out["streams"] = list(streams.values())
            out["data"] = []
        return await answer(out)

    @server.tool(structured_output=False)
    async def query_loki_stats(datasourceUid: str, logql: str, startRfc3339: str = "",  # noqa: N803
                               endRfc3339: str = "") -> str:  # noqa: N803
        """Statistics about log streams matching a LogQL selector: {streams, chunks, entries, bytes}."""
        datasource(datasourceUid, "loki", "creating Loki client")
        query = parse_log_query(logql)
        if query.filters:
            raise ToolError("only label matchers are supported by the stats endpoint")
        now = time.time()
        try:
            t0 = parse_time(startRfc3339) if startRfc3339 else now - 3600
            t1 = parse_time(endRfc3339) if endRfc3339 else now
        except ValueError as exc:
            raise ToolError(f"parsing time: {exc}") from None
        lo = bisect.bisect_left(data.log_ns, round(t0 * 1e9))
        hi = bisect.bisect_left(data.log_ns, round(t1 * 1e9))
        hits = [e for e in data.logs[lo:hi] if query.keep(e[1], e[2])]
        streams = {tuple(sorted(e[1].items())) for e in hits}
        return await answer({"streams": len(streams), "chunks": len(streams), "entries": len(hits),
                             "bytes": sum(len(e[2]) for e in hits)})

    _refuse_unknown_arguments(server)
    return server


def _refuse_unknown_arguments(server: MCPServer) -> None:
    """Make every tool refuse unknown argument names, as mcp-grafana does (its schemas say
    additionalProperties: false and its handler rejects them); the SDK would drop them silently."""
    for tool in server._tool_manager.list_tools():  # noqa: SLF001 - a test stand-in reaching into the SDK
        base = tool.fn_metadata.arg_model
        strict = type(base.__name__, (base,), {"model_config": ConfigDict(arbitrary_types_allowed=True,
                                                                           extra="forbid")})
        tool.fn_metadata.arg_model = strict


class _RequireHeader:
    """ASGI middleware: 401 unless the request carries ``name: value`` (like Grafana refusing a bad key)."""

    def __init__(self, app: Any, name: str, value: str) -> None:
        self.app, self.name, self.value = app, name.lower().encode(), value.encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and dict(scope["headers"]).get(self.name) != self.value:
            body = b'{"message":"Unauthorized"}'
            await send({"type": "http.response.start", "status": 401,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", required=True, type=Path)
    parser.add_argument("--transport", choices=("stdio", "streamable-http"), default="stdio")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--prometheus-uid", default="prometheus")
    parser.add_argument("--loki-uid", default="loki")
    parser.add_argument("--lookback-s", type=float, default=LOOKBACK_S)
    parser.add_argument("--max-loki-log-limit", type=int, default=MAX_LOKI_LIMIT)
    parser.add_argument("--delay-s", type=float, default=0.0)
    parser.add_argument("--garbage", choices=("", "text", "json"), default="")
    parser.add_argument("--require-header", default="", help="NAME=VALUE every HTTP request must carry")
    opts = parser.parse_args(argv)
    server = build_server(opts.world, prometheus_uid=opts.prometheus_uid, loki_uid=opts.loki_uid,
                          lookback_s=opts.lookback_s, max_loki_limit=opts.max_loki_log_limit,
                          delay_s=opts.delay_s, garbage=opts.garbage)
    if opts.transport == "stdio":
        server.run("stdio")
        return
    import uvicorn

    app: Any = server.streamable_http_app(host="127.0.0.1")
    if opts.require_header:
        name, _, value = opts.require_header.partition("=")
        app = _RequireHeader(app, name, value)
    uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=opts.port, log_level="warning")).run()


if __name__ == "__main__":
    main()
