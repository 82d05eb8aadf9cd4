"""The MCP gateway against the real sandbox MCP servers (stdio, streamable HTTP, in process) and a
provider-shaped server that needs its arguments renamed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from mcp.server.mcpserver import MCPServer

from agents.errors import GatewayConfigError, NotFoundToolError, ToolError
from agents.gateway import default_sandbox_config, open_gateway
from agents.tools import ToolSource
from sandbox.tools import WorldTools
from tests.paths import SHARED
from tests.sandbox_http import base_url, serving

EXAMPLE = (SHARED / "worlds/example-1")
ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration

#: One call per capability, with arguments where the capability needs or takes them.
CALLS = [
    ("world.describe", {}), ("topology.get", {}), ("logs.search", {"service": "gateway", "level": "WARN", "limit": 50}),
    ("logs.counts", {"group_by": "service,level", "step_s": 600}), ("metrics.list", {"service": "orders"}),
    ("metrics.series", {"service": "orders", "name": "error_rate"}), ("alerts.list", {}), ("alerts.get", {"id": "pd-8240"}),
    ("changes.list", {"kind": "deploy"}), ("tickets.get", {"key": "SCHED-57756"}),
    ("tickets.search", {"text": "orders"}), ("chat.search", {"channel": "#orders-alerts"}),
]


@pytest.fixture(scope="module")
def reference() -> WorldTools:
    return WorldTools(EXAMPLE)


def test_stdio_gateway_answers_every_capability_like_worldtools(reference):
    seen = []
    with open_gateway(default_sandbox_config("stdio"), variables={"world": str(EXAMPLE)}, on_call=seen.append) as gw:
        assert isinstance(gw, ToolSource)
        listed = gw.check()
        assert listed["tickets"] == ["tickets_get", "tickets_search"]
        for cap, args in CALLS:
            assert gw.call(cap, **args) == reference.call(cap, **args), cap
        with pytest.raises(ToolError) as info:
            gw.call("tickets.get", key="NOPE-1")
    assert "tickets.get via MCP server 'tickets'" in str(info.value) and "no ticket 'NOPE-1'" in str(info.value)
    assert isinstance(info.value, NotFoundToolError)  # an answer ("no such key"), not an outage
    assert not info.value.retryable
    assert seen == gw.calls and len(seen) == len(CALLS) + 1
    first = seen[2]
    assert (first["capability"], first["server"], first["tool"], first["ok"], first["attempts"]) == (
        "logs.search", "observability", "logs_search", True, 1)
    assert first["args"] == {"service": "gateway", "level": "WARN", "limit": 50}
    assert first["bytes"] > 0 and first["duration_ms"] > 0 and first["started_at"].endswith("Z")
    assert seen[-1]["ok"] is False and "no ticket" in seen[-1]["error"]


def test_inprocess_gateway_serves_large_pages(reference):
    with open_gateway(default_sandbox_config("inprocess"), variables={"world": str(EXAMPLE)}) as gw:
        everything = gw.call("logs.search", limit=500000)
        assert everything == reference.call("logs.search", limit=500000)
        assert everything["total"] == len(everything["lines"]) == 3073
        page = gw.call("logs.search", limit=1000, cursor="3000")
        assert page["lines"] == everything["lines"][3000:] and page["next_cursor"] is None


@pytest.fixture()
def http_url():
    command = [sys.executable, "-m", "sandbox", "serve", "--world", str(EXAMPLE), "--transport", "http",
               "--port", "0", "--access-key", "k-123"]
    with serving(command) as urls:
        yield base_url(urls[0])


def test_http_gateway_with_access_key(http_url, reference):
    config = default_sandbox_config("http")
    with open_gateway(config, variables={"mcp_url": http_url, "mcp_access_key": "k-123"}) as gw:
        for cap, args in CALLS[:4] + CALLS[-3:]:
            assert gw.call(cap, **args) == reference.call(cap, **args), cap
    for server in config["servers"].values():
        server["retries"] = 0
    with open_gateway(config, variables={"mcp_url": http_url, "mcp_access_key": "wrong"}) as gw:
        with pytest.raises(ToolError) as info:
            gw.call("chat.search")
    assert "chat.search via MCP server 'chat'" in str(info.value) and "check that the server runs" in str(info.value)
    assert info.value.retryable


def build_provider() -> MCPServer:
    """A Grafana-shaped server: its own tool and argument names, and an extra required argument."""
    server = MCPServer("grafana-like")

    @server.tool()
    def query_loki_logs(app: str, query: str = "", org: str = "") -> dict:
        return {"received": {"app": app, "query": query, "org": org}}

    return server


def test_capability_arguments_are_renamed_for_a_provider():
    config = default_sandbox_config("inprocess")
    config["servers"]["grafana"] = {"transport": "inprocess", "factory": f"{__name__}:build_provider"}
    config["capabilities"]["logs.search"] = {"server": "grafana", "tool": "query_loki_logs",
                                             "args": {"service": "app", "text": "query"}, "fixed": {"org": "main"}}
    with open_gateway(config, variables={"world": str(EXAMPLE)}) as gw:
        assert gw.call("logs.search", service="checkout", text="timeout", level=None) == {
            "received": {"app": "checkout", "query": "timeout", "org": "main"}}
        assert gw.calls[-1]["server"] == "grafana" and gw.calls[-1]["args"] == {
            "service": "checkout", "text": "timeout", "level": None}
        assert gw.call("topology.get")["services"][0]["name"] == "orders"  # the rest still goes to the sandbox
        with pytest.raises(ToolError, match="no source answers code.blame; add it under capabilities:"):
            gw.call("code.blame")


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda c: c["servers"]["chat"].update(args=["{nowhere}"]), "servers.chat.args[0]: unknown placeholder {nowhere}"),
    (lambda c: c["servers"]["chat"].update(transport="carrier-pigeon"), "servers.chat.transport: 'carrier-pigeon'"),
    (lambda c: c["capabilities"].update({"x.y": {"server": "ghost", "tool": "t"}}), "capabilities.x.y.server: 'ghost'"),
    (lambda c: c["servers"]["chat"].update(transport="http"), "servers.chat.url: required for http"),
    (lambda c: c["servers"]["chat"].update(retries=-1), "servers.chat.retries: expected a number >= 0"),
    (lambda c: c.pop("capabilities"), "capabilities: missing or empty"),
])
def test_bad_config_is_refused_with_the_key_named(mutate, message):
    config = default_sandbox_config("stdio")
    mutate(config)
    with pytest.raises(GatewayConfigError) as info:
        open_gateway(config, variables={"world": str(EXAMPLE)})
    assert str(info.value).startswith(message)


def test_config_from_a_yaml_file(tmp_path):
    path = tmp_path / "mcp.yaml"
    path.write_text("servers: {obs: {transport: inprocess, factory: 'sandbox.servers:build_world_server',\n"
                    "  kwargs: {world_dir: '{world}', source: observability}}}\n"
                    "capabilities: {world.describe: {server: obs, tool: world_describe}}\n")
    with open_gateway(path, variables={"world": str(EXAMPLE)}) as gw:
        assert gw.call("world.describe")["name"] == "example-1"
    with pytest.raises(GatewayConfigError, match="cannot read"):
        open_gateway(tmp_path / "missing.yaml", variables={})


def test_large_limit_is_fetched_in_pages_when_the_route_says_so(reference):
    config = default_sandbox_config("inprocess")
    config["capabilities"]["logs.search"]["page_size"] = 500
    with open_gateway(config, variables={"world": str(EXAMPLE)}) as gw:
        assert gw.call("logs.search", limit=500000) == reference.call("logs.search", limit=500000)
        assert gw.calls[-1]["attempts"] == 7  # ceil(3073 / 500) pages, one attempt each
        partial = gw.call("logs.search", limit=1200, level="INFO")
        assert partial == reference.call("logs.search", limit=1200, level="INFO")
        assert partial["next_cursor"] == "1200" and gw.calls[-1]["attempts"] == 3
