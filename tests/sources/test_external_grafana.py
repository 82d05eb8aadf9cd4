"""``kind: mcp`` with the ``grafana`` normaliser against a stand-in of Grafana's ``mcp-grafana``
(tests/fakes/grafana_mcp.py) holding example-1's metrics and logs: parity with the sandbox for
metrics.*, logs.search (paging included) and logs.counts, failures, and the gateway end to end."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agents.gateway import open_gateway
from agents.sources_gateway import gateway_config
from sandbox.promrun import free_port
from sandbox.tools import WorldTools
from sources.errors import QueryError, SourceError
from sources.external import ExternalMcpProvider
from sources.registry import build_provider
from store.errors import ConfigError
from store.sources_file import load_sources, parse_sources

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
WORLD = Path("/work/shared/worlds/example-1")
START, END = "2026-02-15T11:10:00Z", "2026-02-15T11:50:00Z"
TOKEN_ENV = "PM_TEST_GRAFANA_MCP_AUTH"
FAKE = ["-m", "tests.fakes.grafana_mcp", "--world", str(WORLD)]


def listed_in_window(**window: Any) -> dict[str, Any]:
    """The sandbox's metrics.list over a window, from its metrics.series (main's WorldTools.call does not
    pass metrics.list a window yet: its argument table still lists only service)."""
    series = WorldTools(WORLD).call("metrics.series", **window)["series"]
    return {"metrics": [{"service": s["service"], "name": s["name"], "samples": len(s["points"]),
                         "first_ts": s["points"][0][0], "last_ts": s["points"][-1][0]}
                        for s in series if s["points"]]}


def _ordered(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Lines by time; within one second by content (Loki's order among equal timestamps is its own)."""
    return sorted(lines, key=lambda x: (x["ts"], json.dumps(sorted(x.items()))))


@pytest.fixture(scope="module")
def fake_url() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, *FAKE, "--transport", "streamable-http", "--port", str(port),
                             "--require-header", "Authorization=Bearer sa-token"],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the stand-in exited: {proc.stderr.read().decode()[-500:] if proc.stderr else ''}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    os.environ[TOKEN_ENV] = "Bearer sa-token"
    yield f"http://127.0.0.1:{port}/mcp"
    os.environ.pop(TOKEN_ENV, None)
    proc.terminate()
    proc.wait(10)


def _build(section: str, server: dict[str, Any], **settings: Any) -> ExternalMcpProvider:
    doc = parse_sources({section: [{"kind": "mcp", "normaliser": "grafana", "server": server, **settings}]},
                        base_dir=ROOT)
    provider = build_provider(doc.entries[0], doc)
    assert isinstance(provider, ExternalMcpProvider)
    return provider


def _http(url: str) -> dict[str, Any]:
    return {"transport": "http", "url": url, "headers": {"Authorization": {"env": TOKEN_ENV}}}


def _stdio(*extra: str) -> dict[str, Any]:
    return {"transport": "stdio", "command": sys.executable, "args": [*FAKE, *extra],
            "env": {"PYTHONPATH": str(ROOT)}, "cwd": str(ROOT)}


@pytest.fixture(scope="module")
def metrics(fake_url: str) -> Iterator[ExternalMcpProvider]:
    p = _build("metrics", _http(fake_url), datasources={"prometheus": "prometheus"},
               list_end="2026-02-15T14:00:00Z", list_window="6h")
    yield p
    p.close()


@pytest.fixture(scope="module")
def logs(fake_url: str) -> Iterator[ExternalMcpProvider]:
    p = _build("logs", _http(fake_url), datasources={"loki": "loki"})
    yield p
    p.close()


def test_metrics_parity(metrics: ExternalMcpProvider) -> None:
    world = WorldTools(WORLD)
    got = metrics.call("metrics.series", start=START, end=END)
    assert len(got["series"]) == 40
    assert got == world.call("metrics.series", start=START, end=END)
    assert metrics.call("metrics.series", service="geo", name="latency_p95_ms", start=START, end=END) == \
        world.call("metrics.series", service="geo", name="latency_p95_ms", start=START, end=END)
    assert metrics.call("metrics.list") == world.call("metrics.list")
    assert metrics.call("metrics.list", start=START, end=END) == listed_in_window(start=START, end=END)
    assert "prometheus prometheus" in metrics.check()


@pytest.mark.parametrize("filters", [{}, {"service": "checkout", "level": "WARN"}, {"text": "timeout"},
                                     {"levels": ["ERROR", "INFO"], "service": "geo"}, {"text": "GET /API"}])
def test_logs_search_parity(logs: ExternalMcpProvider, filters: dict[str, Any]) -> None:
    got = logs.call("logs.search", start=START, end=END, limit=5000, **filters)
    want = WorldTools(WORLD).call("logs.search", start=START, end=END, limit=5000, **filters)
    assert got["total"] == want["total"] and got["next_cursor"] is None
    assert _ordered(got["lines"]) == _ordered(want["lines"])


def test_logs_search_pages_cover_everything_once(logs: ExternalMcpProvider) -> None:
    want = WorldTools(WORLD).call("logs.search", start=START, end=END, limit=5000)
    seen: list[dict[str, Any]] = []
    cursor, calls = None, 0
    while True:
        page = logs.call("logs.search", start=START, end=END, limit=137, cursor=cursor)
        assert len(page["lines"]) <= 137 and page["total"] == want["total"]
        seen.extend(page["lines"])
        calls += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert calls == -(-want["total"] // 137)
    assert _ordered(seen) == _ordered(want["lines"])
    with pytest.raises(Exception, match="not one we issued"):
        logs.call("logs.search", start=START, end=END, cursor="12")


@pytest.mark.parametrize("args", [{}, {"group_by": "level"}, {"group_by": "service,level", "step_s": 300},
                                  {"group_by": "none", "text": "slow"}, {"level": "ERROR", "service": "checkout"}])
def test_logs_counts_parity(logs: ExternalMcpProvider, args: dict[str, Any]) -> None:
    got = logs.call("logs.counts", start=START, end=END, **args)
    assert got == WorldTools(WORLD).call("logs.counts", start=START, end=END, **args)
    assert got["buckets"]


def test_logs_check_and_strict_stand_in(logs: ExternalMcpProvider) -> None:
    assert logs.check().startswith("loki loki:")
    # The stand-in, like mcp-grafana, refuses argument names it does not document.
    with pytest.raises(SourceError, match="query_loki_stats failed"):
        logs.tool("query_loki_stats", {"datasourceUid": "loki", "logql": '{service="geo"}', "bogus": 1})


def test_truncated_logs_search_says_so_and_continues(fake_url: str) -> None:
    p = _build("logs", _http(fake_url), datasources={"loki": "loki"}, page_size=20, max_pages=2)
    try:
        first = p.call("logs.search", start=START, end=END, limit=100)
        assert 0 < len(first["lines"]) <= 40 and "max_pages=2" in first["truncated"]
        rest = p.call("logs.search", start=START, end=END, limit=100, cursor=first["next_cursor"])
        both = _ordered(first["lines"] + rest["lines"])
        want = WorldTools(WORLD).call("logs.search", start=START, end=END, limit=5000)["lines"]
        assert both == _ordered(want)[: len(both)]
    finally:
        p.close()


def test_selector_and_an_unlisted_gauge(fake_url: str) -> None:
    p = _build("metrics", _http(fake_url), datasources={"prometheus": "prometheus"},
               selector='service=~"geo|orders"', queries={"cpu": "max by ($service_label) (cpu_util{$selector})",
                                                         "requests_per_s": None})
    try:
        got = p.call("metrics.series", start=START, end=END)
        assert {s["service"] for s in got["series"]} == {"geo", "orders"}
        world = WorldTools(WORLD).call("metrics.series", service="geo", name="cpu_util", start=START, end=END)
        cpu = [s for s in got["series"] if s["name"] == "cpu" and s["service"] == "geo"]
        assert cpu[0]["points"] == world["series"][0]["points"]
        assert "requests_per_s" not in {s["name"] for s in got["series"]}
        # A name no template lists (here: dropped above) is read as a plain gauge when asked for.
        raw = p.call("metrics.series", name="requests_per_s", service="orders", start=START, end=END)
        assert raw == WorldTools(WORLD).call("metrics.series", name="requests_per_s", service="orders", start=START,
                                             end=END)
    finally:
        p.close()


def test_unknown_datasource_and_bad_template(fake_url: str) -> None:
    p = _build("metrics", _http(fake_url), datasources={"prometheus": "no-such-uid"})
    try:
        with pytest.raises(SourceError, match="datasource with UID 'no-such-uid' not found"):
            p.call("metrics.series", name="error_rate", start=START, end=END)
    finally:
        p.close()
    q = _build("metrics", _http(fake_url), datasources={"prometheus": "prometheus"},
               queries={"broken": "max by (service) (error_rate"})
    try:
        with pytest.raises(QueryError, match=r"metric broken \(template 'max by \(service\) \(error_rate'"):
            q.call("metrics.series", name="broken", start=START, end=END)
    finally:
        q.close()
    wrong = _build("logs", _http(fake_url), datasources={"loki": "prometheus"})
    try:
        with pytest.raises(SourceError, match="of type prometheus, not loki"):
            wrong.call("logs.search", start=START, end=END)
    finally:
        wrong.close()


def test_refused_credentials_and_unreachable_url(fake_url: str) -> None:
    bad = _build("metrics", {"transport": "http", "url": fake_url}, datasources={"prometheus": "prometheus"})
    try:
        with pytest.raises(SourceError, match="HTTP 401 .*check server.headers"):
            bad.call("metrics.list")
    finally:
        bad.close()
    gone = _build("metrics", {"transport": "http", "url": f"http://127.0.0.1:{free_port()}/mcp"},
                  datasources={"prometheus": "prometheus"}, connect_timeout_s=5)
    try:
        with pytest.raises(SourceError, match="cannot start/reach the MCP server"):
            gone.call("metrics.list")
    finally:
        gone.close()


def test_garbage_answers_name_the_normaliser() -> None:
    text = _build("metrics", _stdio("--garbage", "text"), datasources={"prometheus": "prometheus"})
    try:
        with pytest.raises(SourceError, match="normaliser grafana expected JSON text from tool query_prometheus"):
            text.call("metrics.series", name="error_rate", start=START, end=END)
    finally:
        text.close()
    other = _build("logs", _stdio("--garbage", "json"), datasources={"loki": "loki"})
    try:
        with pytest.raises(SourceError, match="normaliser grafana expected .* from tool query_loki_logs"):
            other.call("logs.search", start=START, end=END)
    finally:
        other.close()


def test_slow_server_times_out_and_is_restarted() -> None:
    p = _build("metrics", _stdio("--delay-s", "3"), datasources={"prometheus": "prometheus"}, timeout_s=1)
    try:
        p.tools()
        t0 = time.monotonic()
        with pytest.raises(SourceError, match="timed out after 1s"):
            p.call("metrics.series", name="error_rate", start=START, end=END)
        assert time.monotonic() - t0 < 5
        assert "query_prometheus" in p.tools()  # a fresh session: the stuck one was dropped
    finally:
        p.close()


def test_server_that_cannot_start() -> None:
    server = _stdio()
    server["args"] = ["-m", "tests.fakes.grafana_mcp"]  # no --world: argparse explains on stderr and exits
    p = _build("logs", server, datasources={"loki": "loki"})
    try:
        with pytest.raises(SourceError, match="failed to start: .*required: --world"):
            p.call("logs.search", start=START, end=END)
    finally:
        p.close()


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="datasources.loki: required"):
        _build("logs", {"transport": "http", "url": "http://x/mcp"}, datasources={"prometheus": "p"})
    with pytest.raises(ConfigError, match="datasources.prometheus: required"):
        _build("metrics", {"transport": "http", "url": "http://x/mcp"})
    with pytest.raises(ConfigError, match="answers logs, metrics, not alerts"):
        _build("alerts", {"transport": "http", "url": "http://x/mcp"})
    with pytest.raises(ConfigError, match="server.url"):
        _build("logs", {"transport": "http", "url": "x"}, datasources={"loki": "l"})
    with pytest.raises(ConfigError, match="looks like a credential"):
        _build("logs", {"transport": "http", "url": "http://x/mcp", "headers": {"Authorization": "Bearer abc"}},
               datasources={"loki": "l"})
    with pytest.raises(ConfigError, match="every query was removed"):
        _build("metrics", {"transport": "http", "url": "http://x/mcp"}, datasources={"prometheus": "p"},
               queries=dict.fromkeys(("requests_per_s", "error_rate", "latency_p95_ms", "cpu_util", "mem_util",
                                      "db_connections")))
    with pytest.raises(ConfigError, match="is not set"):
        _build("logs", {"transport": "http", "url": "http://x/mcp", "headers": {"A": {"env": "PM_NO_SUCH_VAR_X"}}},
               datasources={"loki": "l"})


def test_end_to_end_through_our_mcp_server_and_the_gateway(fake_url: str, tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump({
        "metrics": [{"kind": "mcp", "name": "grafana", "normaliser": "grafana", "server": _http(fake_url),
                     "datasources": {"prometheus": "prometheus"}}],
        "logs": [{"kind": "mcp", "name": "grafana", "normaliser": "grafana", "server": _http(fake_url),
                  "datasources": {"loki": "loki"}}]}))
    world = WorldTools(WORLD)
    with open_gateway(gateway_config(load_sources(path))) as gateway:
        series = gateway.call("metrics.series", service="orders", name="error_rate", start=START, end=END)
        search = gateway.call("logs.search", service="checkout", level="ERROR", start=START, end=END)
        counts = gateway.call("logs.counts", group_by="level", start=START, end=END)
    assert series["series"] == world.call("metrics.series", service="orders", name="error_rate", start=START,
                                          end=END)["series"]
    want = world.call("logs.search", service="checkout", level="ERROR", start=START, end=END)
    assert _ordered(search["lines"]) == _ordered(want["lines"]) and search["total"] == want["total"]
    assert counts["buckets"] == world.call("logs.counts", group_by="level", start=START, end=END)["buckets"]


def test_concurrent_calls_from_worker_threads(fake_url: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    p = _build("metrics", _http(fake_url), datasources={"prometheus": "prometheus"})
    try:
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda svc: p.call("metrics.series", service=svc, name="cpu_util", start=START,
                                                       end=END), ["geo", "orders", "booking", "checkout"]))
        assert [a["series"][0]["service"] for a in answers] == ["geo", "orders", "booking", "checkout"]
    finally:
        p.close()
