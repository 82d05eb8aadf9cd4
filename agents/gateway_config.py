"""The MCP gateway's configuration: which server answers which capability, and how to reach it.

The YAML shape (seed 001: capability contracts with pluggable providers)::

    servers:
      observability:
        transport: stdio                 # stdio | http | inprocess
        command: "{python}"
        args: ["-m", "sandbox", "serve", "--world", "{world}", "--source", "observability"]
        env: {PYTHONPATH: "{project_root}"}
        timeout_s: 30                    # per call; connect_timeout_s (30) bounds starting a session
        retries: 2                       # extra attempts, exponential backoff with jitter
        # http:      url: "http://127.0.0.1:8931/mcp", headers: {Authorization: "Bearer {mcp_access_key}"}
        # inprocess: factory: "sandbox.servers:build_server", kwargs: {world_dir: "{world}", source: observability}
    capabilities:
      logs.search: {server: observability, tool: logs_search, page_size: 50000}
      # several providers: a list; all are asked and their answers merged (agents/merge.py)
      # logs.counts: [{server: files, tool: logs_counts}, {server: loki, tool: logs_counts}]
      # a real provider: {server: grafana, tool: query_loki_logs, args: {service: app, text: query}}
    circuit_breaker: {failures: 5, reset_s: 30}

``{name}`` placeholders in any string are filled from a variables dict;
``{python}`` and ``{project_root}`` have defaults.
"""

from __future__ import annotations

import copy
import re
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from agents.errors import GatewayConfigError

TRANSPORTS = ("stdio", "http", "inprocess")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class ServerSpec:
    """How to reach one MCP server (placeholders already filled)."""

    name: str
    transport: str
    command: str | None = None
    args: list[str] = field(default_factory=list)
    env: dict[str, str] | None = None
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    factory: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    timeout_s: float = 30.0
    connect_timeout_s: float = 30.0
    retries: int = 2
    backoff_s: float = 0.2


@dataclass(frozen=True)
class Route:
    """Where a capability goes: server, tool, our-arg -> provider-arg renames, fixed extra args."""

    capability: str
    server: str
    tool: str
    renames: dict[str, str] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)
    page_size: int | None = None  # fetch a larger ``limit`` as pages of this size (limit/cursor paging)


@dataclass(frozen=True)
class GatewayConfig:
    """A parsed, validated gateway configuration."""

    servers: dict[str, ServerSpec]
    routes: dict[str, Route]
    breaker_failures: int = 5
    breaker_reset_s: float = 30.0
    #: Capabilities answered by several servers (a list under capabilities:): every route, in order.
    #: ``routes`` holds the first of each. The gateway asks them all and merges (agents/merge.py).
    fanout: dict[str, tuple[Route, ...]] = field(default_factory=dict)
    #: ``tolerant: true``: :meth:`Gateway.check` passes while at least one server answers (real sources:
    #: an unreachable one is named in the report's missing_sources instead of stopping the investigation).
    tolerant: bool = False


def default_variables() -> dict[str, str]:
    """Variables every config may use: ``python`` (this interpreter), ``project_root``, ``mcp_access_key`` ("")."""
    return {"python": sys.executable, "project_root": str(Path(__file__).resolve().parents[1]),
            "mcp_access_key": ""}


def _fill(value: Any, variables: dict[str, str], where: str) -> Any:
    if isinstance(value, str):
        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in variables:
                raise GatewayConfigError(
                    f"{where}: unknown placeholder {{{name}}}; pass it in variables (known: {', '.join(sorted(variables))})"
                )
            return str(variables[name])

        return _PLACEHOLDER.sub(sub, value)
    if isinstance(value, list):
        return [_fill(v, variables, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _fill(v, variables, f"{where}.{k}") for k, v in value.items()}
    return value


def _number(raw: dict, key: str, default: float, where: str, low: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
        raise GatewayConfigError(f"{where}.{key}: expected a number >= {low}, got {value!r}")
    return value


def _server(name: str, raw: Any, variables: dict[str, str]) -> ServerSpec:
    where = f"servers.{name}"
    if not isinstance(raw, dict):
        raw_type = type(raw).__name__
        raise GatewayConfigError(f"{where}: expected a mapping with transport and its settings, got {raw_type}")
    transport = raw.get("transport", "stdio")
    if transport not in TRANSPORTS:
        raise GatewayConfigError(f"{where}.transport: {transport!r} unknown; use one of {', '.join(TRANSPORTS)}")
    filled = _fill({k: v for k, v in raw.items()}, variables, where)
    common = {
        "name": name, "transport": transport,
        "timeout_s": float(_number(raw, "timeout_s", 30.0, where, 0.001)),
        # Starting a stdio server (a Python process) can take seconds; that must not eat the call timeout.
        "connect_timeout_s": float(_number(raw, "connect_timeout_s", 30.0, where, 0.001)),
        "retries": int(_number(raw, "retries", 2, where, 0)),
        "backoff_s": float(_number(raw, "backoff_s", 0.2, where, 0)),
    }
    if transport == "stdio":
        if not filled.get("command"):
            raise GatewayConfigError(f"{where}.command: required for stdio; e.g. command: \"{{python}}\"")
        args = filled.get("args") or []
        env = filled.get("env")
        if not isinstance(args, list) or (env is not None and not isinstance(env, dict)):
            raise GatewayConfigError(f"{where}: 'args' must be a list and 'env' a mapping")
        return ServerSpec(command=str(filled["command"]), args=[str(a) for a in args],
                          env={str(k): str(v) for k, v in env.items()} if env else None,
                          cwd=str(filled["cwd"]) if filled.get("cwd") else None, **common)
    if transport == "http":
        url = filled.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise GatewayConfigError(f"{where}.url: required for http; e.g. url: http://127.0.0.1:8931/mcp")
        headers = filled.get("headers") or {}
        if not isinstance(headers, dict):
            raise GatewayConfigError(f"{where}.headers: expected a mapping of header name to value")
        # A bearer header whose key variable was left empty is dropped rather than sent blank.
        kept = {str(k): str(v) for k, v in headers.items() if str(v).strip() not in ("", "Bearer")}
        return ServerSpec(url=url, headers=kept, **common)
    factory = filled.get("factory")
    if not isinstance(factory, str) or ":" not in factory:
        raise GatewayConfigError(f"{where}.factory: required for inprocess, as 'module:function'")
    kwargs = filled.get("kwargs") or {}
    if not isinstance(kwargs, dict):
        raise GatewayConfigError(f"{where}.kwargs: expected a mapping of keyword arguments")
    return ServerSpec(factory=factory, kwargs=kwargs, **common)


def _route(capability: str, raw: Any, servers: dict[str, ServerSpec]) -> Route:
    where = f"capabilities.{capability}"
    if not isinstance(raw, dict) or not raw.get("server") or not raw.get("tool"):
        raise GatewayConfigError(f"{where}: expected {{server: NAME, tool: TOOL}}")
    if raw["server"] not in servers:
        raise GatewayConfigError(
            f"{where}.server: {raw['server']!r} is not under servers:; define it or fix the name"
        )
    renames = raw.get("args") or {}
    fixed = raw.get("fixed") or {}
    if not isinstance(renames, dict) or not all(isinstance(v, str) for v in renames.values()):
        raise GatewayConfigError(f"{where}.args: expected a mapping of our argument -> the tool's argument name")
    if not isinstance(fixed, dict):
        raise GatewayConfigError(f"{where}.fixed: expected a mapping of extra arguments sent on every call")
    page_size = raw.get("page_size")
    if page_size is not None and (isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1):
        raise GatewayConfigError(f"{where}.page_size: expected a positive integer (lines per page)")
    return Route(capability, str(raw["server"]), str(raw["tool"]), dict(renames), dict(fixed), page_size)


def load_config_document(config: dict[str, Any] | str | Path) -> dict[str, Any]:
    """Return the raw config mapping from a dict or a YAML file path.

    Raises:
        GatewayConfigError: unreadable file or not a mapping.
    """
    if isinstance(config, dict):
        return config
    path = Path(config)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise GatewayConfigError(f"{path}: cannot read ({exc.strerror}); check MCP_CONFIG") from None
    except yaml.YAMLError as exc:
        raise GatewayConfigError(f"{path}: invalid YAML ({getattr(exc, 'problem', exc)}); fix the syntax") from None
    if not isinstance(doc, dict):
        raise GatewayConfigError(f"{path}: expected a mapping with servers: and capabilities:")
    return doc


def parse_config(config: dict[str, Any] | str | Path, variables: dict[str, str] | None = None) -> GatewayConfig:
    """Validate a config and fill its placeholders.

    Args:
        config: the mapping, or a path to the YAML file.
        variables: placeholder values (``world``, ``mcp_access_key``, ...); defaults are added.

    Returns:
        The :class:`GatewayConfig`.

    Raises:
        GatewayConfigError: the first problem found, naming its key.
    """
    doc = load_config_document(config)
    values = {**default_variables(), **{k: str(v) for k, v in (variables or {}).items()}}
    raw_servers, raw_caps = doc.get("servers"), doc.get("capabilities")
    if not isinstance(raw_servers, dict) or not raw_servers:
        raise GatewayConfigError("servers: missing or empty; define at least one MCP server")
    if not isinstance(raw_caps, dict) or not raw_caps:
        raise GatewayConfigError("capabilities: missing or empty; map e.g. logs.search: {server: S, tool: T}")
    servers = {str(name): _server(str(name), raw, values) for name, raw in raw_servers.items()}
    routes: dict[str, Route] = {}
    fanout: dict[str, tuple[Route, ...]] = {}
    for cap, raw in raw_caps.items():
        if isinstance(raw, list):
            if not raw:
                raise GatewayConfigError(f"capabilities.{cap}: an empty list; give at least one {{server, tool}}")
            many = tuple(_route(str(cap), item, servers) for item in raw)
            routes[str(cap)] = many[0]
            if len(many) > 1:
                fanout[str(cap)] = many
        else:
            routes[str(cap)] = _route(str(cap), raw, servers)
    breaker = doc.get("circuit_breaker") or {}
    if not isinstance(breaker, dict):
        raise GatewayConfigError("circuit_breaker: expected {failures: N, reset_s: S}")
    return GatewayConfig(servers, routes, int(_number(breaker, "failures", 5, "circuit_breaker", 1)),
                         float(_number(breaker, "reset_s", 30.0, "circuit_breaker", 0)), fanout,
                         bool(doc.get("tolerant", False)))


def default_sandbox_config(transport: str = "stdio") -> dict[str, Any]:
    """The config that reaches the bundled sandbox MCP servers (agents/mcp-sandbox.yaml).

    Args:
        transport: ``stdio`` (one subprocess per source, needs variable ``world``), ``inprocess``
            (the servers built in this process by importlib, needs ``world``; for benches and tests)
            or ``http`` (needs ``mcp_url``, the base URL of ``python -m sandbox serve --transport http``
            serving all sources, and optionally ``mcp_access_key``).

    Returns:
        A fresh config mapping for :func:`agents.gateway.open_gateway`.

    Raises:
        GatewayConfigError: unknown transport.
    """
    text = resources.files("agents").joinpath("mcp-sandbox.yaml").read_text(encoding="utf-8")
    doc = yaml.safe_load(text)
    if transport == "stdio":
        return doc
    if transport not in TRANSPORTS:
        raise GatewayConfigError(f"transport {transport!r} unknown; use one of {', '.join(TRANSPORTS)}")
    for name, spec in doc["servers"].items():
        keep = {k: spec[k] for k in ("timeout_s", "retries", "backoff_s") if k in spec}
        if transport == "inprocess":
            # The factory shares one loaded world between the four servers of a process.
            spec = {"transport": "inprocess", "factory": "sandbox.servers:build_world_server",
                    "kwargs": {"world_dir": "{world}", "source": name}}
        else:
            spec = {"transport": "http", "url": "{mcp_url}/" + name + "/mcp",
                    "headers": {"Authorization": "Bearer {mcp_access_key}"}}
        doc["servers"][name] = {**spec, **keep}
    return copy.deepcopy(doc)
