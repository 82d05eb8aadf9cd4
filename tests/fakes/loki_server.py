"""A stand-in Grafana Loki on loopback: its query HTTP API over log lines held in memory.

Written from the Loki HTTP API reference (``docs/sources/reference/loki-http-api.md``) and the
LogQL documentation. It serves:

* ``GET /ready`` -> ``ready``
* ``GET /loki/api/v1/labels`` and ``GET /loki/api/v1/label/<name>/values`` -> ``{"status": "success", "data": [...]}``
* ``GET /loki/api/v1/query_range`` (``query``, ``start``, ``end`` as ns epochs, float seconds or
  RFC3339, ``limit`` default 100, ``direction`` default backward, ``step`` as a duration or float
  seconds): log queries answer ``resultType: streams``, metric queries ``resultType: matrix``.

The LogQL it understands is parsed, not pattern-matched: stream selectors with ``=``, ``!=``,
``=~``, ``!~`` (at least one matcher must not match the empty string, as Loki demands); line
filters ``|=``, ``!=``, ``|~``, ``!~``; ``| json`` and ``| logfmt`` (with or without
``name="path"`` extractions; a line that is not JSON gets ``__error__``; logfmt is not strict, skipping
what is not a pair, as Loki's default); ``| drop a, b``;
label filters ``| name op "value"`` joined by ``and`` / ``or``; and the metric form
``sum [by (labels)] (count_over_time(<log query> [<duration>] [offset <duration>]))`` evaluated as
Loki does: the query frontend first aligns ``start`` down and ``end`` up to multiples of the step,
then the range ``(t - offset - range, t - offset]`` is counted at ``start``, ``start + step``, ...
``<= end``. Anything else is
answered as Loki answers a parse error: HTTP 400 with a text body. Limits as Loki's: ``limit``
above ``max_entries`` (``max_entries_limit_per_query``, 5000) and more than 11,000 points per
series are refused with 400.

Test controls: :meth:`FakeLoki.push` adds lines, :meth:`FakeLoki.fail_next` queues error answers,
:attr:`FakeLoki.garbage` answers non-JSON, :attr:`FakeLoki.delay_s` slows every answer,
:attr:`FakeLoki.tenant` requires ``X-Scope-OrgID``; :attr:`FakeLoki.requests` records each
request (path, params, headers).
"""

from __future__ import annotations

import bisect
import datetime as _dt
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from tests.fakes.loopback import LoopbackServer, QuietHandler

_NS = 1_000_000_000
MAX_POINTS = 11_000
_UNITS = {"ms": 1_000_000, "s": _NS, "m": 60 * _NS, "h": 3600 * _NS, "d": 86400 * _NS, "w": 7 * 86400 * _NS,
          "y": 365 * 86400 * _NS}


class LogQLError(ValueError):
    """A query Loki would refuse with HTTP 400 (the message is Loki's text body)."""


# ---------------------------------------------------------------- lexer

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*"|`[^`]*`)
  | (?P<duration>\d+(?:ms|[smhdwy])(?:\d+(?:ms|[smhdwy]))*)
  | (?P<number>\d+(?:\.\d+)?)
  | (?P<op>\|=|\|~|!=|!~|=~|=|\||\{|\}|\(|\)|\[|\]|,)
  | (?P<ident>[a-zA-Z_][a-zA-Z0-9_]*)
""", re.VERBOSE)


@dataclass
class _Tok:
    kind: str
    text: str
    col: int


def _lex(query: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    while pos < len(query):
        m = _TOKEN.match(query, pos)
        if m is None:
            raise LogQLError(f"parse error at line 1, col {pos + 1}: syntax error: unexpected {query[pos]!r}")
        kind = m.lastgroup or ""
        if kind != "ws":
            out.append(_Tok(kind, m.group(), pos + 1))
        pos = m.end()
    out.append(_Tok("eof", "", len(query) + 1))
    return out


def _unquote(tok: _Tok) -> str:
    """A LogQL string literal's value (Go escapes in double quotes; backticks are raw)."""
    text = tok.text
    if text.startswith("`"):
        return text[1:-1]
    body, out, i = text[1:-1], [], 0
    simple = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a", "b": "\b", "f": "\f",
              "v": "\v"}
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1] if i + 1 < len(body) else ""
        if nxt in simple:
            out.append(simple[nxt])
            i += 2
        elif nxt == "x" and re.fullmatch(r"[0-9a-fA-F]{2}", body[i + 2:i + 4]):
            out.append(chr(int(body[i + 2:i + 4], 16)))
            i += 4
        elif nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", body[i + 2:i + 6]):
            out.append(chr(int(body[i + 2:i + 6], 16)))
            i += 6
        else:
            raise LogQLError(f"parse error at line 1, col {tok.col + i + 1}: invalid syntax (unknown escape "
                             f"sequence \\{nxt})")
    return "".join(out)


def _duration_ns(text: str) -> int:
    total = 0
    for number, unit in re.findall(r"(\d+)(ms|[smhdwy])", text):
        total += int(number) * _UNITS[unit]
    return total


def _regex(pattern: str, col: int) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise LogQLError(f"parse error at line 1, col {col}: error parsing regexp: {exc}: `{pattern}`") from None


# ---------------------------------------------------------------- the query tree


@dataclass
class _Matcher:
    name: str
    op: str
    value: str
    regex: re.Pattern[str] | None = None

    def matches(self, labels: dict[str, str]) -> bool:
        have = labels.get(self.name, "")
        if self.op == "=":
            return have == self.value
        if self.op == "!=":
            return have != self.value
        assert self.regex is not None
        hit = self.regex.fullmatch(have) is not None
        return hit if self.op == "=~" else not hit


@dataclass
class _LogQuery:
    matchers: list[_Matcher]
    stages: list[Callable[[str, dict[str, str]], bool]] = field(default_factory=list)


@dataclass
class _MetricQuery:
    log: _LogQuery
    range_ns: int
    by: list[str] | None  # None: sum over everything
    offset_ns: int = 0


class _Parser:
    def __init__(self, query: str) -> None:
        self.toks = _lex(query)
        self.i = 0

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def take(self, kind: str | None = None, text: str | None = None) -> _Tok:
        tok = self.tok
        if (kind is not None and tok.kind != kind) or (text is not None and tok.text != text):
            want = text or kind
            got = tok.text or "end of input"
            raise LogQLError(f"parse error at line 1, col {tok.col}: syntax error: unexpected {got}, expecting {want}")
        self.i += 1
        return tok

    def at(self, text: str) -> bool:
        return self.tok.text == text and self.tok.kind in ("op", "ident")

    def parse(self) -> _LogQuery | _MetricQuery:
        if self.tok.kind == "ident" and self.tok.text == "sum":
            out: _LogQuery | _MetricQuery = self.metric()
        elif self.at("{"):
            out = self.log_query()
        else:
            raise LogQLError(f"parse error at line 1, col {self.tok.col}: syntax error: unexpected "
                             f"{self.tok.text or 'end of input'} (this stand-in knows sum(count_over_time(...)) "
                             "and log queries)")
        self.take("eof")
        return out

    def grouping(self) -> list[str]:
        self.take("ident", "by")
        self.take("op", "(")
        names = [self.take("ident").text]
        while self.at(","):
            self.take("op", ",")
            names.append(self.take("ident").text)
        self.take("op", ")")
        return names

    def metric(self) -> _MetricQuery:
        self.take("ident", "sum")
        by = self.grouping() if self.at("by") else None
        self.take("op", "(")
        fn = self.take("ident")
        if fn.text != "count_over_time":
            raise LogQLError(f"parse error at line 1, col {fn.col}: syntax error: unexpected {fn.text} "
                             "(only count_over_time is served here)")
        self.take("op", "(")
        log = self.log_query()
        self.take("op", "[")
        dur = self.take("duration")
        self.take("op", "]")
        offset = 0
        if self.tok.kind == "ident" and self.tok.text == "offset":
            self.take("ident", "offset")
            offset = _duration_ns(self.take("duration").text)
        self.take("op", ")")
        self.take("op", ")")
        if self.at("by"):
            if by is not None:
                raise LogQLError(f"parse error at line 1, col {self.tok.col}: syntax error: unexpected by")
            by = self.grouping()
        return _MetricQuery(log, _duration_ns(dur.text), by, offset)

    def log_query(self) -> _LogQuery:
        self.take("op", "{")
        matchers = [self.matcher()]
        while self.at(","):
            self.take("op", ",")
            matchers.append(self.matcher())
        self.take("op", "}")
        if all(m.matches({}) for m in matchers):
            raise LogQLError("queries require at least one regexp or equality matcher that does not have an "
                             "empty-compatible value. For instance, app=~\".*\" does not meet this requirement, "
                             "but app=~\".+\" will")
        query = _LogQuery(matchers)
        while self.tok.kind == "op" and self.tok.text in ("|=", "|~", "!=", "!~", "|"):
            query.stages.append(self.stage())
        return query

    def matcher(self) -> _Matcher:
        name = self.take("ident").text
        op = self.take("op")
        if op.text not in ("=", "!=", "=~", "!~"):
            raise LogQLError(f"parse error at line 1, col {op.col}: syntax error: unexpected {op.text}")
        value_tok = self.take("string")
        value = _unquote(value_tok)
        regex = _regex(value, value_tok.col) if op.text in ("=~", "!~") else None
        return _Matcher(name, op.text, value, regex)

    def stage(self) -> Callable[[str, dict[str, str]], bool]:
        op = self.take("op")
        if op.text in ("|=", "!=", "|~", "!~"):
            tok = self.take("string")
            needle = _unquote(tok)
            if op.text == "|=":
                return lambda line, labels: needle in line
            if op.text == "!=":
                return lambda line, labels: needle not in line
            rx = _regex(needle, tok.col)
            if op.text == "|~":
                return lambda line, labels: rx.search(line) is not None
            return lambda line, labels: rx.search(line) is None
        word = self.take("ident")
        if word.text in ("json", "logfmt"):
            params: list[tuple[str, str]] = []
            if self.tok.kind == "ident" and self.toks[self.i + 1].text == "=":
                params.append(self.param())
                while self.at(","):
                    self.take("op", ",")
                    params.append(self.param())
            return _json_stage(params) if word.text == "json" else _logfmt_stage(params)
        if word.text == "drop":
            names = [self.take("ident").text]
            while self.at(","):
                self.take("op", ",")
                names.append(self.take("ident").text)

            def drop(line: str, labels: dict[str, str]) -> bool:
                for name in names:
                    labels.pop(name, None)
                return True
            return drop
        self.i -= 1  # a label filter: name op "value" [and|or ...]
        return self.label_filter()

    def param(self) -> tuple[str, str]:
        name = self.take("ident").text
        self.take("op", "=")
        return name, _unquote(self.take("string"))

    def label_filter(self) -> Callable[[str, dict[str, str]], bool]:
        groups: list[list[_Matcher]] = [[self.matcher()]]  # or of ands
        while self.tok.kind == "ident" and self.tok.text in ("and", "or"):
            word = self.take("ident").text
            if word == "and":
                groups[-1].append(self.matcher())
            else:
                groups.append([self.matcher()])
        return lambda line, labels: any(all(m.matches(labels) for m in group) for group in groups)


def _add(labels: dict[str, str], name: str, value: str, original: frozenset[str]) -> None:
    labels[name + "_extracted" if name in original else name] = value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _path_parts(path: str) -> list[tuple[str, str, str]]:
    """A json extraction path (``a.b``, ``a[0]``, ``["a.b"]``) as its steps."""
    return re.findall(r'\["((?:[^"\\]|\\.)*)"\]|\[(\d+)\]|([^.\[\]]+)', path)


def _path(doc: Any, parts: list[tuple[str, str, str]]) -> Any:
    for key, index, name in parts:
        if index:
            doc = doc[int(index)] if isinstance(doc, list) and int(index) < len(doc) else None
        else:
            doc = doc.get(key or name) if isinstance(doc, dict) else None
        if doc is None:
            return None
    return doc


def _json_stage(params: list[tuple[str, str]]) -> Callable[[str, dict[str, str]], bool]:
    paths = [(name, _path_parts(path)) for name, path in params]

    def run(line: str, labels: dict[str, str]) -> bool:
        original = frozenset(labels)
        try:
            doc = json.loads(line)
            if not isinstance(doc, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            labels["__error__"] = "JSONParserErr"
            labels["__error_details__"] = str(exc)[:100]
            return True
        if paths:
            for name, parts in paths:
                value = _path(doc, parts)
                if value is not None:
                    _add(labels, name, _text(value), original)
            return True

        def flatten(prefix: str, obj: dict[str, Any]) -> None:
            for key, value in obj.items():
                name = re.sub(r"[^a-zA-Z0-9_]", "_", prefix + key)
                if isinstance(value, dict):
                    flatten(name + "_", value)
                elif not isinstance(value, list):
                    _add(labels, name, "" if value is None else _text(value), original)
        flatten("", doc)
        return True
    return run


_LOGFMT_PAIR = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_.-]*)(?:=("(?:[^"\\]|\\.)*"|\S*))?')


def _logfmt_stage(params: list[tuple[str, str]]) -> Callable[[str, dict[str, str]], bool]:
    def run(line: str, labels: dict[str, str]) -> bool:
        original = frozenset(labels)
        pairs: dict[str, str] = {}
        pos = 0
        text = line.strip()
        while pos < len(text):
            m = _LOGFMT_PAIR.match(text, pos)
            if m is None or m.end() == pos:  # not strict (Loki's default): skip what is not a pair
                nxt = text.find(" ", pos + 1)
                pos = len(text) if nxt < 0 else nxt
                continue
            value = m.group(2) or ""
            if value.startswith('"'):
                value = json.loads(value)
            pairs[m.group(1)] = value
            pos = m.end()
        if params:
            for name, key in params:
                if key in pairs:
                    _add(labels, name, pairs[key], original)
        else:
            for key, value in pairs.items():
                _add(labels, re.sub(r"[^a-zA-Z0-9_]", "_", key), value, original)
        return True
    return run


def parse_logql(query: str) -> _LogQuery | _MetricQuery:
    """Parse the LogQL subset this stand-in serves.

    Raises:
        LogQLError: a syntax error or a construct it does not serve (Loki's 400 text).
    """
    return _Parser(query).parse()


def parse_time(value: str, name: str) -> int:
    """A Loki API time parameter (ns epoch, float seconds or RFC3339) as ns."""
    text = value.strip()
    if re.fullmatch(r"\d+", text):
        return int(text)
    if re.fullmatch(r"\d+\.\d*", text):
        return int(float(text) * _NS)
    try:
        moment = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise LogQLError(f'invalid parameter "{name}": cannot parse "{value}" to a valid timestamp') from None
    return int(moment.timestamp()) * _NS + moment.microsecond * 1000


# ---------------------------------------------------------------- the server


@dataclass
class _Stream:
    labels: dict[str, str]
    times: list[int] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


class FakeLoki(LoopbackServer):
    """The stand-in's state: streams of lines, test controls and the request log."""

    thread_name = "fake-loki"

    def __init__(self, *, max_entries: int = 5000) -> None:
        super().__init__()
        self.max_entries = max_entries
        self.streams: dict[tuple[tuple[str, str], ...], _Stream] = {}
        self.requests: list[dict[str, Any]] = []
        self.tenant: str | None = None
        self.delay_s = 0.0
        self.garbage = False
        self._failures: list[tuple[int, str]] = []
        self._lock = threading.Lock()

    # -- test controls -----------------------------------------------------------------------------
    def push(self, labels: dict[str, str], entries: list[tuple[int, str]]) -> None:
        """Add ``[(ns, line)]`` to the stream with ``labels`` (kept in time order)."""
        key = tuple(sorted(labels.items()))
        with self._lock:
            stream = self.streams.setdefault(key, _Stream(dict(labels)))
            for ns, line in entries:
                at = bisect.bisect_right(stream.times, ns)
                stream.times.insert(at, ns)
                stream.lines.insert(at, line)

    def fail_next(self, status: int, body: str = "internal server error", count: int = 1) -> None:
        """Answer the next ``count`` requests with ``status`` and a text ``body``."""
        with self._lock:
            self._failures.extend([(status, body)] * count)

    def queries(self) -> list[str]:
        """The LogQL of every query_range request so far."""
        return [r["params"].get("query", "") for r in self.requests if r["path"] == "/loki/api/v1/query_range"]

    # -- request handling --------------------------------------------------------------------------
    def handle(self, path: str, params: dict[str, str], headers: dict[str, str]) -> tuple[int, str, Any]:
        """Route one GET; returns (status, content type, body: JSON-able or text)."""
        self.requests.append({"path": path, "params": params, "headers": headers})
        if self.delay_s:
            time.sleep(self.delay_s)
        with self._lock:
            failure = self._failures.pop(0) if self._failures else None
        if failure is not None:
            return failure[0], "text/plain", failure[1]
        if self.garbage:
            return 200, "text/html", "<html><body>Grafana</body></html>"
        if path == "/ready":
            return 200, "text/plain", "ready"
        if self.tenant is not None and headers.get("x-scope-orgid") != self.tenant:
            return 401, "text/plain", "no org id"
        try:
            if path == "/loki/api/v1/labels":
                names = sorted({k for s in self.streams.values() for k in s.labels})
                return 200, "application/json", {"status": "success", "data": names}
            m = re.fullmatch(r"/loki/api/v1/label/([^/]+)/values", path)
            if m:
                name = unquote(m.group(1))
                values = sorted({s.labels[name] for s in self.streams.values() if name in s.labels})
                return 200, "application/json", {"status": "success", "data": values}
            if path == "/loki/api/v1/query_range":
                return 200, "application/json", {"status": "success", "data": self.query_range(params)}
        except LogQLError as exc:
            return 400, "text/plain", str(exc)
        return 404, "text/plain", "404 page not found"

    def query_range(self, params: dict[str, str]) -> dict[str, Any]:
        """Answer ``/loki/api/v1/query_range``'s ``data``.

        Raises:
            LogQLError: a bad query or parameter, or a limit exceeded.
        """
        if not params.get("query"):
            raise LogQLError("query parameter is required")
        end = parse_time(params["end"], "end") if params.get("end") else time.time_ns()
        start = parse_time(params["start"], "start") if params.get("start") else end - 3600 * _NS
        if end < start:
            raise LogQLError("end timestamp must not be before or equal to start time")
        parsed = parse_logql(params["query"])
        stats = {"summary": {"execTime": 0.001, "totalLinesProcessed": 0}}
        if isinstance(parsed, _MetricQuery):
            step = self._step(params.get("step"), start, end)
            # Loki's query frontend aligns a metric query to the step: start rounded down, end up.
            step_ns = step // 1_000_000 * 1_000_000 or 1_000_000
            start -= start % step_ns
            end += -end % step_ns
            if (end - start) // step + 1 > MAX_POINTS:
                raise LogQLError("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the "
                                 "query resolution (?step=XX)")
            return {"resultType": "matrix", "result": self._matrix(parsed, start, end, step), "stats": stats}
        try:
            limit = int(params.get("limit") or 100)
        except ValueError:
            raise LogQLError(f'invalid parameter "limit": cannot parse "{params.get("limit")}"') from None
        if limit <= 0:
            raise LogQLError("limit must be a positive value")
        if limit > self.max_entries:
            raise LogQLError(f"max entries limit per query exceeded, limit > max_entries_limit_per_query "
                             f"({limit} > {self.max_entries})")
        direction = (params.get("direction") or "backward").lower()
        if direction not in ("forward", "backward"):
            raise LogQLError(f'invalid parameter "direction": "{direction}"')
        return {"resultType": "streams", "result": self._streams(parsed, start, end, limit, direction), "stats": stats}

    @staticmethod
    def _step(value: str | None, start: int, end: int) -> int:
        if not value:
            return max((end - start) // 250 // _NS, 1) * _NS
        if re.fullmatch(r"\d+(?:\.\d+)?", value):
            step = int(float(value) * _NS)
        elif re.fullmatch(r"(?:\d+(?:ms|[smhdwy]))+", value):
            step = _duration_ns(value)
        else:
            raise LogQLError(f'invalid parameter "step": cannot parse "{value}" to a valid duration')
        if step <= 0:
            raise LogQLError("zero or negative query resolution step widths are not accepted. Try a positive integer")
        return step

    def _select(self, query: _LogQuery, lo: int, hi: int, *, closed: bool = False) -> list[tuple[int, str, int, dict[str, str], str]]:
        """Entries of ``[lo, hi)`` (``(lo, hi]`` when closed) passing the query: (ns, stream key, seq, labels, line)."""
        out = []
        with self._lock:
            streams = list(self.streams.items())
        for key, stream in streams:
            if not all(m.matches(stream.labels) for m in query.matchers):
                continue
            mark = json.dumps(key)
            if closed:
                a, b = bisect.bisect_right(stream.times, lo), bisect.bisect_right(stream.times, hi)
            else:
                a, b = bisect.bisect_left(stream.times, lo), bisect.bisect_left(stream.times, hi)
            for seq in range(a, b):
                labels = dict(stream.labels)
                line = stream.lines[seq]
                if all(stage(line, labels) for stage in query.stages):
                    out.append((stream.times[seq], mark, seq, labels, line))
        return out

    def _streams(self, query: _LogQuery, start: int, end: int, limit: int, direction: str) -> list[dict[str, Any]]:
        entries = self._select(query, start, end)
        entries.sort(key=lambda e: (e[0], e[1], e[2]), reverse=direction == "backward")
        grouped: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
        for ns, _, _, labels, line in entries[:limit]:
            stream = grouped.setdefault(tuple(sorted(labels.items())), {"stream": labels, "values": []})
            stream["values"].append([str(ns), line])
        return list(grouped.values())

    def _matrix(self, query: _MetricQuery, start: int, end: int, step: int) -> list[dict[str, Any]]:
        entries = self._select(query.log, start - query.offset_ns - query.range_ns, end - query.offset_ns,
                               closed=True)
        by_series: dict[tuple[tuple[str, str], ...], tuple[dict[str, str], list[int]]] = {}
        for ns, _, _, labels, _ in entries:
            if "__error__" in labels:
                raise LogQLError(f"pipeline error: '{labels['__error__']}' for series: '{labels}'. Use a label filter "
                                 f"to intentionally skip this error. (e.g | __error__!=\"{labels['__error__']}\")")
            by_series.setdefault(tuple(sorted(labels.items())), (labels, []))[1].append(ns)
        for _, times in by_series.values():
            times.sort()
        points: dict[tuple[tuple[str, str], ...], tuple[dict[str, str], dict[int, int]]] = {}
        last = (end - start) // step
        for labels, times in by_series.values():
            group = {} if query.by is None else {k: labels[k] for k in query.by if labels.get(k)}
            series = points.setdefault(tuple(sorted(group.items())), (group, {}))[1]
            for ns in times:
                # the evaluations t = start + k*step whose window (t - offset - range, t - offset] holds ns:
                # ns + offset <= t < ns + offset + range
                at = ns + query.offset_ns
                first = max(0, -(-(at - start) // step))
                stop = min(last, -(-(at + query.range_ns - start) // step) - 1)
                for k in range(first, stop + 1):
                    t = start + k * step
                    series[t] = series.get(t, 0) + 1
        result = []
        for group, series in points.values():
            values = []
            for at in sorted(series):
                ms = at // 1_000_000
                values.append([ms // 1000 if ms % 1000 == 0 else ms / 1000, str(series[at])])
            result.append({"metric": group, "values": values})
        return result


class _Handler(QuietHandler):
    state: FakeLoki
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        parts = urlsplit(self.path)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, ctype, body = self.state.handle(parts.path, params, headers)
        self.reply(status, {"Content-Type": ctype}, (json.dumps(body) if not isinstance(body, str) else body).encode())


FakeLoki.handler = _Handler
