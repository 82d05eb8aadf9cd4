"""The tool port of the agents room: anything that answers capabilities (docs/contracts.md)."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class ToolSource(Protocol):
    """Answers ``call("logs.search", service="x", ...) -> dict`` synchronously.

    Implemented by :class:`agents.gateway.Gateway` (MCP servers) and, in sandbox tests,
    by ``sandbox.tools.WorldTools``. Failures raise :class:`agents.errors.ToolError`.
    """

    def call(self, capability: str, **args: Any) -> dict[str, Any]:
        """Answer one capability with its result dict; raise ToolError when it fails."""
        ...
