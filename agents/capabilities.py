"""The capability tools (docs/contracts.md) as model tool definitions, and the agents' own tools.

Every capability is read-only. A tool's name is the capability with ``.`` replaced by ``_``
(``logs.search`` → ``logs_search``), as the sandbox MCP servers name them; the loop calls the
capability through the investigation's ToolSource (the MCP gateway), so sandbox worlds and real
sources answer the same way.
"""

from __future__ import annotations

from typing import Any

_TIME = {"type": "string", "description": "ISO-8601 UTC time, e.g. 2026-10-02T16:15:00Z"}
_SVC = {"type": "string", "description": "service name"}
_LEVEL = {"type": "string", "enum": ["DEBUG", "INFO", "WARN", "ERROR", "FATAL"], "description": "minimum level"}


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required or [], "additionalProperties": False}


#: capability → (description, JSON schema of its arguments)
CAPABILITIES: dict[str, tuple[str, dict[str, Any]]] = {
    "logs.search": ("Log lines, newest window first; filter by service, minimum level, substring and time.",
                    _obj({"service": _SVC, "level": _LEVEL, "text": {"type": "string"}, "start": _TIME, "end": _TIME,
                          "limit": {"type": "integer", "minimum": 1, "maximum": 500}})),
    "logs.counts": ("Log line counts per time bucket, grouped by service and/or level.",
                    _obj({"service": _SVC, "level": _LEVEL, "text": {"type": "string"}, "start": _TIME, "end": _TIME,
                          "step_s": {"type": "integer", "minimum": 10},
                          "group_by": {"type": "string", "enum": ["service", "level", "service,level"]}})),
    "metrics.list": ("The metric series available (service, name, sample count).",
                     _obj({"service": _SVC, "start": _TIME, "end": _TIME})),
    "metrics.series": ("Points of metric series ([ts, value] pairs).",
                       _obj({"service": _SVC, "name": {"type": "string"}, "start": _TIME, "end": _TIME})),
    "changes.list": ("Recorded changes (deploys, config, feature flags, infra) with id, time, service, summary.",
                     _obj({"service": _SVC, "kind": {"type": "string"}, "start": _TIME, "end": _TIME})),
    "tickets.get": ("One ticket by key.", _obj({"key": {"type": "string"}}, ["key"])),
    "tickets.search": ("Tickets whose text matches.", _obj({"text": {"type": "string"},
                                                           "labels": {"type": "array", "items": {"type": "string"}}})),
    "alerts.list": ("Alerts that fired in a window.", _obj({"service": _SVC, "start": _TIME, "end": _TIME})),
    "alerts.get": ("One alert by id.", _obj({"id": {"type": "string"}}, ["id"])),
    "chat.search": ("Chat messages (incident channels) matching a text.",
                    _obj({"text": {"type": "string"}, "channel": {"type": "string"}, "start": _TIME, "end": _TIME})),
    "topology.get": ("The call graph: which service calls which.", _obj({})),
}

PAGE_TOOL = "page_artifact"
SUBMIT_TOOL = "submit"


def tool_name(capability: str) -> str:
    """``logs.search`` → ``logs_search`` (tool names may not contain dots)."""
    return capability.replace(".", "_")


def capability_of(name: str) -> str | None:
    """The capability a tool name stands for, or None when it is not a capability tool."""
    for cap in CAPABILITIES:
        if tool_name(cap) == name:
            return cap
    return None


def tool_definitions(capabilities: list[str]) -> list[dict[str, Any]]:
    """Tool definitions ``{name, description, input_schema}`` of the given (known) capabilities."""
    out = []
    for cap in capabilities:
        if cap in CAPABILITIES:
            desc, schema = CAPABILITIES[cap]
            out.append({"name": tool_name(cap), "description": f"{desc} (read-only; capability {cap})",
                        "input_schema": schema})
    return out


def page_tool() -> dict[str, Any]:
    """The tool that reads an oversized tool result kept whole as an artifact."""
    return {"name": PAGE_TOOL,
            "description": "Read more of a tool result that was too large to show whole: give its id (T…) and "
                           "the character offset to start from.",
            "input_schema": _obj({"id": {"type": "string"}, "offset": {"type": "integer", "minimum": 0}}, ["id"])}
