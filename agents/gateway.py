"""The MCP gateway: answer capabilities (docs/contracts.md) by calling tools on configured MCP servers.

``open_gateway(config, variables={...})`` returns a :class:`Gateway`, a sync
:class:`agents.tools.ToolSource`. The pipeline and Dramatiq actors are sync, so
the gateway runs one asyncio loop in a background thread and keeps one MCP
client session per server open there (connected lazily, reused by every call).
Each call gets a timeout, retries with exponential backoff and full jitter on
transport failures and timeouts (never on a tool that refused its arguments),
and passes a per-server circuit breaker. Every call is recorded in
``gateway.calls`` and handed to ``on_call``.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import importlib
import json
import logging
import random
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, REQUEST_TIMEOUT

from agents import merge
from agents.circuit import CircuitBreaker
from agents.errors import CircuitOpenError, GatewayConfigError, NotFoundToolError, ToolError
from agents.gateway_config import GatewayConfig, Route, ServerSpec, default_sandbox_config, parse_config

__all__ = ["Gateway", "open_gateway", "default_sandbox_config"]

log = logging.getLogger(__name__)

#: JSON-RPC errors that mean "your request is wrong": retrying cannot help.
_PERMANENT_CODES = frozenset({INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND})
#: How long close() waits for sessions and subprocesses to shut down.
_CLOSE_TIMEOUT_S = 10.0


@dataclass
class _Server:
    """Live state of one configured server, touched only on the gateway's loop thread."""

    spec: ServerSpec
    breaker: CircuitBreaker
    client: Client | None = None
    holder: asyncio.Task | None = None
    closing: asyncio.Event | None = None
    lock: asyncio.Lock | None = None
    holders: list[asyncio.Task] = field(default_factory=list)
    errlog: Any = None  # stdio only: the server's stderr, so a start-up failure can be quoted

    def stderr_tail(self) -> str:
        """The last line the stdio server wrote on stderr, or ''."""
        if self.errlog is None or self.errlog.closed:
            return ""
        try:
            self.errlog.flush()
            self.errlog.seek(0)
            lines = [ln for ln in self.errlog.read()[-4000:].splitlines() if ln.strip()]
        except (OSError, ValueError):
            return ""
        return lines[-1].strip() if lines else ""


class _Transient(Exception):
    """One attempt failed in a way another attempt may fix (transport error, timeout)."""

    def __init__(self, reason: str, *, reconnect: bool) -> None:
        super().__init__(reason)
        self.reconnect = reconnect


def _now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _describe(exc: BaseException) -> str:
    """One line naming an exception, unwrapping the exception groups anyio task groups raise."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Gateway:
    """A sync ToolSource over MCP servers. Use as a context manager, or call :meth:`close`.

    Args:
        config: a parsed :class:`GatewayConfig`.
        on_call: called (on the caller's thread) with each call record after the call.

    Attributes:
        calls: every call record ``{capability, server, tool, args, started_at, duration_ms, ok,
            error, attempts, bytes}``, in order.
        window_defaults: ``{lookback_s, lookahead_s}`` of the sources file the gateway serves (its
            ``window:``), or None; the pipeline applies it to triggers that carry no window.
    """

    def __init__(self, config: GatewayConfig, *, on_call: Callable[[dict[str, Any]], None] | None = None):
        self.config = config
        self.on_call = on_call
        self.calls: list[dict[str, Any]] = []
        #: tolerant configs: servers the last check() could not reach, with why.
        self.unreachable: dict[str, str] = {}
        self.window_defaults: dict[str, float] | None = None
        self._servers = {
            name: _Server(spec, CircuitBreaker(config.breaker_failures, config.breaker_reset_s))
            for name, spec in config.servers.items()
        }
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="mcp-gateway", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ public, sync

    def capabilities(self) -> list[str]:
        """The configured capabilities, sorted."""
        return sorted(self.config.routes)

    def call(self, capability: str, **args: Any) -> dict[str, Any]:
        """Answer one capability through its configured MCP tool.

        Args:
            capability: e.g. ``"logs.search"``.
            **args: the capability's arguments; None values are left out.

        Returns:
            The tool's JSON result as a dict.

        Raises:
            ToolError: unknown capability, the tool refused (isError), or the server stayed unreachable.
            CircuitOpenError: the server failed too often lately.
        """
        route = self.config.routes.get(capability)
        record: dict[str, Any] = {"capability": capability, "server": route.server if route else None,
                                  "tool": route.tool if route else None, "args": dict(args),
                                  "started_at": _now_iso(), "duration_ms": 0.0, "ok": False, "error": None,
                                  "attempts": 0, "bytes": 0}
        t0 = time.perf_counter()
        try:
            if route is None:
                where = ("a source for its section in sources.yaml" if self.config.tolerant
                         else "it under capabilities: in the MCP config")
                raise ToolError(f"not configured: no source answers {capability}; add {where}",
                                capability=capability)
            if self._closed:
                raise ToolError(f"{capability}: the gateway is closed; open a new one", capability=capability)
            many = self.config.fanout.get(capability)
            coro = self._call_many(many, args, record) if many else self._call_paged(route, args, record)
            result = asyncio.run_coroutine_threadsafe(coro, self._loop).result()
            record["ok"] = True
            return result
        except ToolError as exc:
            record["error"] = str(exc)
            raise
        finally:
            record["duration_ms"] = round((time.perf_counter() - t0) * 1000, 3)
            self.calls.append(record)
            if self.on_call is not None:
                self.on_call(record)

    def check(self) -> dict[str, list[str]]:
        """Connect to every server, list its tools and confirm each capability's tool is offered.

        Returns:
            ``{server: [tool names]}``.

        Raises:
            ToolError: a server is unreachable, or does not offer a configured tool (named in the message).
        """
        return asyncio.run_coroutine_threadsafe(self._check(), self._loop).result()

    def close(self) -> None:
        """Close every session (stopping stdio subprocesses) and the loop thread. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(_CLOSE_TIMEOUT_S + 5)
        except Exception as exc:  # noqa: BLE001 - closing must not raise over the caller's own error
            log.warning("MCP gateway did not close cleanly: %s", _describe(exc))
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(_CLOSE_TIMEOUT_S)
            if not self._thread.is_alive():
                self._loop.close()

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ loop side: sessions

    async def _make_client(self, srv: _Server, stack: AsyncExitStack) -> Client:
        spec = srv.spec
        if spec.transport == "stdio":
            params = StdioServerParameters(command=spec.command or "", args=spec.args, env=spec.env, cwd=spec.cwd)
            # The server's stderr goes to a temp file so a failed start can be explained in the ToolError.
            errlog = tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")
            srv.errlog = errlog
            return Client(stdio_client(params, errlog=errlog), cache=None)
        if spec.transport == "http":
            # streamable_http_client leaves a client it is given open, so the stack owns it.
            http = await stack.enter_async_context(httpx2.AsyncClient(
                headers=spec.headers, timeout=httpx2.Timeout(spec.timeout_s, read=max(spec.timeout_s, 300.0))))
            return Client(streamable_http_client(spec.url or "", http_client=http), cache=None)
        module_name, _, attr = (spec.factory or "").partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise GatewayConfigError(
                f"servers.{spec.name}.factory: cannot import {spec.factory!r} ({_describe(exc)}); fix the path"
            ) from None
        return Client(factory(**spec.kwargs), cache=None)

    async def _hold(self, srv: _Server, ready: asyncio.Future, closing: asyncio.Event) -> None:
        """Own one client session for its whole life: anyio scopes must exit in the task that entered them."""
        try:
            async with AsyncExitStack() as stack:
                client = await self._make_client(srv, stack)
                await stack.enter_async_context(client)
                if not ready.done():
                    ready.set_result(client)
                await closing.wait()
        except BaseException as exc:  # noqa: BLE001 - reported to the waiting caller, or logged
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else ConnectionError(_describe(exc)))
            elif not closing.is_set():
                log.info("MCP server %s: session ended: %s", srv.spec.name, _describe(exc))
        finally:
            if srv.closing is closing:
                srv.client = None

    async def _connect(self, srv: _Server) -> Client:
        if srv.lock is None:
            srv.lock = asyncio.Lock()
        async with srv.lock:
            if srv.client is not None and srv.holder is not None and not srv.holder.done():
                return srv.client
            closing = asyncio.Event()
            ready: asyncio.Future = self._loop.create_future()
            srv.closing = closing
            srv.holder = asyncio.ensure_future(self._hold(srv, ready, closing))
            srv.holders.append(srv.holder)
            try:
                srv.client = await asyncio.wait_for(asyncio.shield(ready), srv.spec.connect_timeout_s)
            except TimeoutError:
                closing.set()
                raise _Transient(f"no MCP session within {srv.spec.connect_timeout_s:g}s", reconnect=True) from None
            except GatewayConfigError:
                raise
            except Exception as exc:
                closing.set()
                said = srv.stderr_tail()
                raise _Transient(f"cannot connect ({_describe(exc)})" + (f"; the server said: {said}" if said else ""),
                                 reconnect=True) from None
            assert srv.client is not None, "a ready MCP session always carries its client"
            return srv.client

    def _drop(self, srv: _Server) -> None:
        if srv.closing is not None:
            srv.closing.set()
        srv.client = None

    async def _shutdown(self) -> None:
        holders = []
        for srv in self._servers.values():
            self._drop(srv)
            holders.extend(srv.holders)
        if holders:
            _, pending = await asyncio.wait(holders, timeout=_CLOSE_TIMEOUT_S)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=2)
        for srv in self._servers.values():
            if srv.errlog is not None:
                srv.errlog.close()

    # ------------------------------------------------------------ loop side: calls

    async def _attempt(self, srv: _Server, route: Route, payload: dict[str, Any]) -> Any:
        client = await self._connect(srv)
        timeout = srv.spec.timeout_s
        try:
            # The SDK's read timeout answers REQUEST_TIMEOUT; wait_for is the backstop if it never fires.
            return await asyncio.wait_for(client.call_tool(route.tool, payload, read_timeout_seconds=timeout),
                                          timeout + 1.0)
        except TimeoutError:
            raise _Transient(f"timed out after {timeout:g}s", reconnect=False) from None
        except MCPError as exc:
            if exc.code in _PERMANENT_CODES:
                raise
            raise _Transient(f"MCP error {exc.code}: {exc}", reconnect=exc.code != REQUEST_TIMEOUT) from None
        except (asyncio.CancelledError, KeyboardInterrupt):
            raise
        except BaseException as exc:  # noqa: BLE001 - transport failures arrive as many types (groups too)
            raise _Transient(f"transport failed ({_describe(exc)})", reconnect=True) from None

    async def _call_paged(self, route: Route, args: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
        """Fetch a large ``limit`` as several pages when the route sets ``page_size``.

        Why: a single multi-megabyte JSON-RPC line crawls through the SDK's stdio reader
        (superlinear in the line length), while 50,000-line pages stay fast. Pages follow
        the contract's paging shape: ``limit``/``cursor`` in, ``lines``/``next_cursor``/``total`` out.
        """
        limit = args.get("limit")
        if not route.page_size or not isinstance(limit, int) or limit <= route.page_size:
            return await self._call(route, args, record)
        lines: list[Any] = []
        cursor = args.get("cursor")
        page: dict[str, Any] = {}
        while len(lines) < limit:
            page = await self._call(route, {**args, "limit": min(route.page_size, limit - len(lines)),
                                            "cursor": cursor}, record)
            lines.extend(page.get("lines") or [])
            cursor = page.get("next_cursor")
            if not cursor:
                break
        return {**page, "lines": lines, "next_cursor": cursor}

    async def _call_many(self, routes: tuple[Route, ...], args: dict[str, Any],
                         record: dict[str, Any]) -> dict[str, Any]:
        """Ask every provider of a capability at once and merge their answers (agents/merge.py)."""
        capability = routes[0].capability
        record["server"] = "+".join(r.server for r in routes)
        per_route: list[dict[str, Any] | None] = [dict(args) for _ in routes]
        if capability == "logs.search":
            cursors = merge.split_cursor(args.get("cursor"), len(routes))
            if cursors is not None:  # a later page: ask only the providers that have more
                per_route = [None if c is None else {**args, "cursor": c} for c in cursors]
            elif args.get("cursor") is not None:
                raise ToolError("logs.search: 'cursor' is not one we issued; pass next_cursor as is",
                                capability=capability)
        asked = [(i, r, a) for i, (r, a) in enumerate(zip(routes, per_route, strict=True)) if a is not None]
        outcomes = await asyncio.gather(*(self._call_paged(r, a, record) for _, r, a in asked), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
                raise outcome  # cancellation, KeyboardInterrupt: not a provider failure
        if capability == "logs.search":
            return merge.merge_logs_page([(i, r.server, o) for (i, r, _), o in zip(asked, outcomes, strict=True)])
        return merge.merge(capability, [(r.server, o) for (_, r, _), o in zip(asked, outcomes, strict=True)])

    async def _call(self, route: Route, args: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
        srv = self._servers[route.server]
        payload = {route.renames.get(k, k): v for k, v in args.items() if v is not None}
        payload.update(route.fixed)
        where = f"{route.capability} via MCP server {route.server!r} (tool {route.tool})"
        last = "no attempt made"
        for attempt in range(1, srv.spec.retries + 2):
            if not srv.breaker.allow():
                raise CircuitOpenError(
                    f"{where}: circuit open after repeated failures ({last}); retry in "
                    f"{srv.breaker.retry_in():.0f}s or check that the server runs",
                    capability=route.capability, server=route.server, retryable=True)
            record["attempts"] += 1
            try:
                result = await self._attempt(srv, route, payload)
            except MCPError as exc:
                srv.breaker.record_success()  # the server answered; the request was wrong
                raise ToolError(f"{where} rejected the call: {exc}; check the capability's arguments",
                                capability=route.capability, server=route.server) from None
            except _Transient as exc:
                last = str(exc)
                srv.breaker.record_failure()
                if exc.reconnect:
                    self._drop(srv)
                if attempt <= srv.spec.retries:
                    # Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff
                    # And Jitter", 2015): spreads retries of many callers instead of synchronising them.
                    await asyncio.sleep(random.uniform(0, srv.spec.backoff_s * (2 ** (attempt - 1))))
                continue
            srv.breaker.record_success()
            return self._decode(result, where, route, record)
        raise ToolError(f"{where} failed after {srv.spec.retries + 1} attempt(s): {last}; check that the server "
                        "runs and is reachable", capability=route.capability, server=route.server, retryable=True)

    @staticmethod
    def _decode(result: Any, where: str, route: Route, record: dict[str, Any]) -> dict[str, Any]:
        """Turn a CallToolResult into a dict: JSON text content first, then structured content."""
        text = "".join(getattr(c, "text", "") for c in (result.content or []) if getattr(c, "type", "") == "text")
        record["bytes"] += len(text) if text.isascii() else len(text.encode("utf-8"))
        if result.is_error:
            message = text.strip().splitlines()[0] if text.strip() else "the tool reported an error"
            if isinstance(result.structured_content, dict) and result.structured_content.get("error") == "not_found":
                raise NotFoundToolError(f"{where}: {message}", capability=route.capability, server=route.server)
            raise ToolError(f"{where} failed: {message}", capability=route.capability, server=route.server)
        if text:
            try:
                decoded = json.loads(text)
            except ValueError:
                decoded = None
            if isinstance(decoded, dict):
                return decoded
        structured = result.structured_content
        if isinstance(structured, dict):
            return structured
        # A provider that answers in prose still gives the agent something to read.
        return {"text": text}

    async def _list(self, name: str, srv: _Server) -> list[str]:
        try:
            client = await self._connect(srv)
            tools = await asyncio.wait_for(client.list_tools(), srv.spec.timeout_s)
        except (_Transient, TimeoutError, MCPError) as exc:
            self._drop(srv)
            raise ToolError(f"MCP server {name!r} is unreachable ({exc}); check its command/url in the "
                            "MCP config and that it runs", server=name, retryable=True) from None
        return sorted(t.name for t in tools.tools)

    async def _check(self) -> dict[str, list[str]]:
        # Connect to all servers at once: stdio servers each take a moment to start.
        names = list(self._servers)
        found = await asyncio.gather(*(self._list(n, self._servers[n]) for n in names), return_exceptions=True)
        if self.config.tolerant:
            # Real sources: what answers is used, what does not is named by the calls that fail later.
            up = {n: f for n, f in zip(names, found, strict=True) if not isinstance(f, BaseException)}
            if not up:
                raise next(f for f in found if isinstance(f, BaseException))
            self.unreachable = {n: str(f) for n, f in zip(names, found, strict=True) if isinstance(f, BaseException)}
            return up  # type: ignore[return-value]
        for outcome in found:
            if isinstance(outcome, BaseException):
                raise outcome
        listed: dict[str, list[str]] = dict(zip(names, found, strict=True))  # type: ignore[arg-type]
        every = [r for cap, r in self.config.routes.items() if cap not in self.config.fanout]
        every += [r for many in self.config.fanout.values() for r in many]
        for route in every:
            if route.tool not in listed[route.server]:
                raise ToolError(f"MCP server {route.server!r} does not offer tool {route.tool!r} (capability "
                                f"{route.capability}); it offers: {', '.join(listed[route.server]) or 'nothing'}",
                                capability=route.capability, server=route.server)
        return listed


def open_gateway(config: dict[str, Any] | str | Path, *, variables: dict[str, str] | None = None,
                 on_call: Callable[[dict[str, Any]], None] | None = None) -> Gateway:
    """Parse a gateway config (mapping or YAML path), fill its placeholders and return the Gateway.

    Connections are made lazily, on the first call (or by :meth:`Gateway.check`).

    Args:
        config: the config mapping or a path to its YAML file (e.g. MCP_CONFIG).
        variables: placeholder values, e.g. ``{"world": "/path/to/world"}``.
        on_call: optional callback receiving each call record.

    Raises:
        GatewayConfigError: the config is malformed or a placeholder has no value.
    """
    return Gateway(parse_config(config, variables), on_call=on_call)
