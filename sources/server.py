"""Serve one ``sources.yaml`` entry as an MCP server (stdio, streamable HTTP, or in process).

The tools are the sandbox's (same names, parameters and result shapes: parity by
construction), restricted to the capabilities the entry answers.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import MCPServer

from sandbox.errors import SandboxError
from sandbox.servers import register_tools
from sources.base import Provider
from sources.registry import build_provider
from store.sources_file import SourcesFile, load_sources, parse_sources


def secrets_from_env() -> Any:
    """Vault (VAULT_ADDR + VAULT_TOKEN) when set, else None: ``{env: X}`` references need nothing."""
    if not os.environ.get("VAULT_ADDR"):
        return None
    from store.config import load_settings
    from store.secrets import make_secret_provider

    return make_secret_provider(load_settings())


def provider_server(provider: Provider) -> MCPServer:
    """An ``MCPServer`` named ``pm-<kind>`` offering the provider's capabilities as tools.

    The provider is closed (its connections, an external server's subprocess) when the server stops.
    """

    @asynccontextmanager
    async def lifespan(_server: MCPServer) -> AsyncIterator[None]:
        try:
            yield
        finally:
            provider.close()

    server = MCPServer(
        f"pm-{provider.entry.kind}",
        instructions=f"{provider.label}: {', '.join(provider.capabilities())}. Times are ISO-8601 UTC with Z.",
        log_level="WARNING",
        lifespan=lifespan,
    )
    register_tools(server, provider.call_json, provider.capabilities(), errors=(SandboxError,))
    return server


def build_entry_server(sources: str | Path, entry: str) -> MCPServer:
    """The MCP server of entry ``entry`` (``section.index``) of the sources file ``sources``.

    The gateway's ``inprocess`` transport calls this by name (``sources.server:build_entry_server``).

    Raises:
        ConfigError: the file or the entry is wrong.
    """
    doc = load_sources(sources)
    return provider_server(build_provider(doc.entry(entry), doc, secrets=secrets_from_env()))


def single_entry(kind: str, settings: dict[str, Any], *, section: str | None = None) -> tuple[SourcesFile, str]:
    """A one-entry sources file for ``pm mcp serve KIND --set key=value``; returns it and the entry ref."""
    from store.sources_file import KINDS

    chosen = section or sorted(KINDS.get(kind, {"metrics"}))[0]
    doc = parse_sources({chosen: [{"kind": kind, **settings}]}, base_dir=Path.cwd())
    return doc, f"{chosen}.0"
