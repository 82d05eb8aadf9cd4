"""The sandbox MCP servers over the real MCP protocol: in process, stdio subprocess and streamable HTTP."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from sandbox.errors import ToolArgumentError
from sandbox.servers import build_server
from sandbox.tools import SOURCES, WorldTools
from tests.paths import SHARED
from tests.sandbox_http import serving

EXAMPLE = (SHARED / "worlds/example-1")
ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def reference() -> WorldTools:
    return WorldTools(EXAMPLE)


def _text(result) -> str:
    return "".join(c.text for c in result.content if c.type == "text")


def test_each_source_offers_its_capabilities_and_answers_like_worldtools(reference):
    async def run():
        for source, caps in SOURCES.items():
            async with Client(build_server(reference, source)) as client:
                tools = {t.name: t for t in (await client.list_tools()).tools}
                assert sorted(tools) == sorted(c.replace(".", "_") for c in caps)
                for cap in caps:
                    if cap in ("tickets.get", "alerts.get"):
                        continue
                    result = await client.call_tool(cap.replace(".", "_"), {})
                    assert not result.is_error, _text(result)
                    assert json.loads(_text(result)) == reference.call(cap)
        async with Client(build_server(reference, "observability")) as client:
            schema = {t.name: t for t in (await client.list_tools()).tools}["logs_search"].input_schema
            assert {"service", "level", "levels", "start", "end", "text", "limit", "cursor"} <= set(schema["properties"])
            assert schema["properties"]["limit"]["maximum"] == 500000
            args = {"service": "gateway", "level": "ERROR", "limit": 5}
            result = await client.call_tool("logs_search", args)
            assert json.loads(_text(result)) == reference.call("logs.search", **args)
            assert result.structured_content == reference.call("logs.search", **args)
            bad = await client.call_tool("logs_search", {"start": "yesterday"})
            assert bad.is_error and _text(bad).startswith("logs.search: 'start' 'yesterday' is not an ISO-8601 time")
            missing = await client.call_tool("alerts_get", {"id": "pd-0"})
            assert missing.is_error and "no alert 'pd-0'" in _text(missing)

    asyncio.run(run())


def test_unknown_source_is_refused(reference):
    from sandbox.__main__ import SOURCES as CLI_SOURCES

    assert sorted(CLI_SOURCES) == sorted(SOURCES)
    with pytest.raises(ToolArgumentError, match="unknown source 'code'; use one of observability"):
        build_server(reference, "code")


def test_stdio_subprocess_serves_a_source(reference):
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "sandbox", "serve", "--world", str(EXAMPLE), "--source", "tickets"],
        env={"PYTHONPATH": str(ROOT)})

    async def run():
        async with Client(params) as client:
            result = await client.call_tool("tickets_get", {"key": "SCHED-57756"})
            assert json.loads(_text(result)) == reference.call("tickets.get", key="SCHED-57756")

    asyncio.run(run())


@pytest.fixture()
def http_server():
    """``python -m sandbox serve --transport http`` (all sources) with an access key, on a free port."""
    command = [sys.executable, "-m", "sandbox", "serve", "--world", str(EXAMPLE), "--transport", "http",
               "--port", "0", "--access-key", "s3cret"]
    with serving(command) as urls:
        yield {url.rsplit("/", 2)[1]: url for url in urls}


def test_http_serves_all_sources_behind_the_access_key(http_server, reference):
    assert sorted(http_server) == sorted(SOURCES)
    refused = httpx.post(http_server["chat"], json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert refused.status_code == 401 and "Bearer" in refused.json()["error"]

    async def run():
        async with httpx2.AsyncClient(headers={"Authorization": "Bearer s3cret"}) as http:
            for source in ("observability", "chat"):
                async with Client(streamable_http_client(http_server[source], http_client=http)) as client:
                    cap = SOURCES[source][0]
                    result = await client.call_tool(cap.replace(".", "_"), {})
                    assert json.loads(_text(result)) == reference.call(cap)

    asyncio.run(run())


def test_cli_reports_a_bad_world_in_one_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "sandbox", "serve", "--world", str(tmp_path), "--source", "chat"],
                         cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [f"error: world.yaml: not found in {tmp_path}; "
                                               "an incident world needs a world.yaml"]
    out = subprocess.run([sys.executable, "-m", "sandbox", "serve", "--world", str(EXAMPLE)],
                         cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "stdio serves one source; pass --source" in out.stderr
