"""Errors of the agents room. Each message names what failed and says what to do."""

from __future__ import annotations


class AgentError(Exception):
    """Base of every agents-room error."""


class ToolError(AgentError):
    """A tool call failed: names the capability and the server, and what to do.

    Attributes:
        capability: the capability asked for (e.g. ``logs.search``), when known.
        server: the MCP server that was asked, when known.
        retryable: whether the failure was in reaching the server (vs. the tool refusing the arguments).
    """

    def __init__(self, message: str, *, capability: str | None = None, server: str | None = None,
                 retryable: bool = False) -> None:
        super().__init__(message)
        self.capability = capability
        self.server = server
        self.retryable = retryable


class NotFoundToolError(ToolError):
    """The source answered that the key asked for (a ticket, an alert) does not exist: an answer, not an outage."""


class CircuitOpenError(ToolError):
    """A server failed too often lately; calls to it are refused until its circuit breaker resets."""


class GatewayConfigError(AgentError):
    """The MCP gateway configuration is malformed (names the key and the fix)."""
