"""The sandbox MCP servers: one ``MCPServer`` per world source, wrapping :class:`sandbox.tools.WorldTools`.

Sources (docs/contracts.md): ``observability`` (logs_*, metrics_*, alerts_*,
topology_get, world_describe), ``changes``, ``tickets`` and ``chat``. A tool's
name is its capability with ``.`` replaced by ``_``; it takes the capability's
args as typed, described parameters and answers with the result dict as
compact JSON text (plus structured content when the result is small, since
duplicating a multi-megabyte log page on the wire is not worth it).
A bad argument or an unknown ticket/alert comes back as an ``isError`` result
whose text says what to do.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, TextContent
from pydantic import Field

from sandbox.errors import NotFoundError, SandboxError, ToolArgumentError
from sandbox.tools import SOURCES, WorldTools
from sandbox.world import World

#: Results up to this size also travel as structured content.
STRUCTURED_MAX_BYTES = 256 * 1024

Service = Annotated[str | None, Field(description="Service name; omit for all services")]
Start = Annotated[str | None, Field(description="Only items with ts >= start (ISO-8601 UTC, e.g. 2026-02-20T08:00:00Z)")]
End = Annotated[str | None, Field(description="Only items with ts < end (ISO-8601 UTC)")]
Text = Annotated[str | None, Field(description="Case-insensitive substring to match")]
Level = Annotated[str | None, Field(description="Minimum level: DEBUG < INFO < WARN < ERROR < FATAL")]
Levels = Annotated[list[str] | None, Field(description="Exact levels to keep, e.g. [\"ERROR\", \"FATAL\"]")]


Answer = Callable[[str, dict[str, Any]], str]
"""``answer(capability, args) -> JSON text``; raises an error whose text the model may read (isError)."""


def _result(answer: Answer, errors: tuple[type[BaseException], ...], capability: str,
            **args: object) -> CallToolResult:
    """Run one capability and wrap its answer (or its argument error) as an MCP tool result."""
    try:
        text = answer(capability, {k: v for k, v in args.items() if v is not None})
    except errors as exc:
        # An unknown key is an answer, not a failure: the structured ``not_found`` lets a client tell
        # "no ticket PAY-1" from a source that could not answer (agents.errors.NotFoundToolError).
        flag = {"error": "not_found"} if isinstance(exc, NotFoundError) else None
        return CallToolResult(content=[TextContent(type="text", text=str(exc))], structured_content=flag,
                              is_error=True)
    structured = json.loads(text) if len(text) <= STRUCTURED_MAX_BYTES else None
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=structured)


def register_tools(server: MCPServer, answer: Answer, capabilities: Iterable[str], *,
                   errors: tuple[type[BaseException], ...] = (SandboxError,)) -> None:
    """Register on ``server`` the MCP tool of each capability in ``capabilities`` (docs/contracts.md).

    Args:
        server: the MCP server.
        answer: ``answer(capability, args) -> JSON text`` (None args already dropped).
        capabilities: the capabilities to offer; a tool's name is its capability with ``.`` -> ``_``.
        errors: exception types that become an ``isError`` result with their message (others propagate).
    """
    caps = frozenset(capabilities)

    def result(capability: str, **args: object) -> CallToolResult:
        return _result(answer, errors, capability, **args)

    def offer(capability: str, description: str) -> Callable[[Callable[..., Any]], Any]:
        def deco(fn: Callable[..., Any]) -> Any:
            if capability in caps:
                server.tool(name=capability.replace(".", "_"), description=description)(fn)
            return fn
        return deco

    @offer("logs.search", "Search log lines by service, level, time and text; paged.")
    def logs_search(
        service: Service = None,
        level: Level = None,
        levels: Levels = None,
        start: Start = None,
        end: End = None,
        text: Text = None,
        limit: Annotated[int, Field(description="Page size (max 500000)", ge=1, le=500_000)] = 1000,
        cursor: Annotated[str | None, Field(description="next_cursor of the previous page")] = None,
    ) -> CallToolResult:
        return result("logs.search", service=service, level=level, levels=levels, start=start, end=end,
                       text=text, limit=limit, cursor=cursor)

    @offer("logs.counts", "Count log lines per time bucket, grouped by service/level.")
    def logs_counts(
        service: Service = None,
        level: Level = None,
        levels: Levels = None,
        text: Text = None,
        start: Start = None,
        end: End = None,
        step_s: Annotated[int, Field(description="Bucket width in seconds", ge=1)] = 60,
        group_by: Annotated[str, Field(description="service | level | service,level")] = "service",
    ) -> CallToolResult:
        return result("logs.counts", service=service, level=level, levels=levels, text=text, start=start,
                       end=end, step_s=step_s, group_by=group_by)

    @offer("metrics.list", "List metric series: service, name, sample count, time span.")
    def metrics_list(service: Service = None, start: Start = None, end: End = None) -> CallToolResult:
        return result("metrics.list", service=service, start=start, end=end)

    @offer("metrics.series", "Metric samples as [ts, value] points.")
    def metrics_series(
        service: Service = None,
        name: Annotated[str | None, Field(description="Metric name, e.g. error_rate")] = None,
        start: Start = None,
        end: End = None,
    ) -> CallToolResult:
        return result("metrics.series", service=service, name=name, start=start, end=end)

    @offer("alerts.list", "Alerts that fired, by service and time.")
    def alerts_list(service: Service = None, start: Start = None, end: End = None) -> CallToolResult:
        return result("alerts.list", service=service, start=start, end=end)

    @offer("alerts.get", "One alert by id.")
    def alerts_get(id: Annotated[str, Field(description="Alert id, e.g. pd-7781")]) -> CallToolResult:  # noqa: A002
        return result("alerts.get", id=id)

    @offer("topology.get", "Services and who calls whom.")
    def topology_get() -> CallToolResult:
        return result("topology.get")

    @offer("world.describe", "The incident's own framing: name, window, trigger, domain.")
    def world_describe() -> CallToolResult:
        return result("world.describe")


    @offer("changes.list", "Deploys, flag, config, migration and infra changes.")
    def changes_list(
        service: Service = None,
        kind: Annotated[str | None, Field(description="deploy | feature_flag | config | db_migration | infra")] = None,
        start: Start = None,
        end: End = None,
    ) -> CallToolResult:
        return result("changes.list", service=service, kind=kind, start=start, end=end)


    @offer("tickets.get", "One ticket by key.")
    def tickets_get(key: Annotated[str, Field(description="Ticket key, e.g. PAY-123")]) -> CallToolResult:
        return result("tickets.get", key=key)

    @offer("tickets.search", "Tickets matching text and/or carrying all labels.")
    def tickets_search(
        text: Text = None,
        labels: Annotated[list[str] | None, Field(description="Labels the ticket must all carry")] = None,
    ) -> CallToolResult:
        return result("tickets.search", text=text, labels=labels)


    @offer("chat.search", "Chat messages by text, channel and time.")
    def chat_search(
        text: Text = None,
        channel: Annotated[str | None, Field(description="Channel, with or without #")] = None,
        start: Start = None,
        end: End = None,
    ) -> CallToolResult:
        return result("chat.search", text=text, channel=channel, start=start, end=end)


def build_server(world_dir: str | Path | World | WorldTools, source: str) -> MCPServer:
    """Build the MCP server of one source of a world.

    Args:
        world_dir: the world directory, or an already loaded World / WorldTools (to share one load).
        source: ``observability``, ``changes``, ``tickets`` or ``chat``.

    Returns:
        An ``MCPServer`` named ``sandbox-<source>``, ready to run on any transport.

    Raises:
        ToolArgumentError: unknown source.
        WorldError: the world cannot be loaded.
    """
    if source not in SOURCES:
        raise ToolArgumentError(f"unknown source {source!r}; use one of {', '.join(SOURCES)}")
    tools = world_dir if isinstance(world_dir, WorldTools) else WorldTools(world_dir)
    server = MCPServer(
        f"sandbox-{source}",
        instructions=f"Incident world {tools.world.name!r}: {source} tools. Times are ISO-8601 UTC with Z.",
        log_level="WARNING",
    )
    register_tools(server, lambda cap, args: tools.call_json(cap, **args), SOURCES[source])
    return server


_shared: dict[tuple[str, float], WorldTools] = {}
_shared_lock = threading.Lock()


def shared_tools(world_dir: str | Path) -> WorldTools:
    """The process's one loaded copy of ``world_dir`` (loading it when it is not the cached one).

    ``pm investigate`` loads the world here to validate it before recording anything, and the
    in-process servers the investigation then opens reuse that load instead of parsing it again.

    Raises:
        WorldError: the world cannot be loaded.
    """
    root = Path(world_dir).resolve()
    try:
        stamp = (root / "world.yaml").stat().st_mtime
    except OSError:
        stamp = 0.0  # load_world reports the missing file with a clear message
    key = (str(root), stamp)
    with _shared_lock:
        tools = _shared.get(key)
        if tools is None:
            tools = WorldTools(root)
            _shared.clear()  # keep one world: benches walk many worlds, each several times
            _shared[key] = tools
    return tools


def build_world_server(world_dir: str | Path, source: str) -> MCPServer:
    """Like :func:`build_server`, but the servers of one world in one process share a single load.

    Used by the gateway's ``inprocess`` transport (four servers, one world). The cache
    key includes world.yaml's mtime so an edited world is reloaded.

    Raises:
        ToolArgumentError: unknown source. WorldError: the world cannot be loaded.
    """
    return build_server(shared_tools(world_dir), source)
