"""The MCP gateway config for a ``sources.yaml``: one of our provider servers per entry.

Each entry becomes a server named ``<section>-<index>-<name>`` reached in process by
default (``sources.server:build_entry_server``, MCP over memory streams) or, with
``transport: stdio`` on the entry, as a ``pm mcp serve`` subprocess. A capability
answered by several entries becomes a list route: the gateway asks them all and merges
(agents/merge.py).
"""

from __future__ import annotations

import re
from typing import Any

from store.errors import ConfigError
from store.sources_file import SourcesFile

#: The gateway's per-call bound is twice a provider's own request timeout plus this: one capability
#: call may make a request that starts just before the provider's budget runs out.
_GRACE_S = 5.0


def server_name(section: str, index: int, name: str) -> str:
    """A gateway server name for an entry, e.g. ``logs-1-loki``."""
    return f"{section}-{index}-" + (re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "source")


def gateway_config(sources: SourcesFile) -> dict[str, Any]:
    """The gateway config mapping (agents/gateway_config.py shape) that reaches every entry.

    Raises:
        ConfigError: the file was not read from a path (the provider servers re-read it by path),
            or an entry names an unknown transport.
    """
    if sources.path is None:
        raise ConfigError("sources: the gateway needs the sources file on disk; write it and pass its path")
    servers: dict[str, Any] = {}
    capabilities: dict[str, list[dict[str, Any]]] = {}
    for entry in sources.entries:
        name = server_name(entry.section, entry.index, entry.name)
        timeout = entry.settings.get("timeout_s", 10.0)
        timeout = float(timeout) if isinstance(timeout, int | float) and not isinstance(timeout, bool) else 10.0
        transport = entry.settings.get("transport", "inprocess")
        common = {"timeout_s": 2 * timeout + _GRACE_S, "retries": 1, "backoff_s": 0.2}
        if transport == "inprocess":
            spec: dict[str, Any] = {"transport": "inprocess", "factory": "sources.server:build_entry_server",
                                    "kwargs": {"sources": str(sources.path), "entry": entry.ref}}
        elif transport == "stdio":
            spec = {"transport": "stdio", "command": "{python}",
                    "args": ["-m", "bot.cli", "mcp", "serve", entry.kind, "--sources", str(sources.path),
                             "--entry", entry.ref],
                    "env": {"PYTHONPATH": "{project_root}"}}
        else:
            raise ConfigError(f"{entry.section}[{entry.index}].transport: {transport!r} unknown; use inprocess or stdio")
        servers[name] = {**spec, **common}
        for cap in entry.capabilities:
            capabilities.setdefault(cap, []).append({"server": name, "tool": cap.replace(".", "_")})
    return {"servers": servers, "capabilities": capabilities, "circuit_breaker": {"failures": 5, "reset_s": 30},
            "tolerant": True}
