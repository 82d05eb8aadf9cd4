"""Run the sandbox MCP servers of a world over stdio or streamable HTTP.

One source over HTTP is served at ``/mcp``; with no source, all four are served
on one port at ``/<source>/mcp`` sharing one loaded world. With an access key,
every HTTP request needs ``Authorization: Bearer <key>``.
"""

from __future__ import annotations

import asyncio
import hmac
import sys
from collections.abc import Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from sandbox.errors import ToolArgumentError
from sandbox.servers import build_server
from sandbox.tools import SOURCES, WorldTools

TRANSPORTS = ("stdio", "http")


class BearerAuth:
    """ASGI middleware: refuse HTTP requests without ``Authorization: Bearer <key>`` (401, one-line reason)."""

    def __init__(self, app: Any, key: str) -> None:
        self.app = app
        self._expected = f"Bearer {key}".encode()

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            # compare_digest: do not leak the key through timing
            if not hmac.compare_digest(given, self._expected):
                body = b'{"error":"missing or wrong bearer token; send Authorization: Bearer <MCP_ACCESS_KEY>"}'
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"www-authenticate", b"Bearer")]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def build_http_app(world_dir: str | Path, source: str | None = None, *, access_key: str | None = None,
                   host: str = "127.0.0.1") -> Any:
    """Build the ASGI app serving one source at ``/mcp`` or all sources at ``/<source>/mcp``.

    Args:
        world_dir: the world directory.
        source: one source, or None for all four.
        access_key: when set, requests need ``Authorization: Bearer <access_key>``.
        host: the host the app will be reached at (the SDK's DNS-rebinding guard allows loopback names).

    Returns:
        An ASGI application (Starlette), possibly wrapped in :class:`BearerAuth`.

    Raises:
        ToolArgumentError: unknown source. WorldError: the world cannot be loaded.
    """
    tools = WorldTools(world_dir)
    if source is not None:
        app: Any = build_server(tools, source).streamable_http_app(streamable_http_path="/mcp", host=host)
    else:
        subs = {name: build_server(tools, name).streamable_http_app(streamable_http_path="/mcp", host=host)
                for name in SOURCES}

        @asynccontextmanager
        async def lifespan(_app: Starlette):
            # Mounted apps' lifespans do not run by themselves; each starts its session manager here.
            async with AsyncExitStack() as stack:
                for sub in subs.values():
                    await stack.enter_async_context(sub.router.lifespan_context(sub))
                yield

        app = Starlette(routes=[Mount(f"/{name}", app=sub) for name, sub in subs.items()], lifespan=lifespan)
    return BearerAuth(app, access_key) if access_key else app


async def serve_http_async(world_dir: str | Path, source: str | None = None, *, host: str = "127.0.0.1",
                           port: int = 0, access_key: str | None = None,
                           on_ready: Callable[[str], None] | None = None) -> None:
    """Serve over streamable HTTP until cancelled; ``on_ready(base_url)`` gets the bound URL (port 0 = any).

    Raises:
        ToolArgumentError: unknown source. WorldError: the world cannot be loaded.
    """
    app = build_http_app(world_dir, source, access_key=access_key, host=host)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve())
    try:
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if task.done():
            task.result()  # re-raise the start-up failure (e.g. port in use)
            return
        bound = server.servers[0].sockets[0].getsockname()[1]
        if on_ready is not None:
            on_ready(f"http://{host}:{bound}")
        await task
    finally:
        if not task.done():
            server.should_exit = True
            await task


def serve(world_dir: str | Path, source: str | None = "observability", transport: str = "stdio",
          host: str = "127.0.0.1", port: int = 0, access_key: str | None = None,
          on_ready: Callable[[str], None] | None = None) -> None:
    """Serve a world's MCP tools until stopped (blocks).

    Args:
        world_dir: the world directory.
        source: ``observability``/``changes``/``tickets``/``chat``; None means all four (HTTP only).
        transport: ``stdio`` or ``http`` (streamable HTTP).
        host, port: where HTTP listens (port 0 picks a free port, reported through ``on_ready``).
        access_key: HTTP only: require ``Authorization: Bearer <access_key>``.
        on_ready: HTTP only: called with the base URL once listening; by default it is printed to stderr.

    Raises:
        ToolArgumentError: bad transport/source combination or unknown source.
        WorldError: the world cannot be loaded.
    """
    if transport not in TRANSPORTS:
        raise ToolArgumentError(f"unknown transport {transport!r}; use stdio or http")
    if transport == "stdio":
        if source is None:
            raise ToolArgumentError("stdio serves one source; pass --source observability|changes|tickets|chat")
        server = build_server(world_dir, source)
        anyio.run(server.run_stdio_async)
        return

    def announce(base: str) -> None:
        paths = ["/mcp"] if source else [f"/{name}/mcp" for name in SOURCES]
        print("sandbox MCP listening on " + " ".join(base + p for p in paths), file=sys.stderr, flush=True)

    try:
        asyncio.run(serve_http_async(world_dir, source, host=host, port=port, access_key=access_key,
                                     on_ready=on_ready or announce))
    except KeyboardInterrupt:  # Ctrl-C is the normal way to stop a foreground server
        pass
