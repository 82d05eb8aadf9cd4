"""``kind: mcp`` — a team's own MCP server (Prometheus MCP, Grafana MCP) read through a normaliser.

We are an MCP *client* of the external server: one session per provider, held on a private
event-loop thread (the provider's methods are sync and run in worker threads of our own MCP
server), started lazily, every call bounded by ``timeout_s`` and the subprocess stopped on
:meth:`ExternalMcpProvider.close`. A *normaliser* is the code that knows one server: it turns
our capability into one or more calls of its tools and converts the answers into our contract's
shapes (docs/contracts.md). Their shapes stay in this module::

    metrics: [{kind: mcp, normaliser: prometheus-mcp-server,
               server: {transport: stdio, command: prometheus-mcp-server,
                        env: {PROMETHEUS_URL: "http://127.0.0.1:9090"}}}]
    logs:    [{kind: mcp, normaliser: grafana, datasources: {prometheus: prom, loki: loki},
               server: {transport: http, url: "http://grafana-mcp:8000/mcp",
                        headers: {Authorization: {env: GRAFANA_MCP_AUTH}}}}]

Normalisers: ``prometheus-mcp-server`` (PyPI, pythonic; metrics via ``execute_range_query``) and
``grafana`` (Grafana's ``mcp-grafana``; metrics via ``query_prometheus``, logs via
``query_loki_logs``, ``check`` via ``query_loki_stats``).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import string
import tempfile
import threading
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sandbox import args as A
from sandbox.errors import ToolArgumentError
from sandbox.world import LEVEL_RANK, LEVELS, iso
from sources.base import Provider
from sources.errors import QueryError, SourceError
from store.errors import ConfigError
from store.sources_file import _duration, resolve_secret

#: Prometheus refuses range queries of more points than this per series.
_MAX_POINTS = 11_000
#: Seconds added to timeout_s for the backstop around an MCP call (the SDK's own read timeout fires first).
_GRACE_S = 2.0
#: Header and environment names whose values are credentials: they must be given by reference.
_CREDENTIAL = re.compile(r"(?i)authorization|token|secret|password|passwd|api[-_]?key|cookie")
_PLACEHOLDER = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_METRIC_NAME = re.compile(r"^[A-Za-z_:][A-Za-z0-9_:]*$")
_LEVEL_ALIASES = {"WARNING": "WARN", "ERR": "ERROR", "CRITICAL": "FATAL", "CRIT": "FATAL", "PANIC": "FATAL",
                  "EMERG": "FATAL", "ALERT": "FATAL", "TRACE": "DEBUG", "INFORMATION": "INFO", "NOTICE": "INFO"}
#: Our level -> the spellings a Loki label may carry (matched case-insensitively).
_LEVEL_SPELLINGS = {"DEBUG": ("debug", "trace"), "INFO": ("info", "information", "notice"),
                    "WARN": ("warn", "warning"), "ERROR": ("error", "err"),
                    "FATAL": ("fatal", "critical", "crit", "panic", "emerg", "alert")}


# ---------------------------------------------------------------------------------------------- session


@dataclass
class ServerSpec:
    """How to reach the external server (``server:`` of the entry)."""

    transport: str
    command: str = ""
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def target(self) -> str:
        """The command or URL, for messages."""
        return self.url if self.transport == "http" else " ".join([self.command, *self.args][:2])


class McpLink:
    """One MCP client session to an external server, on a private event-loop thread.

    Args:
        spec: how to reach the server.
        label: how messages name the source.
        timeout_s: bound of every call.
        connect_timeout_s: bound of starting the server and the MCP handshake.
    """

    def __init__(self, spec: ServerSpec, *, label: str, timeout_s: float, connect_timeout_s: float) -> None:
        self.spec = spec
        self.label = label
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._client: Any = None
        self._closing: asyncio.Event | None = None
        self._holder: asyncio.Future[Any] | None = None
        self._errlog: Any = None
        self._http_status: int | None = None
        self._connect_lock: asyncio.Lock | None = None
        self._closed = False

    # -------------------------------------------------------- sync side

    def call_tool(self, tool: str, arguments: dict[str, Any]) -> Any:
        """Call ``tool`` and return the SDK's CallToolResult.

        Raises:
            SourceError: the server cannot be started or reached, timed out, or broke the protocol.
        """
        loop = self._start_loop()
        future = asyncio.run_coroutine_threadsafe(self._call(tool, arguments), loop)
        try:
            return future.result(self.connect_timeout_s + self.timeout_s + 2 * _GRACE_S)
        except TimeoutError:
            future.cancel()
            raise SourceError(f"{self.label}: no answer from tool {tool} within {self.timeout_s:g}s; "
                              "raise timeout_s: or check the server") from None

    def list_tools(self) -> list[str]:
        """The server's tool names.

        Raises:
            SourceError: as :meth:`call_tool`.
        """
        loop = self._start_loop()
        future = asyncio.run_coroutine_threadsafe(self._list(), loop)
        return future.result(self.connect_timeout_s + self.timeout_s + 2 * _GRACE_S)  # type: ignore[no-any-return]

    def close(self) -> None:
        """End the session (stopping a stdio subprocess) and the loop thread. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(15)
        except Exception:  # noqa: BLE001 - closing must not raise over the caller's own error
            pass
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            if not thread.is_alive():
                loop.close()
            if self._errlog is not None:
                self._errlog.close()

    def _start_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise SourceError(f"{self.label}: the provider is closed; build a new one")
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self._loop.run_forever, name="pm-external-mcp", daemon=True)
                self._thread.start()
            return self._loop

    # -------------------------------------------------------- loop side

    def _stderr_tail(self) -> str:
        if self._errlog is None or self._errlog.closed:
            return ""
        try:
            self._errlog.flush()
            self._errlog.seek(max(0, self._errlog.seek(0, 2) - 8000))
            lines = [ln.strip() for ln in self._errlog.read().splitlines() if ln.strip()]
        except (OSError, ValueError):
            return ""
        return lines[-1][:300] if lines else ""

    async def _hold(self, ready: asyncio.Future[Any], closing: asyncio.Event) -> None:
        """Own the session for its whole life: anyio scopes must exit in the task that entered them."""
        from mcp import Client

        try:
            async with AsyncExitStack() as stack:
                if self.spec.transport == "stdio":
                    from mcp.client.stdio import StdioServerParameters, stdio_client

                    if self._errlog is None:
                        # Why a file: a server that dies at start explains itself only on stderr.
                        self._errlog = tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")
                    self._errlog.seek(0)
                    self._errlog.truncate()  # a restarted server's tail must be its own
                    params = StdioServerParameters(command=self.spec.command, args=self.spec.args,
                                                   env=self.spec.env or None, cwd=self.spec.cwd)
                    client = Client(stdio_client(params, errlog=self._errlog), cache=None)
                else:
                    import httpx2
                    from mcp.client.streamable_http import streamable_http_client

                    async def note_status(response: Any) -> None:
                        if response.status_code >= 400:  # the SDK's error hides it; our message names it
                            self._http_status = response.status_code

                    http = await stack.enter_async_context(httpx2.AsyncClient(
                        headers=self.spec.headers, timeout=httpx2.Timeout(self.timeout_s),
                        event_hooks={"response": [note_status]}))
                    client = Client(streamable_http_client(self.spec.url, http_client=http), cache=None)
                await stack.enter_async_context(client)
                if not ready.done():
                    ready.set_result(client)
                await closing.wait()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else ConnectionError(_describe(exc)))

    async def _connect(self) -> Any:
        if self._connect_lock is None:
            self._connect_lock = asyncio.Lock()
        # Calls arrive from several worker threads at once: one of them starts the session, the rest wait.
        async with self._connect_lock:
            return await self._connect_locked()

    async def _connect_locked(self) -> Any:
        if self._client is not None and self._holder is not None and not self._holder.done():
            return self._client
        self._http_status = None
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[Any] = loop.create_future()
        closing = asyncio.Event()
        self._closing = closing
        self._holder = asyncio.ensure_future(self._hold(ready, closing))
        try:
            self._client = await asyncio.wait_for(asyncio.shield(ready), self.connect_timeout_s)
        except TimeoutError:
            closing.set()
            said = self._stderr_tail()
            raise SourceError(f"{self.label}: the MCP server did not answer the handshake within "
                              f"{self.connect_timeout_s:g}s" + (f"; it said: {said}" if said else "")
                              + "; check server: and raise connect_timeout_s:") from None
        except Exception as exc:  # noqa: BLE001 - every start-up failure becomes one SourceError
            closing.set()
            await asyncio.wait([self._holder], timeout=5)
            said = self._stderr_tail()
            if said:
                raise SourceError(f"{self.label}: the MCP server failed to start: {said}; check server:") from None
            if self._http_status in (401, 403):
                raise SourceError(f"{self.label}: HTTP {self._http_status} from {self.spec.url} (refused our "
                                  "credentials); check server.headers") from None
            if self._http_status:
                raise SourceError(f"{self.label}: HTTP {self._http_status} from {self.spec.url} "
                                  f"({_describe(exc)}); check server.url") from None
            raise SourceError(f"{self.label}: cannot start/reach the MCP server {self.spec.target!r} "
                              f"({_describe(exc)}); check server: command/url") from None
        return self._client

    def _drop(self) -> None:
        if self._closing is not None:
            self._closing.set()
        self._client = None

    async def _call(self, tool: str, arguments: dict[str, Any]) -> Any:
        from mcp.shared.exceptions import MCPError

        client = await self._connect()
        try:
            return await asyncio.wait_for(
                client.call_tool(tool, arguments, read_timeout_seconds=self.timeout_s), self.timeout_s + _GRACE_S)
        except TimeoutError:
            self._drop()  # a server stuck on one call is restarted rather than trusted with the next
            raise SourceError(f"{self.label}: tool {tool} timed out after {self.timeout_s:g}s; raise timeout_s: "
                              "or narrow the window") from None
        except MCPError as exc:
            if "timed out" in str(exc).lower() or "timeout" in str(exc).lower():
                self._drop()
                raise SourceError(f"{self.label}: tool {tool} timed out after {self.timeout_s:g}s; raise "
                                  "timeout_s: or narrow the window") from None
            raise SourceError(f"{self.label}: tool {tool} was refused: {exc}; check the normaliser's "
                              "tool names against the server's version") from None
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - transport failures arrive as many types (groups too)
            self._drop()
            said = self._stderr_tail()
            raise SourceError(f"{self.label}: the MCP session broke during {tool} ({_describe(exc)})"
                              + (f"; the server said: {said}" if said else "") + "; check that it runs") from None

    async def _list(self) -> list[str]:
        client = await self._connect()
        try:
            tools = await asyncio.wait_for(client.list_tools(), self.timeout_s)
        except TimeoutError:
            self._drop()
            raise SourceError(f"{self.label}: tools/list timed out after {self.timeout_s:g}s") from None
        return sorted(t.name for t in tools.tools)

    async def _shutdown(self) -> None:
        self._drop()
        if self._holder is not None:
            done, pending = await asyncio.wait([self._holder], timeout=10)
            for task in pending:
                task.cancel()


class ExternalToolError(SourceError):
    """The external tool itself answered isError (as opposed to the transport failing)."""


def _describe(exc: BaseException) -> str:
    """One line naming an exception, unwrapping anyio's exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__


# ---------------------------------------------------------------------------------------------- helpers


def _levels_wanted(cap: str, level: Any, levels: Any) -> list[str] | None:
    """Our levels a search keeps (min ``level`` and/or the ``levels`` list), or None for all."""
    floor = A.opt_level(cap, "level", level)
    chosen = A.opt_str_list(cap, "levels", levels)
    wanted = list(LEVELS)
    if floor is not None:
        wanted = [lv for lv in wanted if LEVEL_RANK[lv] >= LEVEL_RANK[floor]]
    if chosen is not None:
        picked = {A.opt_level(cap, "levels", v) for v in chosen}
        wanted = [lv for lv in wanted if lv in picked]
    return None if wanted == list(LEVELS) else wanted


def _level(value: Any) -> str:
    text = str(value or "").strip().upper()
    text = _LEVEL_ALIASES.get(text, text)
    return text if text in LEVEL_RANK else "INFO"


def _quote(value: str) -> str:
    """A LogQL/PromQL double-quoted string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _rfc3339(epoch: float) -> str:
    """RFC 3339 with milliseconds when the time has them (Go's time.Parse accepts the fraction)."""
    whole = math.floor(epoch)
    ms = round((epoch - whole) * 1000)
    if ms == 1000:
        whole, ms = whole + 1, 0
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{text}.{ms:03d}Z" if ms else f"{text}Z"


def _ns_rfc3339(ns: int) -> str:
    seconds, frac = divmod(ns, 1_000_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{text}.{frac:09d}Z" if frac else f"{text}Z"


# ---------------------------------------------------------------------------------------------- normalisers


class Normaliser:
    """Maps our capabilities onto one external server's tools. Subclasses set NAME and SECTIONS.

    Args:
        provider: the provider it serves (for settings, ``tool()`` and messages).
    """

    NAME: ClassVar[str] = ""
    SECTIONS: ClassVar[frozenset[str]] = frozenset()
    #: Environment a stdio server of this kind gets under the entry's own ``server.env``.
    DEFAULT_ENV: ClassVar[dict[str, str]] = {}

    def __init__(self, provider: ExternalMcpProvider) -> None:
        self.p = provider

    def shape_error(self, tool: str, expected: str, got: Any) -> SourceError:
        """A SourceError saying which normaliser expected what from which tool."""
        seen = json.dumps(got, default=str)[:160] if not isinstance(got, str) else got[:160]
        return SourceError(f"{self.p.label}: normaliser {self.NAME} expected {expected} from tool {tool}, got "
                           f"{seen!r}; the server's version may differ from the one this normaliser reads")

    def check(self) -> str:
        raise NotImplementedError


class PromQLNormaliser(Normaliser):
    """Metrics from an MCP server that runs PromQL range queries (shared by both normalisers).

    The templates are the prometheus provider's (``sources/promql.yaml``), so both kinds read a team's
    metrics the same way. Settings: ``convention`` (a set of promql.yaml, default ``plain``: the
    world-metric gauges), ``queries`` (metric name -> template, over the convention's; ``name: null``
    drops one; placeholders ``$service_label``, ``$selector``, ``$step``, ``$fresh``, ``$rate``),
    ``service_label`` (the convention's, ``service``), ``selector`` (extra label matchers),
    ``step_s`` (60), ``rate_window_s`` (120), ``max_series`` (2000 per query, beyond which the answer
    says ``truncated``), ``list_window`` (how far back metrics.list looks without a window, default
    the file's lookback), ``list_end`` (where it ends without one, default now).
    """

    SECTIONS = frozenset({"metrics"})
    RANGE_TOOL: ClassVar[str] = ""
    PLACEHOLDERS = frozenset({"service_label", "selector", "service", "step", "fresh", "rate"})

    def __init__(self, provider: ExternalMcpProvider) -> None:
        from sources.prometheus import load_defaults

        super().__init__(provider)
        p = provider
        defaults = load_defaults()
        names = sorted(k for k in defaults if k != "topology")
        convention = p.opt_str("convention", "plain") or "plain"
        if convention not in names:
            raise ConfigError(f"{p.where}.convention: {convention!r} unknown; use one of {', '.join(names)} "
                              "(sources/promql.yaml), and queries: for anything else")
        chosen = defaults[convention]
        self.service_label = p.opt_str("service_label") or str(chosen.get("service_label") or "service")
        self.selector = (p.opt_str("selector") or "").strip().strip("{}").strip().rstrip(",")
        self.step_s = p.opt_float("step_s", 60.0)
        self.rate_window_s = p.opt_float("rate_window_s", 120.0)
        self.max_series = p.opt_int("max_series", 2000)
        # A duration like the file's window: 6h, 90m or seconds.
        self.list_window_s = _duration(p.settings.get("list_window", p.sources.lookback_s), f"{p.where}.list_window")
        list_end = p.opt_str("list_end")
        try:
            self.list_end = A.opt_time("metrics.list", "list_end", list_end)
        except ToolArgumentError:
            raise ConfigError(f"{p.where}.list_end: {list_end!r} is not an ISO-8601 time") from None
        queries = {str(n): str(t) for n, t in (chosen.get("queries") or {}).items()}
        for name, template in p.opt_map("queries").items():
            if template is None:
                queries.pop(str(name), None)
            elif not isinstance(template, str) or not template.strip():
                raise ConfigError(f"{p.where}.queries.{name}: expected a PromQL template string")
            else:
                unknown = {m.group(1) or m.group(2) for m in _PLACEHOLDER.finditer(template)} - self.PLACEHOLDERS
                if unknown:
                    raise ConfigError(f"{p.where}.queries.{name}: unknown placeholder(s) "
                                      f"{', '.join('$' + u for u in sorted(unknown))}; use "
                                      f"{', '.join('$' + u for u in sorted(self.PLACEHOLDERS))}")
                queries[str(name)] = template
        if not queries:
            raise ConfigError(f"{p.where}.queries: every query was removed; keep at least one metric")
        self.queries = queries

    # -- what a subclass supplies

    def range_matrix(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        """Run one range query; return ``[{"metric": {labels}, "values": [[epoch, "value"], ...]}]``.

        Raises:
            ExternalToolError: the tool refused the query (the caller names the template).
            SourceError: anything else.
        """
        raise NotImplementedError

    # -- shared

    def _template(self, name: str) -> str:
        if name in self.queries:
            return self.queries[name]
        if not _METRIC_NAME.match(name):
            raise ToolArgumentError(f"metrics.series: 'name' {name!r} is not a metric name; use one of "
                                    f"{', '.join(sorted(self.queries))}")
        # An unlisted gauge is read like the plain convention's: the freshest sample of each step.
        return f"max by ($service_label) (last_over_time({name}{{$selector}}[$fresh]))"

    def _render(self, template: str, step: float) -> str:
        """The template with its placeholders filled for one all-services query at ``step``."""
        return string.Template(template).safe_substitute(
            service_label=self.service_label, selector=self.selector, service="", step=f"{step:g}s",
            fresh=f"{max(1, round(step * 1000) - 1)}ms", rate=f"{max(self.rate_window_s, 2 * step):g}s")

    def _series(self, name: str, t0: float, t1: float, service: str | None,
                notes: list[str]) -> list[dict[str, Any]]:
        """One range query for ``name`` over [t0, t1): every service's points."""
        span = max(t1 - t0, 0.0)
        # Widened by whole steps, so evaluations stay on the samples' own times.
        step = self.step_s * max(1, math.ceil(span / _MAX_POINTS / self.step_s))
        first = math.ceil(t0 / step) * step  # aligned, so evaluations fall on the samples' own minutes
        last = t1 - 0.001  # the contract's end is exclusive
        if first > last:
            return []
        template = self._template(name)
        expr = self._render(template, step)
        try:
            matrix = self.range_matrix(expr, first, last, step)
        except ExternalToolError as exc:
            raise QueryError(f"{exc}; metric {name} (template {template!r} of {self.p.where}, sent as "
                             f"{expr!r})") from None
        if len(matrix) > self.max_series:
            notes.append(f"{name}: {len(matrix)} series, kept the first {self.max_series} (max_series)")
            matrix = matrix[: self.max_series]
        out = []
        for item in matrix:
            labels = item.get("metric") or {}
            svc = labels.get(self.service_label)
            if not svc or (service is not None and svc != service):
                continue
            points = []
            for ts, value in item.get("values") or []:
                epoch = float(ts)
                if t0 <= epoch < t1:
                    points.append([iso(epoch), float(value)])
            out.append({"service": str(svc), "name": name, "points": points})
        return out

    def _check_matrix(self, tool: str, result: Any) -> list[dict[str, Any]]:
        """Validate matrix rows: ``[{metric: {..}, values: [[ts, "v"], ...]}]``."""
        if not isinstance(result, list):
            raise self.shape_error(tool, "a matrix (a list of {metric, values})", result)
        for row in result:
            if (not isinstance(row, dict) or not isinstance(row.get("metric", {}), dict)
                    or not isinstance(row.get("values"), list)):
                raise self.shape_error(tool, "matrix rows {metric: {...}, values: [[ts, value], ...]}", row)
            for pair in row["values"]:
                if not isinstance(pair, list | tuple) or len(pair) != 2:
                    raise self.shape_error(tool, "[timestamp, value] pairs", pair)
                try:
                    float(pair[0]), float(pair[1])
                except (TypeError, ValueError):
                    raise self.shape_error(tool, "numeric [timestamp, value] pairs", pair) from None
        return result

    def metrics_series(self, service: Any = None, name: Any = None, start: Any = None,
                       end: Any = None) -> dict[str, Any]:
        cap = "metrics.series"
        service, name = A.opt_str(cap, "service", service), A.opt_str(cap, "name", name)
        t1 = A.opt_time(cap, "end", end) or time.time()
        t0 = A.opt_time(cap, "start", start)
        t0 = t1 - self.p.sources.lookback_s if t0 is None else t0
        names = [name] if name else sorted(self.queries)
        notes: list[str] = []
        series = []
        for metric in names:
            series.extend(self._series(metric, t0, t1, service, notes))
        series.sort(key=lambda s: (s["service"], s["name"]))
        out: dict[str, Any] = {"series": series}
        if notes:
            out["truncated"] = "; ".join(notes)
        return out

    def metrics_list(self, service: Any = None, start: Any = None, end: Any = None) -> dict[str, Any]:
        """What had samples in [start, end); without a window, ``list_window`` before ``list_end`` (now)."""
        cap = "metrics.list"
        service = A.opt_str(cap, "service", service)
        t1 = A.opt_time(cap, "end", end) or self.list_end or time.time()
        t0 = A.opt_time(cap, "start", start)
        t0 = t1 - self.list_window_s if t0 is None else t0
        notes: list[str] = []
        metrics = []
        for name in sorted(self.queries):
            for s in self._series(name, t0, t1, service, notes):
                if s["points"]:
                    metrics.append({"service": s["service"], "name": name, "samples": len(s["points"]),
                                    "first_ts": s["points"][0][0], "last_ts": s["points"][-1][0]})
        metrics.sort(key=lambda m: (m["service"], m["name"]))
        out: dict[str, Any] = {"metrics": metrics}
        if notes:
            out["truncated"] = "; ".join(notes)
        return out


class PrometheusMcpServer(PromQLNormaliser):
    """PyPI ``prometheus-mcp-server``: ``execute_range_query(query, start, end, step)`` answers
    ``{resultType: "matrix", result: [{metric, values}], links?}``."""

    NAME = "prometheus-mcp-server"
    RANGE_TOOL = "execute_range_query"
    #: Its fastmcp prints a banner and asks PyPI for updates at start; off unless the entry says otherwise.
    DEFAULT_ENV: ClassVar[dict[str, str]] = {"FASTMCP_SHOW_SERVER_BANNER": "false", "FASTMCP_CHECK_FOR_UPDATES": "off"}

    def range_matrix(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        args = {"query": expr, "start": _rfc3339(start), "end": _rfc3339(end), "step": f"{step:g}s"}
        try:
            result = self.p.tool(self.RANGE_TOOL, args)
        except ExternalToolError as exc:
            # Their tool's message carries the requests/JSON error: connection, 5xx and non-JSON bodies are
            # Prometheus's (or its URL's) fault; a 400 is Prometheus refusing the template.
            if any(s in str(exc) for s in ("HTTPConnectionPool", "ConnectionError", "Invalid JSON", "timed out",
                                           "Server Error", "Expecting value")):
                # Not the template: the server's own link to Prometheus failed.
                raise SourceError(f"{exc}; the server cannot query Prometheus: check PROMETHEUS_URL in "
                                  f"{self.p.where}.server.env") from None
            raise
        if not isinstance(result, dict) or "result" not in result:
            raise self.shape_error(self.RANGE_TOOL, "{resultType: matrix, result: [...]}", result)
        if result.get("resultType") != "matrix":
            raise self.shape_error(self.RANGE_TOOL, "resultType matrix (a range query)", result.get("resultType"))
        return self._check_matrix(self.RANGE_TOOL, result["result"])

    def check(self) -> str:
        result = self.p.tool("health_check", {})
        if not isinstance(result, dict) or "status" not in result:
            raise self.shape_error("health_check", "{status, ...}", result)
        if result.get("prometheus_connectivity") == "unhealthy" or result.get("status") == "unhealthy":
            reason = result.get("prometheus_error") or result.get("error") or result.get("status")
            raise SourceError(f"{self.p.label}: the server cannot reach Prometheus ({str(reason)[:200]}); check "
                              "PROMETHEUS_URL in server.env")
        return f"prometheus-mcp-server {result.get('version', '?')}: {result.get('status')}"


class Grafana(PromQLNormaliser):
    """Grafana's ``mcp-grafana``.

    Metrics: ``query_prometheus(datasourceUid, expr, startTime, endTime, stepSeconds, queryType=range)``
    answers ``{data: <matrix>, hints?}`` (older releases: the matrix itself). Logs:
    ``query_loki_logs(datasourceUid, logql, startRfc3339, endRfc3339, limit, direction, queryType,
    stepSeconds)`` answers ``{data: [{timestamp, line, labels}], streams?, metadata?}`` (older releases:
    the list itself) for log queries and ``{data: [{labels, values: [{timestamp, value}]}]}`` for
    metric queries. Settings beyond the metrics ones: ``datasources: {prometheus: UID, loki: UID}``,
    ``level_label`` (``level``), ``host_label`` (``host``), ``trace_label`` (``trace_id``), ``selector``
    (extra stream matchers, e.g. ``namespace="prod"``), ``page_size`` (lines per call, 100: the
    server's default maximum), ``max_pages`` (per logs.search call, 50).
    """

    NAME = "grafana"
    SECTIONS = frozenset({"metrics", "logs"})
    RANGE_TOOL = "query_prometheus"
    LOGS_TOOL = "query_loki_logs"

    def __init__(self, provider: ExternalMcpProvider) -> None:
        super().__init__(provider)
        p = provider
        ds = p.opt_map("datasources")
        for key, value in ds.items():
            if key not in ("prometheus", "loki") or not isinstance(value, str) or not value:
                raise ConfigError(f"{p.where}.datasources.{key}: expected prometheus: UID and/or loki: UID")
        self.prom_uid = ds.get("prometheus")
        self.loki_uid = ds.get("loki")
        section = p.entry.section
        if section == "metrics" and not self.prom_uid:
            raise ConfigError(f"{p.where}.datasources.prometheus: required for metrics, e.g. datasources: "
                              "{prometheus: <the Prometheus datasource UID in Grafana>}")
        if section == "logs" and not self.loki_uid:
            raise ConfigError(f"{p.where}.datasources.loki: required for logs, e.g. datasources: "
                              "{loki: <the Loki datasource UID in Grafana>}")
        self.level_label = p.opt_str("level_label", "level") or "level"
        self.host_label = p.opt_str("host_label", "host") or "host"
        self.trace_label = p.opt_str("trace_label", "trace_id") or "trace_id"
        self.page_size = p.opt_int("page_size", 100)
        self.max_pages = p.opt_int("max_pages", 50)

    # -- metrics

    def range_matrix(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        args = {"datasourceUid": self.prom_uid, "expr": expr, "startTime": _rfc3339(start),
                "endTime": _rfc3339(end), "stepSeconds": int(step), "queryType": "range"}
        result = self.p.tool(self.RANGE_TOOL, args)
        if isinstance(result, dict) and "data" in result:
            result = result["data"]
        if result is None:
            return []
        return self._check_matrix(self.RANGE_TOOL, result)

    # -- logs

    def _selector(self, service: str | None, levels: list[str] | None) -> str:
        matchers = [self.selector] if self.selector else []
        if service is not None:
            matchers.append(f"{self.service_label}={_quote(service)}")
        if levels is not None:
            spellings = "|".join(s for lv in levels for s in _LEVEL_SPELLINGS[lv])
            matchers.append(f"{self.level_label}=~{_quote('(?i)(' + spellings + ')')}")
        if not matchers:
            matchers.append(f"{self.service_label}=~\".+\"")  # Loki wants one matcher that is not empty
        return "{" + ", ".join(matchers) + "}"

    def _log_query(self, service: str | None, levels: list[str] | None, text: str | None) -> str:
        query = self._selector(service, levels)
        if text:
            query += f" |~ {_quote('(?i)' + re.escape(text))}"
        return query

    def _entries(self, result: Any, *, metric: bool = False) -> list[dict[str, Any]]:
        """Log entries from query_loki_logs: the full form, the compact form or an older bare list."""
        tool = self.LOGS_TOOL
        if isinstance(result, dict):
            rows: list[Any] = list(result.get("data") or [])
            for stream in result.get("streams") or []:
                if not isinstance(stream, dict) or not isinstance(stream.get("lines"), list):
                    raise self.shape_error(tool, "compact streams {labels, lines: [{timestamp, line}]}", stream)
                for line in stream["lines"]:
                    rows.append({**line, "labels": stream.get("labels") or {}})
            if "data" not in result and "streams" not in result:
                raise self.shape_error(tool, "{data: [{timestamp, line, labels}]}", result)
        elif isinstance(result, list):
            rows = result
        elif result is None:
            rows = []
        else:
            raise self.shape_error(tool, "a list of log entries {timestamp, line, labels}", result)
        for row in rows:
            if not isinstance(row, dict) or not isinstance(row.get("labels") or {}, dict):
                raise self.shape_error(tool, "entries {timestamp, line|value|values, labels}", row)
            if metric and "value" not in row and not isinstance(row.get("values"), list):
                raise self.shape_error(tool, "metric entries {labels, value} or {labels, values: [...]}", row)
            if not metric and "timestamp" not in row:
                raise self.shape_error(tool, "log entries {timestamp, line, labels}", row)
        return rows

    def _fetch(self, query: str, start_ns: int, end_ns: int,
               limit: int) -> tuple[list[tuple[int, dict[str, Any]]], bool]:
        """One forward page from ``start_ns``: entries in a canonical order, and whether more may follow."""
        args = {"datasourceUid": self.loki_uid, "logql": query, "startRfc3339": _ns_rfc3339(start_ns),
                "endRfc3339": _ns_rfc3339(end_ns), "limit": limit, "direction": "forward"}
        result = self.p.tool(self.LOGS_TOOL, args)
        out = []
        rows = self._entries(result)
        for row in rows:
            raw = str(row["timestamp"]).strip('"')  # an early release quoted the nanosecond string twice
            try:
                ns = int(raw) if raw.isdigit() else round(float(raw) * 1e9)
            except ValueError:
                raise self.shape_error(self.LOGS_TOOL, "nanosecond timestamps", row["timestamp"]) from None
            if start_ns <= ns < end_ns:
                out.append((ns, row))
        # Why a canonical order: the server's order among lines of one nanosecond (and its compact format's
        # grouping by stream) may differ between pages; a cursor counting lines must not depend on it.
        out.sort(key=lambda pair: (pair[0], sorted((pair[1].get("labels") or {}).items()), str(pair[1].get("line"))))
        meta = result.get("metadata") if isinstance(result, dict) else None
        more = len(rows) >= limit or bool(isinstance(meta, dict) and meta.get("resultsTruncated"))
        return out, more

    def _line(self, ns: int, row: dict[str, Any]) -> dict[str, Any]:
        labels = {**(row.get("structuredMetadata") or {}), **(row.get("labels") or {})}
        text = str(row.get("line") or "")
        fields: dict[str, Any] = {}
        if text.startswith("{"):
            try:
                decoded = json.loads(text)
            except ValueError:
                decoded = None
            if isinstance(decoded, dict):
                fields = decoded
        message = fields.get("message", fields.get("msg", text)) if fields else text
        line: dict[str, Any] = {"ts": iso(ns / 1e9), "service": str(labels.get(self.service_label)
                                                                      or fields.get("service") or ""),
                                "level": _level(labels.get(self.level_label) or fields.get("level")),
                                "message": str(message)}
        host = labels.get(self.host_label) or fields.get("host")
        trace = labels.get(self.trace_label) or fields.get("trace_id")
        if host:
            line["host"] = str(host)
        if trace:
            line["trace_id"] = str(trace)
        return line

    def _window_ns(self, cap: str, start: Any, end: Any) -> tuple[int, int]:
        t1 = A.opt_time(cap, "end", end) or time.time()
        t0 = A.opt_time(cap, "start", start)
        t0 = t1 - self.p.sources.lookback_s if t0 is None else t0
        return round(t0 * 1e9), round(t1 * 1e9)

    def _total(self, query: str, start_ns: int, end_ns: int) -> int:
        """Exact matches in [start, end): one instant ``count_over_time`` evaluated 1 ms before the end."""
        range_ms = max(1, (end_ns - start_ns) // 1_000_000)
        at = _ns_rfc3339(end_ns - 1_000_000)
        args = {"datasourceUid": self.loki_uid, "logql": f"sum(count_over_time({query} [{range_ms}ms]))",
                "startRfc3339": at, "endRfc3339": at, "queryType": "instant"}
        total = 0.0
        for row in self._entries(self.p.tool(self.LOGS_TOOL, args), metric=True):
            value: Any = row.get("value")
            if value is None and row.get("values"):
                value = row["values"][-1].get("value")
            try:
                total += float(value)
            except (TypeError, ValueError):
                raise self.shape_error(self.LOGS_TOOL, "metric samples {value, labels}", row) from None
        return int(total)

    def logs_search(self, service: Any = None, level: Any = None, levels: Any = None, start: Any = None,
                    end: Any = None, text: Any = None, limit: Any = None, cursor: Any = None) -> dict[str, Any]:
        cap = "logs.search"
        service, text = A.opt_str(cap, "service", service), A.opt_str(cap, "text", text)
        wanted = _levels_wanted(cap, level, levels)
        limit = A.opt_int(cap, "limit", limit, 1000, 1, 500_000)
        start_ns, end_ns = self._window_ns(cap, start, end)
        skip = 0
        if cursor not in (None, ""):
            match = re.fullmatch(r"(\d+):(\d+)", str(cursor))
            if not match:
                raise ToolArgumentError(f"{cap}: 'cursor' {cursor!r} is not one we issued; pass next_cursor as is")
            start_ns, skip = max(start_ns, int(match.group(1))), int(match.group(2))
        query = self._log_query(service, wanted, text)
        lines: list[dict[str, Any]] = []
        notes: list[str] = []
        try:
            total = self._total(query, *self._window_ns(cap, start, end))
        except ExternalToolError as exc:
            # The lines still answer; only the count is lost (a window beyond the server's query limit, say).
            total = 0
            notes.append(f"total counts only the lines returned: the count query failed ({exc})")
        pos, pages, exhausted = start_ns, 0, False
        while True:
            if pages >= self.max_pages:
                notes.append(f"stopped after max_pages={self.max_pages} pages of {self.page_size} lines; "
                             "pass next_cursor for more")
                break
            page, more = self._fetch(query, pos, end_ns, self.page_size)
            pages += 1
            next_pos = end_ns
            if more and page:
                # The last nanosecond of a full page may go on in the next one: leave it for that page,
                # so every nanosecond is taken whole (unless one nanosecond fills a page by itself).
                last_ns = page[-1][0]
                whole = [pair for pair in page if pair[0] < last_ns]
                if whole:
                    page, next_pos = whole, last_ns
                else:
                    notes.append(f"more than {self.page_size} lines at {iso(last_ns / 1e9)}; raise page_size: "
                                 "(up to the server's maximum) to see them all")
                    next_pos = last_ns + 1
            rows = page[skip:]
            need = limit - len(lines)
            take = rows[:need]
            lines.extend(self._line(ns, row) for ns, row in take)
            if len(take) < len(rows):  # cut by the caller's limit inside this page
                cut_ns = take[-1][0]
                pos, skip = cut_ns, sum(1 for ns, _ in page[: skip + len(take)] if ns == cut_ns)
                break
            pos, skip = next_pos, 0
            if not more or not page or pos >= end_ns:
                exhausted = True
                break
            if len(lines) >= limit:
                break
        out: dict[str, Any] = {"lines": lines, "next_cursor": None if exhausted else f"{pos}:{skip}",
                               "total": max(total, len(lines))}
        if notes:
            out["truncated"] = "; ".join(notes)
        return out

    def logs_counts(self, service: Any = None, level: Any = None, levels: Any = None, text: Any = None,
                    start: Any = None, end: Any = None, step_s: Any = None, group_by: Any = None) -> dict[str, Any]:
        cap = "logs.counts"
        service, text = A.opt_str(cap, "service", service), A.opt_str(cap, "text", text)
        wanted = _levels_wanted(cap, level, levels)
        step = A.opt_int(cap, "step_s", step_s, 60, 1, 86_400 * 31)
        group = (A.opt_str(cap, "group_by", group_by) or "service").replace(" ", "")
        fields = {"service": ("service",), "level": ("level",), "service,level": ("service", "level"),
                  "level,service": ("service", "level"), "none": ()}.get(group)
        if fields is None:
            raise ToolArgumentError(f"{cap}: 'group_by' {group!r} unknown; use service, level or service,level")
        start_ns, end_ns = self._window_ns(cap, start, end)
        t0, t1 = start_ns / 1e9, end_ns / 1e9
        if (t1 - t0) / step > _MAX_POINTS:  # Loki, like Prometheus, refuses more points than this
            step = math.ceil((t1 - t0) / _MAX_POINTS)
        first_bucket, last_bucket = math.floor(t0 / step), math.ceil(t1 / step) - 1
        if last_bucket < first_bucket:
            return {"step_s": step, "buckets": []}
        labels = {"service": self.service_label, "level": self.level_label}
        by = ", ".join(labels[f] for f in fields)
        inner = f"count_over_time({self._log_query(service, wanted, text)} [{step}s])"
        # Evaluated 1 ms before each bucket's end, a window (t-step, t] is the bucket [k*step, (k+1)*step).
        args = {"datasourceUid": self.loki_uid, "logql": f"sum by ({by}) ({inner})" if by else f"sum({inner})",
                "startRfc3339": _rfc3339((first_bucket + 1) * step - 0.001),
                "endRfc3339": _rfc3339((last_bucket + 1) * step - 0.001),
                "queryType": "range", "stepSeconds": step}
        counts: dict[tuple[Any, ...], int] = {}
        for row in self._entries(self.p.tool(self.LOGS_TOOL, args), metric=True):
            row_labels = row.get("labels") or {}
            values = row.get("values")
            if not isinstance(values, list):
                raise self.shape_error(self.LOGS_TOOL, "metric rows {labels, values: [{timestamp, value}]}", row)
            key_parts = tuple(row_labels.get(labels[f], "") if f == "service" else _level(row_labels.get(labels[f]))
                              for f in fields)
            for sample in values:
                try:
                    bucket = round(float(sample["timestamp"]) + 0.001) // step - 1
                    count = float(sample["value"])
                except (KeyError, TypeError, ValueError):
                    raise self.shape_error(self.LOGS_TOOL, "samples {timestamp, value}", sample) from None
                if count > 0:
                    counts[(bucket, *key_parts)] = counts.get((bucket, *key_parts), 0) + int(round(count))
        buckets = []
        for key in sorted(counts):
            item: dict[str, Any] = {"ts": iso(key[0] * step)}
            for name, value in zip(fields, key[1:], strict=True):
                item[name] = value
            item["count"] = counts[key]
            buckets.append(item)
        return {"step_s": step, "buckets": buckets}

    def check(self) -> str:
        if self.p.entry.section == "logs":
            now = time.time()
            args = {"datasourceUid": self.loki_uid, "logql": self._selector(None, None),
                    "startRfc3339": _rfc3339(now - 600), "endRfc3339": _rfc3339(now)}
            stats = self.p.tool("query_loki_stats", args)
            if not isinstance(stats, dict) or "entries" not in stats:
                raise self.shape_error("query_loki_stats", "{streams, chunks, entries, bytes}", stats)
            return f"loki {self.loki_uid}: {stats.get('streams', 0)} streams, {stats['entries']} entries in 10 min"
        now = time.time()
        name = sorted(self.queries)[0]
        matrix = self.range_matrix(self._render(self.queries[name], 60), now - 600, now, 60)
        return f"prometheus {self.prom_uid}: {len(matrix)} series of {name} in the last 10 min"


NORMALISERS: dict[str, type[Normaliser]] = {n.NAME: n for n in (PrometheusMcpServer, Grafana)}


# ---------------------------------------------------------------------------------------------- provider


class ExternalMcpProvider(Provider):
    """``kind: mcp`` — answers its section's capabilities by calling an external MCP server's tools.

    Settings: ``normaliser`` (``prometheus-mcp-server`` | ``grafana``), ``server`` (``transport: stdio``
    with ``command``, ``args``, ``env``, ``cwd``; or ``transport: http`` with ``url`` and ``headers``;
    env and header values may be ``{env: NAME}``/``{vault: KEY}`` references), ``timeout_s`` (per call,
    10), ``connect_timeout_s`` (start-up and handshake, 30), plus the normaliser's own settings.

    Raises:
        ConfigError: unknown normaliser, a section the normaliser does not answer, a bad server spec.
    """

    KIND = "mcp"
    CAPABILITIES = ("metrics.list", "metrics.series", "logs.search", "logs.counts")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        name = self.opt_str("normaliser", required=True, example="prometheus-mcp-server")
        cls = NORMALISERS.get(name or "")
        if cls is None:
            raise ConfigError(f"{self.where}.normaliser: {name!r} unknown; use one of {', '.join(sorted(NORMALISERS))}")
        if self.entry.section not in cls.SECTIONS:
            raise ConfigError(f"{self.where}: normaliser {name} answers {', '.join(sorted(cls.SECTIONS))}, not "
                              f"{self.entry.section}; move the entry or pick another normaliser")
        self.spec = self._server_spec()
        if self.spec.transport == "stdio":
            self.spec.env = {**cls.DEFAULT_ENV, **self.spec.env}
        self.connect_timeout_s = self.opt_float("connect_timeout_s", 30.0)
        self.normaliser = cls(self)
        self._link = McpLink(self.spec, label=self.label, timeout_s=self.timeout_s,
                             connect_timeout_s=self.connect_timeout_s)

    @property
    def label(self) -> str:
        name = self.entry.name if self.entry.name != self.entry.kind else "mcp"
        return f"{name} {self.settings.get('normaliser')} ({self._target()})"

    def _target(self) -> str:
        server = self.settings.get("server")
        if isinstance(server, dict):
            return str(server.get("url") or server.get("command") or "?")
        return "?"

    def _server_spec(self) -> ServerSpec:
        where = f"{self.where}.server"
        raw = self.opt("server", required=True,
                       example="{transport: stdio, command: prometheus-mcp-server, env: {PROMETHEUS_URL: ...}}")
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: expected a mapping with transport: stdio|http")
        transport = raw.get("transport", "stdio")
        if transport == "stdio":
            command = raw.get("command")
            if not isinstance(command, str) or not command:
                raise ConfigError(f"{where}.command: required for transport stdio, e.g. command: prometheus-mcp-server")
            args = raw.get("args") or []
            if not isinstance(args, list):
                raise ConfigError(f"{where}.args: expected a list of strings")
            cwd = raw.get("cwd")
            return ServerSpec("stdio", command=command, args=[str(a) for a in args],
                              env=self._values(raw.get("env"), f"{where}.env"),
                              cwd=str(self.sources.resolve_path(cwd)) if cwd else None)
        if transport == "http":
            url = raw.get("url")
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise ConfigError(f"{where}.url: expected the server's streamable-HTTP endpoint, e.g. "
                                  "url: http://127.0.0.1:8000/mcp")
            return ServerSpec("http", url=url, headers=self._values(raw.get("headers"), f"{where}.headers"))
        raise ConfigError(f"{where}.transport: {transport!r} unknown; use stdio or http")

    def _values(self, raw: Any, where: str) -> dict[str, str]:
        """A mapping of strings whose values may be secret references (resolved here)."""
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: expected a mapping of names to values")
        out = {}
        for key, value in raw.items():
            if isinstance(value, dict):
                out[str(key)] = resolve_secret(value, secrets=self.secrets, where=f"{where}.{key}") or ""
            elif value is None or isinstance(value, list):
                raise ConfigError(f"{where}.{key}: expected a string or {{env: NAME}}")
            elif _CREDENTIAL.search(str(key)) and str(value):
                raise ConfigError(f"{where}.{key}: looks like a credential; secrets are not written in "
                                  "sources.yaml: use {env: VARIABLE} or {vault: KEY} and put the value there")
            else:
                out[str(key)] = str(value)
        return out

    # ------------------------------------------------------------ the external server

    def tool(self, name: str, arguments: dict[str, Any]) -> Any:
        """Call the external tool and decode its answer: JSON text content, else structured content.

        Raises:
            ExternalToolError: the tool answered isError (a SourceError quoting its first line).
            SourceError: the server cannot be reached, timed out, or answered a shape we do not read.
        """
        result = self._link.call_tool(name, arguments)
        text = "".join(getattr(c, "text", "") for c in (result.content or []) if getattr(c, "type", "") == "text")
        if result.is_error:
            said = text.strip().splitlines()[0] if text.strip() else "no message"
            if len(said) > 320:  # long Python errors put the cause at the end: keep both ends
                said = said[:160] + " … " + said[-160:]
            raise ExternalToolError(f"{self.label}: tool {name} failed: {said}")
        if text.strip():
            try:
                return json.loads(text)
            except ValueError:
                raise self.normaliser.shape_error(name, "JSON text", text.strip()) from None
        structured = getattr(result, "structured_content", None)
        if structured is not None:
            return structured
        raise self.normaliser.shape_error(name, "JSON text", "an empty answer")

    def tools(self) -> list[str]:
        """The external server's tool names (a probe; starts the server if needed)."""
        return self._link.list_tools()

    # ------------------------------------------------------------ capabilities

    def metrics_list(self, service: Any = None, start: Any = None, end: Any = None) -> dict[str, Any]:
        return self.normaliser.metrics_list(service, start, end)  # type: ignore[attr-defined, no-any-return]

    def metrics_series(self, service: Any = None, name: Any = None, start: Any = None,
                       end: Any = None) -> dict[str, Any]:
        return self.normaliser.metrics_series(service, name, start, end)  # type: ignore[attr-defined, no-any-return]

    def logs_search(self, service: Any = None, level: Any = None, levels: Any = None, start: Any = None,
                    end: Any = None, text: Any = None, limit: Any = None, cursor: Any = None) -> dict[str, Any]:
        return self.normaliser.logs_search(  # type: ignore[attr-defined, no-any-return]
            service, level, levels, start, end, text, limit, cursor)

    def logs_counts(self, service: Any = None, level: Any = None, levels: Any = None, text: Any = None,
                    start: Any = None, end: Any = None, step_s: Any = None, group_by: Any = None) -> dict[str, Any]:
        return self.normaliser.logs_counts(  # type: ignore[attr-defined, no-any-return]
            service, level, levels, text, start, end, step_s, group_by)

    def check(self) -> str:
        return self.normaliser.check()

    def close(self) -> None:
        self._link.close()
