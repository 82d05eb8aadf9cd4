"""Logs from Grafana Loki: ``logs: [{kind: loki, url: http://loki:3100, service_label: service}]``.

Everything goes through ``GET /loki/api/v1/query_range`` (Loki HTTP API):

* ``logs.search`` — a log query ``{<service_label>=~".+", <selector>} <pipeline>`` read forward
  in pages of at most ``max_entries`` entries (Loki's ``max_entries_limit_per_query``), each page
  starting at the last timestamp seen; entries at that timestamp already returned are skipped
  by identity (labels + line, counted), so equal timestamps are neither lost nor repeated. One
  call pages on only within ``timeout_s`` of its start (a slow Loki gives shorter pages and a
  cursor); the pages of one query (its cursor chain) are capped by ``max_pages``, and a query cut
  there says so in ``truncated``. ``total`` comes from ``sum(count_over_time(...[<window>]))`` evaluated once
  at the window's end (or from the page itself when it holds every line).
* ``logs.counts`` — ``sum by (<service_label>[, <level>]) (count_over_time(... [<step>] offset 1ms))``
  (a matrix) evaluated at ``bucket + step``. Loki counts the entries in ``(t - offset - range,
  t - offset]``; the 1 ms offset makes that ``[bucket, bucket + step)`` for timestamps of
  millisecond precision, the contract's buckets (multiples of ``step_s`` since the epoch). The
  evaluation times are multiples of the step, as Loki's query frontend would align them anyway.
  Partial buckets at the window's edges get their own narrower evaluation, so ``start``/``end``
  stay half-open.

The pipeline: ``text`` is a case-insensitive line filter ``|~ "(?i)<text, regex-escaped>"``
(text from outside is data: every regex metacharacter is escaped and the LogQL string quoted,
so no text can change the query); for JSON or logfmt lines a parse stage then keeps the lines
whose *message* field holds the text, as the contract says. Levels come from a label
(``level_label``, default ``level``; a stream label, structured metadata such as Loki 3's
``detected_level``, or anything a pipeline yields) when Loki lists it or ``level_from: label``
says so, else from the line itself (``| json`` / ``| logfmt``). Spellings are matched
case-insensitively (``warning``, ``err``, ``critical``...); a line without a level is INFO.
Parse errors are dropped from the labels (``| drop __error__, __error_details__``, Loki >= 2.8)
so a line that is not JSON is still a line (its whole text the message, level INFO).

Times: the window is taken at millisecond precision; no ``start`` means ``window.lookback`` of
sources.yaml before ``end`` (default now), and a window longer than ``max_range`` is cut to its
last ``max_range`` with a ``truncated`` note.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from sandbox.args import opt_int as _arg_int
from sandbox.args import opt_level as _arg_level
from sandbox.args import opt_str as _arg_str
from sandbox.args import opt_str_list as _arg_str_list
from sandbox.args import opt_time as _arg_time
from sandbox.errors import ToolArgumentError
from sandbox.world import LEVELS, iso
from sources.base import Provider, http_error
from sources.errors import SourceError
from sources.logshape import aliases_of, cut_message, dig, level_set, normalise_level
from store.errors import ConfigError

#: The contract's largest page.
MAX_LIMIT = 500_000
DEFAULT_MAX_ENTRIES = 5000
DEFAULT_MAX_PAGES = 100
DEFAULT_MAX_RANGE_S = 7 * 86400.0
#: Loki refuses a matrix of more points per series than this (query-frontend ``max_query_points``... 11,000).
MAX_POINTS = 10_000
_GROUP_BYS = {"service": ("service",), "level": ("level",), "service,level": ("service", "level"),
              "level,service": ("service", "level"), "none": ()}
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_CURSOR_PREFIX = "loki:"
_NS = 1_000_000_000
_MS = 1_000_000
#: Loki's answer when a query asks for more entries than it serves: "... (6000 > 5000)".
_LIMIT_REFUSED = re.compile(r"max_entries_limit\w*\s*\((\d+)\s*>\s*(\d+)\)")


def logql_string(value: str) -> str:
    """``value`` as a LogQL double-quoted string literal (Go escapes), safe for any text."""
    out = ['"']
    for ch in value:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def regex_literal(text: str) -> str:
    """``text`` as an RE2 regex matching exactly itself: every ASCII punctuation escaped, controls as ``\\xhh``."""
    out = []
    for ch in text:
        code = ord(ch)
        if code > 0x7F or ch.isalnum() or ch in " _":
            out.append(ch)
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        else:
            out.append("\\" + ch)
    return "".join(out)


def encoded_literal(text: str) -> str:
    """An RE2 regex matching ``text`` as it may stand in a JSON or logfmt line: raw or escaped.

    A line filter runs on the raw line, where a JSON writer has turned ``"`` into ``\\"``, a newline
    into ``\\n`` and perhaps ``ü`` into ``\\u00fc``; each such character matches any of its forms. The
    regex may match a little more than the text (the parsed message is then checked exactly), never less.
    """
    out = []
    for ch in text:
        forms = {ch, json.dumps(ch)[1:-1], json.dumps(ch, ensure_ascii=False)[1:-1]}
        if ch == "/":
            forms.add("\\/")
        if ord(ch) > 0x7F:  # the other case's escape too: (?i) folds letters, not \u escapes of them
            forms |= {json.dumps(ch.lower())[1:-1], json.dumps(ch.upper())[1:-1]}
        if len(forms) == 1:
            out.append(regex_literal(ch))
        else:
            out.append("(?:" + "|".join(regex_literal(f) for f in sorted(forms)) + ")")
    return "".join(out)


def _range(range_ms: int) -> str:
    """The range of a count ending at an evaluation time t, as ``[start, t)`` rather than Loki's ``(start, t]``.

    Loki counts the entries in ``(t - offset - range, t - offset]``; an offset of 1 ms makes that
    ``[t - range, t)`` for timestamps of millisecond precision (an entry less than 1 ms before a
    boundary lands in the later bucket). Evaluation times themselves cannot be nudged instead: the
    query frontend aligns them to multiples of the step.
    """
    return f"[{range_ms}ms] offset 1ms"


def _duration_s(value: Any, where: str) -> float:
    """Seconds from ``3600``, ``"90s"``, ``"15m"``, ``"3h"``, ``"7d"``."""
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a duration like 7d or 3600, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip().lower()
        units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
        try:
            seconds = float(text[:-1]) * units[text[-1]] if text and text[-1] in units else float(text)
        except ValueError:
            raise ConfigError(f"{where}: expected a duration like 7d, 12h or 3600, got {value!r}") from None
    if seconds <= 0:
        raise ConfigError(f"{where}: a duration must be positive, got {value!r}")
    return seconds


def _logfmt(line: str) -> dict[str, str]:
    """``key=value key2="quoted value"`` pairs of a logfmt line (a bare key is ``""``)."""
    out: dict[str, str] = {}
    i, n = 0, len(line)
    while i < n:
        while i < n and line[i] == " ":
            i += 1
        start = i
        while i < n and line[i] not in " =":
            i += 1
        key = line[start:i]
        value = ""
        if i < n and line[i] == "=":
            i += 1
            if i < n and line[i] == '"':
                i += 1
                chars = []
                while i < n and line[i] != '"':
                    if line[i] == "\\" and i + 1 < n:
                        i += 1
                    chars.append(line[i])
                    i += 1
                i += 1
                value = "".join(chars)
            else:
                start = i
                while i < n and line[i] != " ":
                    i += 1
                value = line[start:i]
        if key:
            out[key] = value
    return out


class LokiProvider(Provider):
    """``logs.search`` and ``logs.counts`` from Loki's HTTP API.

    Settings (``logs[i]``): ``url`` (required), ``service_label`` (``service``), ``selector``
    (e.g. ``{namespace="shop"}``, ANDed to every query), ``tenant`` (``X-Scope-OrgID``),
    ``level_label`` (``level``), ``level_from`` (``auto`` | ``label`` | ``json`` | ``logfmt``),
    ``line_format`` (``json`` | ``logfmt`` | ``raw``), ``fields`` (line field names of
    ``level``, ``message``, ``host``, ``trace_id``), ``host_label``, ``max_entries`` (5000),
    ``max_pages`` (100), ``max_range`` (7d), ``timeout_s`` (10), and ``token`` / ``username`` +
    ``password`` / ``headers`` for a gateway in front of Loki.

    Raises:
        ConfigError: a setting is missing or malformed.
    """

    KIND = "loki"
    CAPABILITIES = ("logs.search", "logs.counts")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.base = self.url(example="http://loki:3100")
        self.service_label = self._label_setting("service_label", "service")
        self.level_label = self._label_setting("level_label", "level")
        host_label = self.opt_str("host_label")
        self.host_label = self._label_setting("host_label", host_label) if host_label else None
        selector = (self.opt_str("selector") or "").strip()
        if selector and not (selector.startswith("{") and selector.endswith("}") and "\n" not in selector):
            raise ConfigError(f'{self.where}.selector: expected a stream selector like {{namespace="shop"}}, '
                              f"got {selector!r}")
        self.selector_inner = selector[1:-1].strip().rstrip(",") if selector else ""
        self.level_from = (self.opt_str("level_from", "auto") or "auto").lower()
        if self.level_from not in ("auto", "label", "json", "logfmt"):
            raise ConfigError(f"{self.where}.level_from: {self.level_from!r} unknown; use auto, label, json or logfmt")
        self.line_format = (self.opt_str("line_format", "json") or "json").lower()
        if self.line_format not in ("json", "logfmt", "raw"):
            raise ConfigError(f"{self.where}.line_format: {self.line_format!r} unknown; use json, logfmt or raw")
        fields = self.opt_map("fields")
        unknown = sorted(set(fields) - {"level", "message", "host", "trace_id"})
        if unknown:
            raise ConfigError(f"{self.where}.fields: unknown key(s) {', '.join(unknown)}; use level, message, host, "
                              "trace_id")
        default_message = "msg" if self.line_format == "logfmt" else "message"
        self.fields = {"level": str(fields.get("level") or "level"),
                       "message": str(fields.get("message") or default_message),
                       "host": str(fields.get("host") or "host"),
                       "trace_id": str(fields.get("trace_id") or "trace_id")}
        self.max_entries = self.opt_int("max_entries", DEFAULT_MAX_ENTRIES)
        self.max_pages = self.opt_int("max_pages", DEFAULT_MAX_PAGES)
        self.max_range_s = _duration_s(self.opt("max_range", DEFAULT_MAX_RANGE_S), f"{self.where}.max_range")
        headers = {"Accept": "application/json", **self.auth_headers()}
        tenant = self.opt_str("tenant")
        if tenant:
            headers["X-Scope-OrgID"] = tenant
        self._headers = headers
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()
        self._level_mode: str | None = None if self.level_from == "auto" else self.level_from
        self.requests = 0  # how many HTTP requests this provider made (for tests and benches)

    def _label_setting(self, key: str, default: str) -> str:
        value = self.opt_str(key, default) or default
        if not _LABEL_NAME.match(value):
            raise ConfigError(f"{self.where}.{key}: {value!r} is not a Loki label name ([a-zA-Z_][a-zA-Z0-9_]*)")
        return value

    @property
    def label(self) -> str:
        return f"loki {self.base}"

    # ------------------------------------------------------------ HTTP

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(base_url=self.base, headers=self._headers, timeout=self.timeout_s)
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def _get(self, path: str, params: dict[str, Any] | None = None, *, query: str = "") -> Any:
        """GET ``path`` and return Loki's ``data``.

        Raises:
            SourceError: unreachable, timed out, an HTTP error (a refused query quoted), or a body that
                is not Loki's ``{"status": "success", "data": ...}``.
        """
        self.requests += 1
        try:
            resp = self._http().get(path, params=params)
            resp.raise_for_status()
        except httpx.HTTPStatusError as exc:
            status, body = exc.response.status_code, exc.response.text.strip().replace("\n", " ")[:240]
            if status == 400 and query:
                raise _Refused(body, f"{self.label}: Loki refused the query {query[:300]!r} (HTTP 400: {body}); "
                                     f"check {self.where}.selector / service_label / level_label") from None
            if status == 401 and "org" in body.lower():
                raise SourceError(f"{self.label}: HTTP 401 ({body}); Loki runs multi-tenant: set "
                                  f"{self.where}.tenant") from None
            raise http_error(self.label, exc, hint=f"check {self.where}.url and that Loki runs") from None
        except httpx.HTTPError as exc:
            raise http_error(self.label, exc, hint=f"check {self.where}.url and that Loki runs") from None
        try:
            doc = resp.json()
        except ValueError:
            raise SourceError(f"{self.label}: {path} answered something that is not JSON "
                              f"({resp.text[:80]!r}); check {self.where}.url points at Loki (port 3100)") from None
        if not isinstance(doc, dict) or doc.get("status") != "success" or "data" not in doc:
            raise SourceError(f"{self.label}: {path} did not answer Loki's {{status: success, data}} "
                              f"({str(doc)[:120]}); check {self.where}.url points at Loki")
        return doc["data"]

    def _query_range(self, query: str, params: dict[str, Any], want: str) -> list[dict[str, Any]]:
        data = self._get("/loki/api/v1/query_range", {"query": query, **params}, query=query)
        if not isinstance(data, dict) or data.get("resultType") != want or not isinstance(data.get("result"), list):
            got = data.get("resultType") if isinstance(data, dict) else type(data).__name__
            raise SourceError(f"{self.label}: query_range answered {got!r} where {want!r} was expected for "
                              f"{query[:200]!r}; check {self.where}.url points at Loki")
        return data["result"]

    # ------------------------------------------------------------ the query text

    def _selector(self, service: str | None) -> str:
        parts = [f"{self.service_label}={logql_string(service)}" if service is not None
                 else f'{self.service_label}=~".+"']
        if self.selector_inner:
            parts.append(self.selector_inner)
        return "{" + ", ".join(parts) + "}"

    def level_mode(self, start_ms: int | None = None, end_ms: int | None = None) -> str:
        """Where levels come from: ``label``, ``json``, ``logfmt`` or ``none`` (every line INFO).

        ``auto`` asks Loki's label list (over the first query's window) once: the level label when
        Loki knows it, else the line format's parser.
        """
        if self._level_mode is None:
            window = {"start": str(start_ms * _MS), "end": str(end_ms * _MS)} if start_ms is not None and end_ms else None
            names = self._get("/loki/api/v1/labels", window)
            if not isinstance(names, list):
                raise SourceError(f"{self.label}: /loki/api/v1/labels did not answer a list; check {self.where}.url")
            if self.level_label in names:
                self._level_mode = "label"
            else:
                self._level_mode = self.line_format if self.line_format != "raw" else "none"
        return self._level_mode

    def _pipeline(self, mode: str, wanted: frozenset[str] | None, needle: str | None,
                  by_level: bool) -> tuple[str, str | None]:
        """The pipeline after the selector, and the label holding the level (None: no level known).

        Args:
            mode: where levels come from (:meth:`level_mode`).
            wanted: the levels to keep (None: all).
            needle: the case-insensitive text to find in the message (None: any).
            by_level: the level label is needed (counts grouped by level).
        """
        stages: list[str] = []
        if wanted is None and not by_level and mode != "label":
            mode = "none"  # no level asked for: no parse stage for it
        if needle:
            literal = regex_literal(needle) if self.line_format == "raw" else encoded_literal(needle)
            stages.append("|~ " + logql_string("(?i)" + literal))
        parse = self.line_format if (needle and self.line_format != "raw") else None
        if mode in ("json", "logfmt"):
            parse = mode
        level_key: str | None = None
        if mode == "label":
            level_key = self.level_label
        if parse:
            extract = [f"pm_message={logql_string(self.fields['message'])}"]
            if mode == parse:
                extract.insert(0, f"pm_level={logql_string(self.fields['level'])}")
                level_key = "pm_level"
            stages.append(f"| {parse} " + ", ".join(extract))
            stages.append("| drop __error__, __error_details__")
        if wanted is not None and level_key is not None:
            stages.append(self._level_filter(level_key, wanted))
        if needle and parse:
            # Only the message counts; a line whose message field is absent or empty (not JSON,
            # say) is all message, and the line filter above already matched it.
            pattern = "(?is).*" + regex_literal(needle) + ".*"
            stages.append(f"| pm_message=~{logql_string(pattern)} or pm_message=\"\"")
        return " ".join(s for s in stages if s), level_key

    def _nothing(self, mode: str, wanted: frozenset[str] | None) -> bool:
        """True when no line can pass the level filter (an empty set, or no levels known and INFO not wanted)."""
        return wanted is not None and (not wanted or (mode == "none" and "INFO" not in wanted))

    @staticmethod
    def _level_filter(key: str, wanted: frozenset[str]) -> str:
        """A label filter keeping ``wanted`` levels; sets with INFO keep unknown and missing levels too."""
        if "INFO" in wanted:
            others = frozenset(LEVELS) - wanted
            spellings = aliases_of(others)
            return f"| {key}!~" + logql_string("(?i)(" + "|".join(spellings) + ")") if spellings else ""
        spellings = aliases_of(wanted)
        return f"| {key}=~" + logql_string("(?i)(" + "|".join(spellings) + ")")

    # ------------------------------------------------------------ the window

    def _window(self, cap: str, start: Any, end: Any) -> tuple[int, int, str | None]:
        """``[start, end)`` in ms (defaults and ``max_range`` applied) and a note when it was cut."""
        t0, t1 = _arg_time(cap, "start", start), _arg_time(cap, "end", end)
        end_ms = math.floor((t1 if t1 is not None else time.time()) * 1000)
        start_ms = math.floor(t0 * 1000) if t0 is not None else end_ms - round(self.sources.lookback_s * 1000)
        note = None
        longest = round(self.max_range_s * 1000)
        if end_ms - start_ms > longest:
            start_ms = end_ms - longest
            note = (f"{self.label}: the window was cut to its last {self.max_range_s / 3600:g} h (max_range); "
                    "narrow start/end or raise max_range")
        return start_ms, max(start_ms, end_ms), note

    def _filters(self, cap: str, service: Any, level: Any, levels: Any, text: Any) -> tuple[
            str | None, frozenset[str] | None, str | None]:
        svc = _arg_str(cap, "service", service)
        min_level = _arg_level(cap, "level", level)
        exact = _arg_str_list(cap, "levels", levels)
        if exact is not None:
            exact = [lv for lv in (_arg_level(cap, "levels", v) for v in exact) if lv is not None]
        needle = _arg_str(cap, "text", text)
        return svc, level_set(min_level, exact), needle

    # ------------------------------------------------------------ counting

    def _count(self, query_of: Any, start_ms: int, end_ms: int, step_ms: int) -> list[tuple[int, dict[str, str], int]]:
        """Counts per bucket of ``step_ms`` (aligned to the epoch) in ``[start_ms, end_ms)``.

        ``query_of(range_ms)`` gives the metric query for a range. Returns ``[(bucket_ms, labels, count)]``.
        """
        if end_ms <= start_ms:
            return []
        first_full = -(-start_ms // step_ms) * step_ms
        last_full = (end_ms // step_ms) * step_ms
        # (query, first evaluation ms, last evaluation ms, step ms, the bucket of the first evaluation)
        jobs: list[tuple[str, int, int, int, int]] = []
        # The partial buckets at the edges: one evaluation each, at hi, over exactly their part of the
        # window (a 1 ms step keeps the query frontend's alignment from moving the evaluation).
        if start_ms < first_full:
            hi = min(first_full, end_ms)
            jobs.append((query_of(hi - start_ms), hi, hi, 1, (start_ms // step_ms) * step_ms))
        if first_full <= last_full < end_ms and last_full >= start_ms:
            jobs.append((query_of(end_ms - last_full), end_ms, end_ms, 1, last_full))
        # The whole buckets: evaluated at bucket + step (multiples of the step, which the frontend leaves
        # be), in chunks of at most MAX_POINTS.
        bucket = first_full
        while bucket < last_full:
            chunk_end = min(last_full, bucket + MAX_POINTS * step_ms)
            jobs.append((query_of(step_ms), bucket + step_ms, chunk_end, step_ms, bucket))
            bucket = chunk_end

        def run(job: tuple[str, int, int, int, int]) -> list[tuple[int, dict[str, str], int]]:
            query, first_ms, last_ms, every_ms, first_bucket = job
            found = []
            for labels, values in self._matrix(query, first_ms * _MS, last_ms * _MS, every_ms):
                for at_ms, n in values:
                    k = round((at_ms - first_ms) / step_ms) if every_ms == step_ms else 0
                    found.append((first_bucket + k * step_ms, labels, n))
            return found

        if len(jobs) <= 1:
            return [row for job in jobs for row in run(job)]
        # a few requests at once, so that slow answers cost about one timeout, not one each
        with ThreadPoolExecutor(max_workers=min(4, len(jobs)), thread_name_prefix="loki-count") as pool:
            return [row for rows in pool.map(run, jobs) for row in rows]

    def _matrix(self, query: str, start_ns: int, end_ns: int, step_ms: int) -> list[tuple[dict[str, str],
                                                                                       list[tuple[float, int]]]]:
        step = f"{step_ms / 1000:g}" if step_ms % 1000 else str(step_ms // 1000)
        result = self._query_range(query, {"start": str(start_ns), "end": str(end_ns), "step": step}, "matrix")
        series = []
        for item in result:
            metric, values = (item.get("metric"), item.get("values")) if isinstance(item, dict) else (None, None)
            if not isinstance(metric, dict) or not isinstance(values, list):
                raise SourceError(f"{self.label}: a matrix series is not {{metric, values}} ({str(item)[:120]}); "
                                  f"check {self.where}.url points at Loki")
            points = []
            for pair in values:
                try:
                    at, value = pair
                    points.append((float(at) * 1000, int(round(float(value)))))
                except (TypeError, ValueError):
                    raise SourceError(f"{self.label}: a matrix value is not [time, \"count\"] ({str(pair)[:80]}); "
                                      f"check {self.where}.url points at Loki") from None
            series.append(({str(k): str(v) for k, v in metric.items()}, points))
        return series

    def _total(self, query: str, start_ms: int, end_ms: int) -> int:
        """How many entries the log query ``query`` has in ``[start_ms, end_ms)``: one evaluation at ``end``."""
        if end_ms <= start_ms:
            return 0
        metric = f"sum(count_over_time({query} {_range(end_ms - start_ms)}))"
        return sum(n for _, values in self._matrix(metric, end_ms * _MS, end_ms * _MS, 1) for _, n in values)

    # ------------------------------------------------------------ capabilities

    def logs_counts(self, service: Any = None, level: Any = None, levels: Any = None, text: Any = None,
                    start: Any = None, end: Any = None, step_s: Any = None, group_by: Any = None) -> dict[str, Any]:
        """The contract's ``logs.counts``: buckets aligned to multiples of ``step_s`` since the epoch."""
        cap = "logs.counts"
        step = _arg_int(cap, "step_s", step_s, 60, 1, 86_400 * 31)
        group = _arg_str(cap, "group_by", group_by) or "service"
        fields = _GROUP_BYS.get(group.replace(" ", ""))
        if fields is None:
            raise ToolArgumentError(f"{cap}: 'group_by' {group!r} unknown; use service, level or service,level")
        svc, wanted, needle = self._filters(cap, service, level, levels, text)
        start_ms, end_ms, note = self._window(cap, start, end)
        result: dict[str, Any] = {"step_s": step, "buckets": []}
        if note:
            result["truncated"] = note
        mode = self.level_mode(start_ms, end_ms)
        if self._nothing(mode, wanted):
            return result
        selector = self._selector(svc)
        pipeline, level_key = self._pipeline(mode, wanted, needle, "level" in fields)
        by = []
        if "service" in fields:
            by.append(self.service_label)
        if "level" in fields and level_key is not None:
            by.append(level_key)
        grouping = f" by ({', '.join(by)}) " if by else ""

        def query_of(range_ms: int) -> str:
            inner = f"{selector} {pipeline}".strip()
            return f"sum{grouping}(count_over_time({inner} {_range(range_ms)}))"

        counts: Counter[tuple[Any, ...]] = Counter()
        for bucket_ms, labels, n in self._count(query_of, start_ms, end_ms, step * 1000):
            parts: list[Any] = [bucket_ms]
            if "service" in fields:
                parts.append(labels.get(self.service_label, ""))
            if "level" in fields:
                parts.append(normalise_level(labels.get(level_key)) if level_key else "INFO")
            counts[tuple(parts)] += n
        for key in sorted(counts):
            if not counts[key]:
                continue
            bucket: dict[str, Any] = {"ts": iso(key[0] / 1000)}
            for name, value in zip(fields, key[1:], strict=True):
                bucket[name] = value
            bucket["count"] = counts[key]
            result["buckets"].append(bucket)
        return result

    def logs_search(self, service: Any = None, level: Any = None, levels: Any = None, start: Any = None,
                    end: Any = None, text: Any = None, limit: Any = None, cursor: Any = None) -> dict[str, Any]:
        """The contract's ``logs.search``: lines in time order, ``next_cursor`` to page on, ``total`` of the query."""
        cap = "logs.search"
        want = _arg_int(cap, "limit", limit, 1000, 1, MAX_LIMIT)
        svc, wanted, needle = self._filters(cap, service, level, levels, text)
        start_ms, end_ms, note = self._window(cap, start, end)
        notes = [note] if note else []
        mode = self.level_mode(start_ms, end_ms)
        if self._nothing(mode, wanted):
            return {"lines": [], "next_cursor": None, "total": 0}
        selector = self._selector(svc)
        pipeline, level_key = self._pipeline(mode, wanted, needle, False)
        query = f"{selector} {pipeline}".strip()
        fingerprint = hashlib.blake2b(f"{query}|{start_ms}|{end_ms}".encode(), digest_size=6).hexdigest()
        state = self._decode_cursor(cursor, fingerprint) if cursor not in (None, "") else None
        from_ns = state["t"] if state else start_ms * _MS
        skip: Counter[str] = Counter(state["skip"]) if state else Counter()
        pages = state["pages"] if state else 0
        total: int | None = state["total"] if state else None
        end_ns = end_ms * _MS
        lines: list[dict[str, Any]] = []
        done = capped = jumped = False
        # One call stays within about two request timeouts (the gateway's bound): it pages on while
        # there is time and otherwise hands back a shorter page and a cursor to go on from.
        deadline = time.monotonic() + self.timeout_s
        asked = 0
        while len(lines) < want:
            if asked and total is None:
                total = self._total(query, start_ms, end_ms)  # more than one page: Loki counts them
            if asked and time.monotonic() >= deadline:
                break
            if pages >= self.max_pages:
                capped = True
                notes.append(f"{self.label}: stopped after {self.max_pages} requests (max_pages); narrow the window "
                             "or the filters, or raise max_pages")
                break
            need = want - len(lines)
            ask = min(self.max_entries, need + sum(skip.values()))
            if ask <= sum(skip.values()):
                # More lines share one timestamp than one request returns: step past it, and say so.
                notes.append(f"{self.label}: more than {self.max_entries} lines at {iso(from_ns / _NS)}; some were "
                             "left out (raise max_entries if Loki allows more)")
                from_ns, skip, jumped = from_ns + 1, Counter(), True
                continue
            entries, ask = self._entries(query, from_ns, end_ns, ask)
            pages += 1
            asked += 1
            fresh = []
            pending = Counter(skip)  # every entry at from_ns already sent comes back: pass over each once
            for entry in entries:
                if entry[0] == from_ns and pending[entry[2]] > 0:
                    pending[entry[2]] -= 1
                    continue
                fresh.append(entry)
            taken = fresh[:need]
            lines.extend(self._line(labels, line, ts_ns, mode) for ts_ns, labels, _, line in taken)
            if len(entries) < ask and len(taken) == len(fresh):
                done = True
                break
            if not taken:
                done = True  # nothing new came back: the rest of the window is empty
                break
            last = taken[-1][0]
            if last != from_ns:
                skip = Counter()
            from_ns = last
            skip.update(e[2] for e in taken if e[0] == last)
        if total is None:
            # a query read whole by one request counted itself; any other asks Loki to count
            total = len(lines) if done and not jumped else self._total(query, start_ms, end_ms)
        next_cursor = None
        if not done and not capped:
            next_cursor = self._encode_cursor({"t": from_ns, "skip": dict(+skip), "pages": pages, "total": total,
                                               "q": fingerprint})
        result: dict[str, Any] = {"lines": lines, "next_cursor": next_cursor, "total": total}
        if notes:
            result["truncated"] = "; ".join(notes)
        return result

    def _entries(self, query: str, from_ns: int, end_ns: int,
                 limit: int) -> tuple[list[tuple[int, dict[str, str], str, str]], int]:
        """Up to ``limit`` entries of ``[from_ns, end_ns)`` oldest first: ``(ns, labels, identity, line)``.

        Returns the entries and the limit asked of Loki (lower than ``limit`` when Loki serves fewer).
        """
        params = {"start": str(from_ns), "end": str(end_ns), "limit": str(limit), "direction": "forward"}
        try:
            result = self._query_range(query, params, "streams")
        except _Refused as exc:
            m = _LIMIT_REFUSED.search(exc.body)
            if not m:
                raise
            # Loki serves fewer entries per query than max_entries: use its limit from now on.
            self.max_entries = max(1, int(m.group(2)))
            limit = min(limit, self.max_entries)
            params["limit"] = str(limit)
            result = self._query_range(query, params, "streams")
        out = []
        for stream in result:
            labels, values = (stream.get("stream"), stream.get("values")) if isinstance(stream, dict) else (None, None)
            if not isinstance(labels, dict) or not isinstance(values, list):
                raise SourceError(f"{self.label}: a stream is not {{stream, values}} ({str(stream)[:120]}); "
                                  f"check {self.where}.url points at Loki")
            labels = {str(k): str(v) for k, v in labels.items()}
            mark = json.dumps(sorted(labels.items()), separators=(",", ":"))
            for value in values:
                try:
                    ts_ns, line = int(value[0]), str(value[1])
                except (TypeError, ValueError, IndexError):
                    raise SourceError(f"{self.label}: a stream value is not [\"<ns>\", \"<line>\"] "
                                      f"({str(value)[:80]}); check {self.where}.url points at Loki") from None
                ident = hashlib.blake2b(f"{mark}\n{line}".encode(), digest_size=8).hexdigest()
                out.append((ts_ns, labels, ident, line))
        out.sort(key=lambda e: (e[0], e[2]))
        return out[:limit], limit

    def _line(self, labels: dict[str, str], raw: str, ts_ns: int, mode: str) -> dict[str, Any]:
        """One Loki entry in the contract's shape."""
        rec: dict[str, Any] | None = None
        if self.line_format == "json" and raw.startswith("{"):
            try:
                decoded = json.loads(raw)
                rec = decoded if isinstance(decoded, dict) else None
            except ValueError:
                rec = None
        elif self.line_format == "logfmt":
            rec = _logfmt(raw) or None
        f = self.fields
        message = dig(rec, f["message"]) if rec is not None else None
        if message is None or message == "":
            message = raw
        # The level comes from where the queries filter and count it, so that lines and counts agree.
        if mode == "label":
            level = normalise_level(labels.get(self.level_label))
        elif mode in ("json", "logfmt") and rec is not None:
            found = dig(rec, f["level"])
            # as text, as the query's label filter sees it (a numeric level is no level there)
            level = normalise_level(None if found is None else found if isinstance(found, str) else json.dumps(found))
        else:
            level = "INFO"
        out: dict[str, Any] = {"ts": iso(ts_ns / _NS), "service": labels.get(self.service_label, ""),
                               "level": level, "message": cut_message(message)}
        host = dig(rec, f["host"]) if rec is not None else None
        if host in (None, "") and self.host_label:
            host = labels.get(self.host_label)
        if host not in (None, ""):
            out["host"] = str(host)
        trace = dig(rec, f["trace_id"]) if rec is not None else None
        if trace not in (None, ""):
            out["trace_id"] = str(trace)
        return out

    # ------------------------------------------------------------ cursor

    @staticmethod
    def _encode_cursor(state: dict[str, Any]) -> str:
        packed = json.dumps(state, separators=(",", ":"), sort_keys=True)
        return _CURSOR_PREFIX + base64.urlsafe_b64encode(packed.encode()).decode().rstrip("=")

    @staticmethod
    def _decode_cursor(cursor: Any, fingerprint: str) -> dict[str, Any]:
        bad = ToolArgumentError("logs.search: 'cursor' is not one we issued for this query; pass next_cursor as "
                                "is, with the same other arguments")
        if not isinstance(cursor, str) or not cursor.startswith(_CURSOR_PREFIX):
            raise bad
        body = cursor[len(_CURSOR_PREFIX):]
        try:
            state = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode())
        except (ValueError, UnicodeDecodeError):
            raise bad from None
        ok = (isinstance(state, dict) and state.get("q") == fingerprint and isinstance(state.get("t"), int)
              and isinstance(state.get("skip"), dict) and isinstance(state.get("pages"), int)
              and isinstance(state.get("total"), int))
        if not ok:
            raise bad
        return state

    # ------------------------------------------------------------ check

    def check(self) -> str:
        """``/ready``, the label list (the service label must be there) and one tiny query."""
        self.requests += 1
        try:
            resp = self._http().get("/ready")
            resp.raise_for_status()
        except httpx.HTTPError as exc:
            raise http_error(self.label, exc, hint=f"check {self.where}.url and that Loki runs") from None
        names = self._get("/loki/api/v1/labels")
        if not isinstance(names, list):
            raise SourceError(f"{self.label}: /loki/api/v1/labels did not answer a list; check {self.where}.url")
        if self.service_label not in names:
            known = ", ".join(sorted(map(str, names))[:12]) or "none"
            raise SourceError(f"{self.label}: no stream has the label {self.service_label!r}; set "
                              f"{self.where}.service_label to one of: {known}")
        services = self._get(f"/loki/api/v1/label/{self.service_label}/values")
        count = len(services) if isinstance(services, list) else 0
        now_ms = math.floor(time.time() * 1000)
        probe, _ = self._entries(self._selector(None), (now_ms - 600_000) * _MS, now_ms * _MS, 1)
        return (f"ready; {count} services by {self.service_label!r}; levels from {self.level_mode()}; "
                f"{len(probe)} line(s) in the last 10 min")


class _Refused(SourceError):
    """Loki answered HTTP 400 to a query (its body kept to read Loki's limits from)."""

    def __init__(self, body: str, message: str) -> None:
        super().__init__(message)
        self.body = body
