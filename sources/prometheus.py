"""Metrics and call edges from a Prometheus HTTP API (Prometheus, VictoriaMetrics, Thanos, Mimir).

``metrics: [{kind: prometheus, url: http://prometheus:9090}]`` answers ``metrics.list`` and
``metrics.series``; under ``topology:`` the same kind answers ``topology.get`` from client-side
peer labels. Each world metric name (``error_rate``, ``latency_p95_ms``, ...) is read by a PromQL
template: the defaults of ``sources/promql.yaml`` per naming convention, overridable per entry
(docs/sources-prometheus.md). Every read is one range query per metric name for all services, on
a step grid aligned to the epoch and coarsened so no series exceeds ``max_points``.

Prometheus's JSON stays in this module: results are the contract's dicts (docs/contracts.md),
with ISO-8601 ``Z`` times and float values. ``self.requests`` counts every HTTP request made.
"""

from __future__ import annotations

import json
import logging
import math
import re
import string
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from typing import Any, ClassVar

import httpx
import yaml

from sandbox.args import opt_str as arg_str
from sandbox.args import opt_time as arg_time
from sandbox.world import iso, parse_ts
from sources.base import Provider, http_error
from sources.errors import QueryError, SourceError
from store.errors import ConfigError

log = logging.getLogger(__name__)

#: Prometheus refuses range queries with more points per series than this (its default).
DEFAULT_MAX_POINTS = 11_000
DEFAULT_MAX_SERIES = 1_000
DEFAULT_STEP_S = 60
DEFAULT_RATE_WINDOW_S = 120
DEFAULT_TOPOLOGY_WINDOW_S = 3_600
#: Placeholders a metric template may use, and those of the topology edges query.
METRIC_PLACEHOLDERS = frozenset({"service_label", "selector", "service", "step", "fresh", "rate"})
EDGE_PLACEHOLDERS = frozenset({"source_label", "destination_label", "selector", "range"})
#: The label that carries the service when parts with different service labels are joined.
_JOINED_LABEL = "pm_service"
_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_METRIC_NAME = re.compile(r"^[A-Za-z_:][A-Za-z0-9_:]*$")
_PLACEHOLDER = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
#: Prometheus error types that mean "this query is wrong", not "Prometheus is unwell".
_QUERY_ERRORS = frozenset({"bad_data", "execution"})
_PLAIN_TEMPLATE = "max by ($service_label) (last_over_time({name}{{$selector}}[$fresh]))"


def load_defaults() -> dict[str, Any]:
    """The shipped ``promql.yaml``: ``{convention: {service_label, queries}, topology: {...}}``."""
    text = resources.files("sources").joinpath("promql.yaml").read_text(encoding="utf-8")
    doc = yaml.safe_load(text)
    assert isinstance(doc, dict), "sources/promql.yaml must be a mapping"
    return doc


def conventions() -> tuple[str, ...]:
    """The names of the shipped template sets (``plain``, ``otel``, ...)."""
    return tuple(k for k in load_defaults() if k != "topology")


def _quote(value: str) -> str:
    """A PromQL double-quoted string (JSON's escapes are PromQL's)."""
    return json.dumps(value, ensure_ascii=False)


def _one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


@dataclass(frozen=True)
class _Part:
    """One template of a metric and the label its series carry the service in."""

    template: str
    label: str


@dataclass(frozen=True)
class _Grid:
    """A range query's evaluation times: ``first``, ``first + step``, ..., ``last`` (epoch seconds)."""

    first: int
    last: int
    step: int

    @property
    def points(self) -> int:
        return (self.last - self.first) // self.step + 1


class _PromError(Exception):
    """Prometheus answered ``{"status": "error"}``: its errorType and message."""

    def __init__(self, error_type: str, message: str, status: int) -> None:
        super().__init__(message)
        self.error_type, self.message, self.status = error_type, message, status


class PrometheusProvider(Provider):
    """A Prometheus-compatible HTTP API as ``metrics.*`` and ``topology.get``.

    Settings (besides ``url``, ``token``/``username``+``password``/``headers``, ``timeout_s``):
    ``service_label``, ``convention`` (a name or a list), ``queries`` ({metric: template}),
    ``gauges`` (more metric names read as plain gauges), ``selector``, ``max_points``,
    ``step_s``, ``rate_window_s``, ``max_series``, ``lookback_s`` (the window when a call gives no
    start; default the file's ``window.lookback``), ``now`` (the time taken as now, for replays of
    past incidents; default the clock), ``workers`` (queries in flight; the default 8 sends every convention's names at once, so a call
    takes about one query's time and stays inside the gateway's per-call bound), and for topology
    ``edges_query``, ``source_label``, ``destination_label``, ``topology_window_s``.

    Attributes:
        requests: HTTP requests this provider made so far (every query and probe, failed ones too).
        total_requests: (class attribute) the same over every provider of the process, so a bench
            that reaches providers through an in-process MCP gateway can still count them.

    Raises:
        ConfigError: a setting is missing or malformed (the message names it).
    """

    KIND = "prometheus"
    CAPABILITIES = ("metrics.list", "metrics.series", "topology.get")
    total_requests: ClassVar[int] = 0
    _total_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.base = self.url()
        defaults = load_defaults()
        names = [k for k in defaults if k != "topology"]
        chosen = self.settings.get("convention", "plain")
        chosen_list = [chosen] if isinstance(chosen, str) else chosen
        if not isinstance(chosen_list, list) or not chosen_list or not all(isinstance(c, str) for c in chosen_list):
            raise ConfigError(f"{self.where}.convention: expected a name or a list of names among {', '.join(names)}")
        for c in chosen_list:
            if c not in names:
                raise ConfigError(f"{self.where}.convention: {c!r} unknown; use one of {', '.join(names)} "
                                  "(or a list), and queries: for anything else")
        self.conventions = tuple(chosen_list)
        override = self._label_setting("service_label")
        self.service_label = override or str(defaults[self.conventions[0]].get("service_label") or "service")
        selector = (self.opt_str("selector") or "").strip()
        if selector.startswith("{") and selector.endswith("}"):
            selector = selector[1:-1].strip()
        self.selector = selector.rstrip(",")
        self.max_points = self.opt_int("max_points", DEFAULT_MAX_POINTS)
        if self.max_points < 2:
            raise ConfigError(f"{self.where}.max_points: at least 2 points are needed, got {self.max_points}")
        self.step_s = self.opt_int("step_s", DEFAULT_STEP_S)
        offset = self.settings.get("step_offset_s", 0)
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ConfigError(f"{self.where}.step_offset_s: expected whole seconds >= 0 (where in a step the "
                              f"samples fall), got {offset!r}")
        self.step_offset_s = offset
        self.rate_window_s = self.opt_int("rate_window_s", DEFAULT_RATE_WINDOW_S)
        self.max_series = self.opt_int("max_series", DEFAULT_MAX_SERIES)
        self.workers = self.opt_int("workers", 8)
        self.lookback_s = self.opt_float("lookback_s", self.sources.lookback_s)
        self.topology_window_s = self.opt_int("topology_window_s", DEFAULT_TOPOLOGY_WINDOW_S)
        now = self.settings.get("now")  # YAML reads an unquoted 2026-02-20T10:00:00Z as a datetime: both are fine
        try:
            self.fixed_now = parse_ts(now) if now not in (None, "") else None
        except (ValueError, TypeError):
            raise ConfigError(f"{self.where}.now: {now!r} is not an ISO-8601 time; e.g. now: 2026-02-20T10:00:00Z") from None

        # Metric name -> its parts, in convention order; a name several sets define is "a or b".
        self.queries: dict[str, list[_Part]] = {}
        for c in self.conventions:
            label = override or str(defaults[c].get("service_label") or "service")
            for name, template in (defaults[c].get("queries") or {}).items():
                self.queries.setdefault(str(name), []).append(_Part(str(template), label))
        gauges = self.settings.get("gauges") or []
        if not isinstance(gauges, list) or not all(isinstance(g, str) and _METRIC_NAME.match(g) for g in gauges):
            raise ConfigError(f"{self.where}.gauges: expected a list of metric names, e.g. gauges: [queue_depth]")
        for g in gauges:
            self.queries[g] = [_Part(_PLAIN_TEMPLATE.format(name=g), self.service_label)]
        for name, template in self.opt_map("queries").items():
            if not isinstance(template, str) or not template.strip():
                raise ConfigError(f"{self.where}.queries.{name}: expected a PromQL template string")
            self._check_placeholders(f"queries.{name}", template, METRIC_PLACEHOLDERS)
            self.queries[str(name)] = [_Part(template, self.service_label)]

        topo = defaults.get("topology") or {}
        self.edges_query = self.opt_str("edges_query") or str(topo.get("edges_query") or "")
        self._check_placeholders("edges_query", self.edges_query, EDGE_PLACEHOLDERS)
        self.source_label = self._label_setting("source_label") or str(topo.get("source_label"))
        self.destination_label = self._label_setting("destination_label") or str(topo.get("destination_label"))

        self.requests = 0
        self._lock = threading.Lock()
        self._client = httpx.Client(headers=self.auth_headers(), timeout=httpx.Timeout(self.timeout_s))

    # ------------------------------------------------------------ settings helpers

    def _label_setting(self, key: str) -> str | None:
        value = self.opt_str(key)
        if value is not None and not _LABEL_NAME.match(value):
            raise ConfigError(f"{self.where}.{key}: {value!r} is not a Prometheus label name; e.g. {key}: service")
        return value

    def _check_placeholders(self, key: str, template: str, allowed: frozenset[str]) -> None:
        for m in _PLACEHOLDER.finditer(template):
            found = m.group(1) or m.group(2)
            if found not in allowed:
                raise ConfigError(f"{self.where}.{key}: unknown placeholder ${found}; use "
                                  + ", ".join(f"${p}" for p in sorted(allowed)))

    def now(self) -> float:
        """The ``now`` setting, else the clock (epoch seconds)."""
        return self.fixed_now if self.fixed_now is not None else time.time()

    # ------------------------------------------------------------ capabilities

    def metrics_series(self, service: Any = None, name: Any = None, start: Any = None,
                       end: Any = None) -> dict[str, Any]:
        """``{series: [{service, name, points: [[ts, value], ...]}]}`` for the window.

        One range query per metric name (all services at once; ``service`` adds a matcher). The
        window defaults to the ``lookback_s`` before ``end`` (itself default now); points are on
        the step grid, ``start <= ts < end``.

        Raises:
            ToolArgumentError: a bad argument.
            QueryError: the only metric asked for failed (or every one did).
            SourceError: Prometheus failed (unreachable, timed out, refused, garbage).
        """
        cap = "metrics.series"
        service, name = arg_str(cap, "service", service), arg_str(cap, "name", name)
        t0, t1 = self._window(cap, start, end)
        names = [name] if name is not None else sorted(self.queries)
        rows, notes, truncated = self._read(names, service, t0, t1)
        series = [{"service": svc, "name": n, "points": pts} for (svc, n), pts in sorted(rows.items())]
        return self._result({"series": series}, notes, truncated)

    def metrics_list(self, service: Any = None, start: Any = None, end: Any = None) -> dict[str, Any]:
        """``{metrics: [{service, name, samples, first_ts, last_ts}]}``: what has data in the window.

        Without a window, the ``lookback_s`` before now (or the ``now`` setting); the same range
        queries as :meth:`metrics_series`: one request per metric name.

        Raises:
            ToolArgumentError, QueryError, SourceError: as :meth:`metrics_series`.
        """
        service = arg_str("metrics.list", "service", service)
        t0, t1 = self._window("metrics.list", start, end)
        rows, notes, truncated = self._read(sorted(self.queries), service, t0, t1)
        out = [{"service": svc, "name": n, "samples": len(pts), "first_ts": pts[0][0], "last_ts": pts[-1][0]}
               for (svc, n), pts in sorted(rows.items()) if pts]
        return self._result({"metrics": out}, notes, truncated)

    def topology_get(self) -> dict[str, Any]:
        """``{services: [{name, calls}]}`` from the edges query over the last ``topology_window_s``.

        One instant query. Peers named ``unknown`` (outside the mesh) are left out.

        Raises:
            QueryError: the edges query failed.
            SourceError: Prometheus failed.
        """
        query = string.Template(self.edges_query).safe_substitute(
            source_label=self.source_label, destination_label=self.destination_label,
            selector=self.selector, range=f"{self.topology_window_s}s")
        try:
            data = self._post("/api/v1/query", {"query": query, "time": f"{self.now():.3f}",
                                                "timeout": self._timeout_param()})
        except _PromError as exc:
            raise self._query_error("topology edges", "edges_query", self.edges_query, exc) from None
        calls: dict[str, set[str]] = {}
        result = self._result_list(data, "vector", "edges_query")
        result.sort(key=lambda r: tuple(str((r.get("metric") or {}).get(k)) for k in (self.source_label,
                                                                                   self.destination_label)))
        kept = result[: self.max_series]
        for item in kept:
            labels = item.get("metric") or {}
            src, dst = labels.get(self.source_label), labels.get(self.destination_label)
            if not isinstance(src, str) or not isinstance(dst, str):
                raise QueryError(f"{self.label}: edges_query returned a series without {self.source_label} and "
                                 f"{self.destination_label} ({_one_line(str(labels), 120)}); aggregate by both "
                                 f"(template: {_one_line(self.edges_query)})")
            for peer in (src, dst):
                if peer and peer != "unknown":
                    calls.setdefault(peer, set())
            if src and dst and "unknown" not in (src, dst) and src != dst:
                calls[src].add(dst)
        out: dict[str, Any] = {"services": [{"name": n, "calls": sorted(c)} for n, c in sorted(calls.items())]}
        if len(result) > len(kept):
            out["truncated"] = f"topology: {len(result)} edges, kept {len(kept)} (max_series)"
        return out

    def check(self) -> str:
        """Build info plus one small query: ``Prometheus 2.42.0, up; 12 services with error_rate``.

        Raises:
            SourceError: Prometheus cannot be reached or refuses the probe.
        """
        version = "version unknown"
        try:
            info = self._get("/api/v1/status/buildinfo")
            if isinstance(info, dict) and info.get("version"):
                version = str(info["version"])
        except _PromError:
            pass  # some compatible APIs answer buildinfo with an error; the query below still proves it works
        except SourceError as exc:
            # VictoriaMetrics/Thanos may not serve buildinfo at all: same reasoning.
            if "HTTP 404" not in str(exc):
                raise
        head = f"Prometheus {version}, up"
        if self.entry.section == "topology":
            services = self.topology_get()["services"]
            edges = sum(len(s["calls"]) for s in services)
            return f"{head}; {edges} call edges between {len(services)} services"
        name = "error_rate" if "error_rate" in self.queries else sorted(self.queries)[0]
        # A 5-minute step: "has data lately" should not hinge on the last scrape landing in the last minute.
        query = "count(" + self._render(name, None, _Grid(0, 0, max(self.step_s, 300))) + ")"
        try:
            data = self._post("/api/v1/query", {"query": query, "time": f"{self.now():.3f}",
                                                "timeout": self._timeout_param()})
        except _PromError as exc:
            raise self._query_error(name, f"queries.{name}", self._templates(name), exc) from None
        result = self._result_list(data, "vector", f"queries.{name}")
        count = int(float(result[0]["value"][1])) if result else 0
        return f"{head}; {count} services with {name}"

    def close(self) -> None:
        self._client.close()

    # ------------------------------------------------------------ reading metrics

    def _window(self, cap: str, start: Any, end: Any) -> tuple[float, float]:
        t0, t1 = arg_time(cap, "start", start), arg_time(cap, "end", end)
        if t1 is None:
            t1 = self.now()
        if t0 is None:
            t0 = t1 - self.lookback_s
        return t0, t1

    def _grid(self, t0: float, t1: float) -> _Grid | None:
        """The step grid of ``[t0, t1)``: multiples of the step, coarsened to fit ``max_points``."""
        step = self.step_s
        span = t1 - t0
        if span / step + 1 > self.max_points:
            # A whole multiple of step_s keeps the grid on the samples' times when they are step_s apart.
            step = math.ceil(span / (self.max_points - 1) / self.step_s) * self.step_s
        # Samples scraped at :10 of each minute read best on a grid at :10 (step_offset_s): a grid on the
        # minute would return each value 50 s late, which shifts onsets and can flip close rankings.
        off = self.step_offset_s % step
        first = math.ceil((t0 - off) / step) * step + off
        last = math.ceil((t1 - off) / step) * step - step + off
        return _Grid(first, last, step) if last >= first else None

    def _templates(self, name: str) -> str:
        return " or ".join(p.template for p in self.queries[name])

    def _render(self, name: str, service: str | None, grid: _Grid) -> str:
        """The PromQL of metric ``name`` for ``grid`` (and one service when given)."""
        parts = self.queries[name]
        rendered = []
        for p in parts:
            matchers = [m for m in (self.selector, f"{p.label}={_quote(service)}" if service else "") if m]
            rendered.append(string.Template(p.template).safe_substitute(
                service_label=p.label, selector=",".join(matchers),
                service=_quote(service)[1:-1] if service else "", step=f"{grid.step}s",
                fresh=f"{grid.step * 1000 - 1}ms", rate=f"{max(self.rate_window_s, 2 * grid.step)}s"))
        if len(rendered) == 1:
            return rendered[0]
        if len({p.label for p in parts}) == 1:
            return " or ".join(f"({q})" for q in rendered)
        # Parts keyed by different labels: copy each one's service into one label so "or" matches them.
        return " or ".join(
            f'max by ({_JOINED_LABEL}) (label_replace(({q}), "{_JOINED_LABEL}", "$1", "{p.label}", "(.+)"))'
            for q, p in zip(rendered, parts, strict=True))

    def _label_of(self, name: str) -> str:
        parts = self.queries[name]
        return parts[0].label if len({p.label for p in parts}) == 1 else _JOINED_LABEL

    def _read(self, names: list[str], service: str | None, t0: float,
              t1: float) -> tuple[dict[tuple[str, str], list[list[Any]]], list[str], list[str]]:
        """Run the range query of each known name in ``names``.

        Returns:
            ``{(service, name): points}``, notes for ``missing_sources`` (metrics whose query
            failed) and truncation notes.

        Raises:
            QueryError: every metric's query failed.
            SourceError: Prometheus failed.
        """
        names = [n for n in names if n in self.queries]
        grid = self._grid(t0, t1)
        if not names or grid is None:
            return {}, [], []
        before = self.requests
        workers = max(1, min(self.workers, len(names)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pm-prom") as pool:
            futures = [(n, pool.submit(self._range, n, service, grid)) for n in names]
            outcomes: list[tuple[str, Any]] = []
            for n, fut in futures:
                try:
                    outcomes.append((n, fut.result()))
                except QueryError as exc:
                    outcomes.append((n, exc))
                except BaseException:
                    # The source itself failed: queries not yet sent would only wait out the same timeout
                    # and push the call past the gateway's bound (timeout_s plus a little).
                    for _, other in futures:
                        other.cancel()
                    raise
        rows: dict[tuple[str, str], list[list[Any]]] = {}
        notes: list[str] = []
        truncated: list[str] = []
        errors = [exc for _, exc in outcomes if isinstance(exc, QueryError)]
        if errors and len(errors) == len(outcomes):
            raise errors[0] if len(errors) == 1 else QueryError("; ".join(str(e) for e in errors))
        for n, got in outcomes:
            if isinstance(got, QueryError):
                notes.append(str(got))
                continue
            series, cut = got
            if cut:
                truncated.append(cut)
            for svc, pts in series.items():
                rows[(svc, n)] = pts
        log.info("%s: %d metric queries, %d requests (%d in all)", self.label, len(names),
                 self.requests - before, self.requests)
        return rows, notes, truncated

    def _range(self, name: str, service: str | None, grid: _Grid) -> tuple[dict[str, list[list[Any]]], str]:
        """One range query: ``({service: points}, truncation note or "")``.

        Raises:
            QueryError: the template failed or returned series we cannot attribute.
            SourceError: Prometheus failed.
        """
        query = self._render(name, service, grid)
        try:
            data = self._post("/api/v1/query_range", {
                "query": query, "start": str(grid.first), "end": str(grid.last), "step": str(grid.step),
                "timeout": self._timeout_param()})
        except _PromError as exc:
            raise self._query_error(name, f"queries.{name}", self._templates(name), exc) from None
        label = self._label_of(name)
        out: dict[str, list[list[Any]]] = {}
        result = self._result_list(data, "matrix", f"queries.{name}")
        for item in result:
            labels = item.get("metric") or {}
            svc = labels.get(label)
            if not isinstance(svc, str) or not svc:
                raise QueryError(f"{self.label}: metric {name}: the query returned a series without the "
                                 f"{label} label ({_one_line(str(labels), 120)}); aggregate by ($service_label) "
                                 f"(template: {_one_line(self._templates(name))})")
            if svc in out:
                raise QueryError(f"{self.label}: metric {name}: the query returned several series for "
                                 f"{label}={svc}; aggregate them, e.g. max by ($service_label) (...) "
                                 f"(template: {_one_line(self._templates(name))})")
            if "values" not in item and "histograms" in item:
                raise QueryError(f"{self.label}: metric {name}: the query returned native histograms, not numbers; "
                                 f"wrap it in histogram_quantile(...) (template: {_one_line(self._templates(name))})")
            out[svc] = self._points(item.get("values"), name)
        cut = ""
        if len(out) > self.max_series:
            kept = sorted(out)[: self.max_series]
            cut = f"metric {name}: {len(out)} series, kept {len(kept)} (max_series)"
            out = {s: out[s] for s in kept}
        return {s: p for s, p in out.items() if p}, cut

    def _points(self, values: Any, name: str) -> list[list[Any]]:
        if not isinstance(values, list):
            raise SourceError(f"{self.label}: metric {name}: a matrix series without values; is url: a "
                              "Prometheus-compatible API?")
        points: list[list[Any]] = []
        for pair in values:
            try:
                ts, value = float(pair[0]), float(pair[1])
            except (TypeError, ValueError, IndexError):
                raise SourceError(f"{self.label}: metric {name}: a sample that is not [time, \"value\"] "
                                  f"({_one_line(str(pair), 60)}); is url: a Prometheus-compatible API?") from None
            if math.isfinite(value):  # NaN/Inf (0/0 shares, empty histograms) are no measurement
                points.append([iso(ts), value])
        return points

    # ------------------------------------------------------------ HTTP

    def _result_list(self, data: dict[str, Any], kind: str, key: str) -> list[dict[str, Any]]:
        got, result = data.get("resultType"), data.get("result")
        if got == "scalar" or got == "string":
            raise QueryError(f"{self.label}: {key} returned a {got}, not series per service; "
                             "aggregate by the service label")
        if got != kind or not isinstance(result, list) or not all(isinstance(r, dict) for r in result):
            raise SourceError(f"{self.label}: expected a {kind} result, got {_one_line(str(got), 40)}; "
                              "is url: a Prometheus-compatible API?")
        return result

    def _query_error(self, name: str, key: str, template: str, exc: _PromError) -> SourceError:
        if exc.error_type in _QUERY_ERRORS:
            return QueryError(f"{self.label}: metric {name}: query failed ({exc.error_type}: "
                              f"{_one_line(exc.message, 200)}); fix {self.where}.{key} "
                              f"(template: {_one_line(template)})")
        if exc.error_type in ("timeout", "canceled"):
            return SourceError(f"{self.label}: metric {name}: Prometheus gave up on the query ({exc.error_type}: "
                               f"{_one_line(exc.message, 120)}); shorten the window, raise step_s: or the "
                               "server's --query.timeout")
        return SourceError(f"{self.label}: HTTP {exc.status} {exc.error_type}: {_one_line(exc.message, 200)}")

    def _timeout_param(self) -> str:
        """The server-side query timeout: ours, in whole milliseconds (``0.3s`` is no Prometheus duration)."""
        return f"{max(1, round(self.timeout_s * 1000))}ms"

    def _count(self) -> None:
        with self._lock:
            self.requests += 1
        with PrometheusProvider._total_lock:
            PrometheusProvider.total_requests += 1

    def _post(self, path: str, form: dict[str, str]) -> dict[str, Any]:
        """POST a query form (long PromQL does not fit a URL); return the answer's ``data``."""
        self._count()
        try:
            resp = self._client.post(self.base + path, data=form)
        except httpx.HTTPError as exc:
            raise http_error(self.label, exc, hint=f"check {self.where}.url: and that Prometheus runs") from None
        return self._data(resp, path)

    def _get(self, path: str) -> Any:
        self._count()
        try:
            resp = self._client.get(self.base + path)
        except httpx.HTTPError as exc:
            raise http_error(self.label, exc, hint=f"check {self.where}.url: and that Prometheus runs") from None
        return self._data(resp, path)

    def _data(self, resp: httpx.Response, path: str) -> Any:
        """The ``data`` of a Prometheus API answer.

        Raises:
            _PromError: ``{"status": "error", ...}`` (the caller decides whose fault it is).
            SourceError: an HTTP error without Prometheus's error JSON, or a body that is not the API's.
        """
        try:
            body = resp.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("status") == "error":
            raise _PromError(str(body.get("errorType") or "error"), str(body.get("error") or ""), resp.status_code)
        try:
            resp.raise_for_status()
        except httpx.HTTPStatusError as exc:
            raise http_error(self.label, exc) from None
        if not isinstance(body, dict) or body.get("status") != "success" or "data" not in body:
            snippet = _one_line(resp.text, 80) or "an empty body"
            raise SourceError(f"{self.label}: {path} answered with something that is not Prometheus API JSON "
                              f"({snippet}); set url: to the HTTP API root, e.g. http://prometheus:9090")
        return body["data"]

    def _result(self, result: dict[str, Any], notes: list[str], truncated: list[str]) -> dict[str, Any]:
        if notes:
            result["missing_sources"] = notes
        if truncated:
            result["truncated"] = "; ".join(truncated)
        return result

