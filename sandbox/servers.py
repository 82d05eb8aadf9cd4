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
from pathlib import Path
from typing import Annotated

from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, TextContent
from pydantic import Field

from sandbox.errors import SandboxError, ToolArgumentError
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


def _result(tools: WorldTools, capability: str, **args: object) -> CallToolResult:
    """Run one capability and wrap its answer (or its argument error) as an MCP tool result."""
    try:
        text = tools.call_json(capability, **{k: v for k, v in args.items() if v is not None})
    except SandboxError as exc:
        return CallToolResult(content=[TextContent(type="text", text=str(exc))], is_error=True)
    structured = json.loads(text) if len(text) <= STRUCTURED_MAX_BYTES else None
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=structured)


def _observability(server: MCPServer, tools: WorldTools) -> None:
    @server.tool(name="logs_search", description="Search log lines by service, level, time and text; paged.")
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
        return _result(tools, "logs.search", service=service, level=level, levels=levels, start=start, end=end,
                       text=text, limit=limit, cursor=cursor)

    @server.tool(name="logs_counts", description="Count log lines per time bucket, grouped by service/level.")
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
        return _result(tools, "logs.counts", service=service, level=level, levels=levels, text=text, start=start,
                       end=end, step_s=step_s, group_by=group_by)

    @server.tool(name="metrics_list", description="List metric series: service, name, sample count, time span.")
    def metrics_list(service: Service = None) -> CallToolResult:
        return _result(tools, "metrics.list", service=service)

    @server.tool(name="metrics_series", description="Metric samples as [ts, value] points.")
    def metrics_series(
        service: Service = None,
        name: Annotated[str | None, Field(description="Metric name, e.g. error_rate")] = None,
        start: Start = None,
        end: End = None,
    ) -> CallToolResult:
        return _result(tools, "metrics.series", service=service, name=name, start=start, end=end)

    @server.tool(name="alerts_list", description="Alerts that fired, by service and time.")
    def alerts_list(service: Service = None, start: Start = None, end: End = None) -> CallToolResult:
        return _result(tools, "alerts.list", service=service, start=start, end=end)

    @server.tool(name="alerts_get", description="One alert by id.")
    def alerts_get(id: Annotated[str, Field(description="Alert id, e.g. pd-7781")]) -> CallToolResult:  # noqa: A002
        return _result(tools, "alerts.get", id=id)

    @server.tool(name="topology_get", description="Services and who calls whom.")
    def topology_get() -> CallToolResult:
        return _result(tools, "topology.get")

    @server.tool(name="world_describe", description="The incident's own framing: name, window, trigger, domain.")
    def world_describe() -> CallToolResult:
        return _result(tools, "world.describe")


def _changes(server: MCPServer, tools: WorldTools) -> None:
    @server.tool(name="changes_list", description="Deploys, flag, config, migration and infra changes.")
    def changes_list(
        service: Service = None,
        kind: Annotated[str | None, Field(description="deploy | feature_flag | config | db_migration | infra")] = None,
        start: Start = None,
        end: End = None,
    ) -> CallToolResult:
        return _result(tools, "changes.list", service=service, kind=kind, start=start, end=end)


def _tickets(server: MCPServer, tools: WorldTools) -> None:
    @server.tool(name="tickets_get", description="One ticket by key.")
    def tickets_get(key: Annotated[str, Field(description="Ticket key, e.g. PAY-123")]) -> CallToolResult:
        return _result(tools, "tickets.get", key=key)

    @server.tool(name="tickets_search", description="Tickets matching text and/or carrying all labels.")
    def tickets_search(
        text: Text = None,
        labels: Annotated[list[str] | None, Field(description="Labels the ticket must all carry")] = None,
    ) -> CallToolResult:
        return _result(tools, "tickets.search", text=text, labels=labels)


def _chat(server: MCPServer, tools: WorldTools) -> None:
    @server.tool(name="chat_search", description="Chat messages by text, channel and time.")
    def chat_search(
        text: Text = None,
        channel: Annotated[str | None, Field(description="Channel, with or without #")] = None,
        start: Start = None,
        end: End = None,
    ) -> CallToolResult:
        return _result(tools, "chat.search", text=text, channel=channel, start=start, end=end)


_BUILDERS = {"observability": _observability, "changes": _changes, "tickets": _tickets, "chat": _chat}


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
    builder = _BUILDERS.get(source)
    if builder is None:
        raise ToolArgumentError(f"unknown source {source!r}; use one of {', '.join(SOURCES)}")
    tools = world_dir if isinstance(world_dir, WorldTools) else WorldTools(world_dir)
    server = MCPServer(
        f"sandbox-{source}",
        instructions=f"Incident world {tools.world.name!r}: {source} tools. Times are ISO-8601 UTC with Z.",
        log_level="WARNING",
    )
    builder(server, tools)
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
