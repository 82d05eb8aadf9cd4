"""Opening the tools (the MCP gateway) for one investigation."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError


def world_for(investigation: dict[str, Any], settings: Any) -> Path | None:
    """The sandbox world an investigation reads: its own ``sources.world``, else PM_WORLD."""
    world = (investigation.get("sources") or {}).get("world") or settings.sandbox_world
    return Path(world) if world else None


def open_tools(investigation: dict[str, Any], settings: Any) -> Any:
    """Open the MCP gateway for ``investigation``.

    The config is MCP_CONFIG when set, else the bundled sandbox servers on the world.

    Raises:
        PipelineError: neither MCP_CONFIG nor a world is given.

    Returns:
        A ``agents.tools.ToolSource`` with ``close()``.
    """
    from agents.gateway import default_sandbox_config, open_gateway

    world = world_for(investigation, settings)
    mcp_config = (investigation.get("sources") or {}).get("mcp_config") or settings.mcp_config
    if mcp_config:
        config: Any = Path(mcp_config)
    elif world is not None:
        config = default_sandbox_config()
    else:
        raise PipelineError(
            f"{investigation.get('id')}: no tools to investigate with; set MCP_CONFIG, or PM_WORLD / --world "
            "to a sandbox world"
        )
    return open_gateway(config, variables={"world": str(world or ""), "python": sys.executable})
