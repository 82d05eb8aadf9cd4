"""The Prometheus provider against a real Prometheus (sandbox/promrun.py) and small HTTP stand-ins.

One Prometheus holds three stretches of samples: the example-1 world's gauges (the parity test
against WorldTools), counters and histograms in the istio / otel / Micrometer / cAdvisor shapes
whose rates we compute by hand, and one long series for the step choice. The stand-ins on
127.0.0.1 play a Prometheus that fails (HTTP 500, garbage, slow, error JSON).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from agents.gateway import open_gateway
from agents.sources_gateway import gateway_config
from sandbox.promrun import Sample, free_port, prometheus_with
from sandbox.tools import WorldTools
from sandbox.world import iso, parse_ts
from sources.errors import QueryError, SourceError
from sources.prometheus import PrometheusProvider
from sources.registry import build_provider
from store.errors import ConfigError
from store.sources_file import load_sources, parse_sources
from tests.fakes.loopback import LoopbackServer

WORLD = Path("/work/shared/worlds/example-1")
W_START, W_END = "2026-02-15T11:00:00Z", "2026-02-15T13:00:00Z"
T0 = parse_ts("2026-03-01T10:00:00Z")  # the counters' stretch: one hour from here
LONG_T0 = parse_ts("2026-04-01T00:00:00Z")  # the long series: 8 days of one sample a minute
LONG_DAYS = 8
PLAIN_NAMES = ("cpu_util", "db_connections", "error_rate", "latency_p95_ms", "mem_util", "requests_per_s")


def _world_samples() -> list[Sample]:
    out = []
    for line in (WORLD / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        out.append((rec["name"], {"service": rec["service"]}, parse_ts(rec["ts"]), rec["value"]))
    return out


def _counter(name: str, labels: dict[str, str], per_s: float, start: float = T0,
             stop: float = T0 + 3600) -> list[Sample]:
    """A counter growing ``per_s`` a second, scraped every 15 s from ``start``."""
    steps = int((stop - start) // 15)
    return [(name, labels, start + 15 * i, per_s * 15 * i) for i in range(steps + 1)]


def _gauge(name: str, labels: dict[str, str], value: float) -> list[Sample]:
    return [(name, labels, T0 + 15 * i, value) for i in range(241)]


def _counter_samples() -> list[Sample]:
    s: list[Sample] = []
    dest = {"reporter": "destination"}
    # istio, server side: cart 10/s OK + 0.5/s 500; payments 4/s OK, and 1/s 503 from T0+30 min; frontend 14/s.
    s += _counter("istio_requests_total", {**dest, "source_workload": "frontend", "destination_workload": "cart",
                                           "response_code": "200"}, 10.0)
    s += _counter("istio_requests_total", {**dest, "source_workload": "frontend", "destination_workload": "cart",
                                           "response_code": "500"}, 0.5)
    s += _counter("istio_requests_total", {**dest, "source_workload": "frontend", "destination_workload": "payments",
                                           "response_code": "200"}, 4.0)
    s += _counter("istio_requests_total", {**dest, "source_workload": "frontend", "destination_workload": "payments",
                                           "response_code": "503"}, 1.0, start=T0 + 1800)
    s += _counter("istio_requests_total", {**dest, "source_workload": "istio-ingressgateway",
                                           "destination_workload": "frontend", "response_code": "200"}, 14.0)
    # client side only: frontend also calls an outside API, and an outside caller reaches frontend
    s += _counter("istio_requests_total", {"reporter": "source", "source_workload": "frontend",
                                           "destination_workload": "cart", "response_code": "200"}, 10.0)
    s += _counter("istio_requests_total", {"reporter": "source", "source_workload": "unknown",
                                           "destination_workload": "frontend", "response_code": "200"}, 1.0)
    # cumulative buckets: cart (10.5/s in all) and payments (4/s)
    for le, per_s in (("10", 2.0), ("50", 6.0), ("100", 9.0), ("250", 10.0), ("+Inf", 10.5)):
        s += _counter("istio_request_duration_milliseconds_bucket", {**dest, "destination_workload": "cart",
                                                                     "le": le}, per_s)
    for le, per_s in (("50", 1.0), ("100", 4.0), ("+Inf", 4.0)):
        s += _counter("istio_request_duration_milliseconds_bucket", {**dest, "destination_workload": "payments",
                                                                     "le": le}, per_s)
    # client side (reporter="source"): frontend waits on cart, network and sidecars included
    for le, per_s in (("10", 1.0), ("50", 4.0), ("100", 8.0), ("250", 9.5), ("+Inf", 10.0)):
        s += _counter("istio_request_duration_milliseconds_bucket", {"reporter": "source",
                                                                     "destination_workload": "cart", "le": le}, per_s)
    # OpenTelemetry HTTP server histogram: api 8/s 200 + 2/s 500
    otel = "http_server_request_duration_seconds"
    s += _counter(f"{otel}_count", {"service": "api", "http_response_status_code": "200"}, 8.0)
    s += _counter(f"{otel}_count", {"service": "api", "http_response_status_code": "500"}, 2.0)
    for le, per_s in (("0.1", 5.0), ("0.5", 9.0), ("1", 10.0), ("+Inf", 10.0)):
        s += _counter(f"{otel}_bucket", {"service": "api", "le": le}, per_s)
    # Micrometer: api2 3/s 200 + 1/s 503 (no histogram)
    s += _counter("http_server_requests_seconds_count", {"service": "api2", "status": "200", "uri": "/x"}, 3.0)
    s += _counter("http_server_requests_seconds_count", {"service": "api2", "status": "503", "uri": "/x"}, 1.0)
    # prometheus-client: api3 6/s 200 + 2/s 500 (label code), a histogram in seconds
    s += _counter("http_requests_total", {"service": "api3", "code": "200"}, 6.0)
    s += _counter("http_requests_total", {"service": "api3", "code": "500"}, 2.0)
    for le, per_s in (("0.05", 4.0), ("0.2", 7.0), ("0.4", 8.0), ("+Inf", 8.0)):
        s += _counter("http_request_duration_seconds_bucket", {"service": "api3", "le": le}, per_s)
    # cAdvisor: container api uses 0.25 cores of a 0.5 core quota, 256 MiB of 1 GiB
    s += _counter("container_cpu_usage_seconds_total", {"container": "api", "pod": "api-1"}, 0.25)
    s += _gauge("container_spec_cpu_quota", {"container": "api", "pod": "api-1"}, 50_000)
    s += _gauge("container_spec_cpu_period", {"container": "api", "pod": "api-1"}, 100_000)
    s += _gauge("container_memory_working_set_bytes", {"container": "api", "pod": "api-1"}, 256 * 2**20)
    s += _gauge("container_spec_memory_limit_bytes", {"container": "api", "pod": "api-1"}, 2**30)
    return s


def _long_value(i: int) -> float:
    return (i % 997) / 997


def _long_samples() -> list[Sample]:
    return [("cpu_util", {"service": "longsvc"}, LONG_T0 + 60 * i, _long_value(i))
            for i in range(LONG_DAYS * 1440)]


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _offset_samples() -> list[Sample]:
    """A gauge scraped 10 s past each minute (as Nezha's TrainTicket metrics are)."""
    return [("offset_gauge", {"service": "off"}, T0 + 10 + 60 * i, float(i)) for i in range(30)]


@pytest.fixture(scope="module")
def prom() -> Iterator[Any]:
    with prometheus_with(_world_samples() + _counter_samples() + _long_samples() + _offset_samples()) as p:
        yield p


def provider(url: str, section: str = "metrics", **settings: Any) -> PrometheusProvider:
    doc = parse_sources({section: [{"kind": "prometheus", "url": url, **settings}]}, base_dir=Path.cwd())
    built = build_provider(doc.entries[0], doc)
    assert isinstance(built, PrometheusProvider)
    return built


def _by_key(items: list[dict[str, Any]]) -> dict[tuple[str, str], list[list[Any]]]:
    return {(i["service"], i["name"]): i["points"] for i in items}


def _assert_same_series(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    want = [w for w in want if w["points"]]
    assert [(g["service"], g["name"]) for g in got] == [(w["service"], w["name"]) for w in want]
    for g, w in zip(got, want, strict=True):
        assert [p[0] for p in g["points"]] == [p[0] for p in w["points"]], (g["service"], g["name"])
        assert all(math.isclose(a[1], b[1], rel_tol=1e-9, abs_tol=1e-12)
                   for a, b in zip(g["points"], w["points"], strict=True)), (g["service"], g["name"])


def _at(points: list[list[Any]], epoch: float) -> float:
    stamp = iso(epoch)
    found = [v for ts, v in points if ts == stamp]
    assert found, f"no point at {stamp}"
    return float(found[0])


# ---------------------------------------------------------------- parity with the sandbox


@pytest.mark.integration
def test_series_equal_world_tools_for_the_window(prom: Any) -> None:
    p = provider(prom.url)
    got = p.call("metrics.series", start=W_START, end=W_END)
    want = WorldTools(WORLD).call("metrics.series", start=W_START, end=W_END)
    assert len(got["series"]) == 40 and "missing_sources" not in got and "truncated" not in got
    _assert_same_series(got["series"], want["series"])
    # a window that runs past the data adds no echo of the last sample (no 5-minute staleness tail)
    wider = p.call("metrics.series", name="error_rate", start="2026-02-15T10:30:00Z", end="2026-02-15T13:30:00Z")
    _assert_same_series(wider["series"], WorldTools(WORLD).call("metrics.series", name="error_rate")["series"])


def test_step_offset_puts_the_grid_on_the_samples(prom: Any) -> None:
    start, end = T0, T0 + 30 * 60
    args = {"name": "offset_gauge", "start": _iso(start), "end": _iso(end)}
    on_grid = provider(prom.url, gauges=["offset_gauge"], step_offset_s=10).call("metrics.series", **args)
    points = on_grid["series"][0]["points"]
    assert points[0] == [_iso(T0 + 10), 0.0] and points[5] == [_iso(T0 + 310), 5.0] and len(points) == 30
    # On the minute, each value comes back 50 s after its sample: the grid offset is what avoids that.
    late = provider(prom.url, gauges=["offset_gauge"]).call("metrics.series", **args)["series"][0]["points"]
    assert late[0] == [_iso(T0 + 60), 0.0] and late[1] == [_iso(T0 + 120), 1.0]


@pytest.mark.integration
def test_one_request_per_metric_name_and_service_filter(prom: Any) -> None:
    p = provider(prom.url)
    total = PrometheusProvider.total_requests
    p.call("metrics.series", start=W_START, end=W_END)
    assert p.requests == len(PLAIN_NAMES) == len(p.queries)
    assert PrometheusProvider.total_requests == total + len(PLAIN_NAMES)
    one = p.call("metrics.series", service="orders", name="error_rate", start=W_START, end=W_END)
    assert p.requests == len(PLAIN_NAMES) + 1
    _assert_same_series(one["series"], WorldTools(WORLD).call("metrics.series", service="orders", name="error_rate",
                                                              start=W_START, end=W_END)["series"])
    assert p.call("metrics.series", name="no_such_metric", start=W_START, end=W_END) == {"series": []}
    assert p.requests == len(PLAIN_NAMES) + 1  # a name no template reads costs no request


@pytest.mark.integration
def test_selector_service_placeholder_and_gauges(prom: Any) -> None:
    p = provider(prom.url, selector='{service=~"g.*|orders"}', gauges=["queue_depth"],
                 queries={"err_one": 'max by ($service_label) (error_rate{service="$service"})'})
    got = p.call("metrics.series", name="error_rate", start=W_START, end=W_END)
    assert [s["service"] for s in got["series"]] == ["gateway", "geo", "orders"]
    one = p.call("metrics.series", name="err_one", service="geo", start=W_START, end=W_END)
    want = WorldTools(WORLD).call("metrics.series", name="error_rate", service="geo", start=W_START, end=W_END)
    assert [pt[1] for pt in one["series"][0]["points"]] == [pt[1] for pt in want["series"][0]["points"]]
    before = p.requests
    everything = p.call("metrics.series", start=W_START, end=W_END)
    assert p.requests - before == len(PLAIN_NAMES) + 2  # queue_depth and err_one are names too
    assert {s["service"] for s in everything["series"]} == {"gateway", "geo", "orders"}
    assert "missing_sources" not in everything


@pytest.mark.integration
def test_list_equals_world_tools_with_now_and_check(prom: Any) -> None:
    p = provider(prom.url, now=W_END, lookback_s=7200)
    assert p.call("metrics.list") == WorldTools(WORLD).call("metrics.list")
    assert p.call("metrics.list", service="geo") == WorldTools(WORLD).call("metrics.list", service="geo")
    # no window given: the lookback_s before `now`
    _assert_same_series(p.call("metrics.series", name="cpu_util")["series"],
                        WorldTools(WORLD).call("metrics.series", name="cpu_util")["series"])
    before = p.requests
    assert p.check() == "Prometheus 2.42.0+ds, up; 10 services with error_rate"
    assert p.requests == before + 2


# ---------------------------------------------------------------- conventions, by hand


@pytest.mark.integration
def test_istio_rates_latency_and_error_share_by_hand(prom: Any) -> None:
    p = provider(prom.url, convention="istio")
    got = _by_key(p.call("metrics.series", start=iso(T0 + 300), end=iso(T0 + 3600))["series"])
    assert set(got) == {(s, n) for s in ("cart", "payments") for n in ("requests_per_s", "error_rate",
                                                                       "latency_p95_ms")} | {
        ("frontend", "requests_per_s"), ("frontend", "error_rate"), ("cart", "caller_latency_p95_ms")}
    early, late = T0 + 600, T0 + 2700  # before and after payments' 503s start (T0 + 30 min)
    assert _at(got[("cart", "requests_per_s")], early) == pytest.approx(10.5)
    assert _at(got[("cart", "error_rate")], late) == pytest.approx(0.5 / 10.5)
    # p95 rank 0.95 x 10.5 = 9.975 lies in (100, 250] holding counts 9..10: 100 + 150 x 0.975
    assert _at(got[("cart", "latency_p95_ms")], late) == pytest.approx(246.25)
    assert _at(got[("payments", "requests_per_s")], early) == pytest.approx(4.0)
    assert _at(got[("payments", "error_rate")], early) == pytest.approx(0.0)  # no 5xx series yet: 0, not absent
    assert _at(got[("payments", "requests_per_s")], late) == pytest.approx(5.0)
    assert _at(got[("payments", "error_rate")], late) == pytest.approx(0.2)
    assert _at(got[("payments", "latency_p95_ms")], late) == pytest.approx(50 + 50 * 2.8 / 3)
    assert _at(got[("frontend", "requests_per_s")], late) == pytest.approx(14.0)
    # callers' side: rank 0.95 x 10 = 9.5 is the (100, 250] bucket's top (counts 8..9.5): 250; cart's own p95 stays
    assert _at(got[("cart", "caller_latency_p95_ms")], late) == pytest.approx(250.0)
    one = p.call("metrics.series", service="payments", name="error_rate", start=iso(T0 + 300), end=iso(T0 + 3600))
    assert [s["service"] for s in one["series"]] == ["payments"]
    assert one["series"][0]["points"] == got[("payments", "error_rate")]


@pytest.mark.integration
def test_otel_micrometer_cadvisor_and_combined_conventions(prom: Any) -> None:
    window = {"start": iso(T0 + 300), "end": iso(T0 + 3600)}
    late = T0 + 2700
    otel = _by_key(provider(prom.url, convention="otel").call("metrics.series", **window)["series"])
    assert _at(otel[("api", "requests_per_s")], late) == pytest.approx(10.0)
    assert _at(otel[("api", "error_rate")], late) == pytest.approx(0.2)
    assert _at(otel[("api", "latency_p95_ms")], late) == pytest.approx(750.0)  # 0.5 + 0.5 x (9.5 - 9) / 1 s
    micro = _by_key(provider(prom.url, convention="http_server_requests").call("metrics.series", **window)["series"])
    assert _at(micro[("api2", "requests_per_s")], late) == pytest.approx(4.0)
    assert _at(micro[("api2", "error_rate")], late) == pytest.approx(0.25)
    assert _at(micro[("api3", "requests_per_s")], late) == pytest.approx(8.0)
    assert _at(micro[("api3", "error_rate")], late) == pytest.approx(0.25)
    assert _at(micro[("api3", "latency_p95_ms")], late) == pytest.approx(320.0)  # 0.2 + 0.2 x (7.6 - 7) / 1 s
    assert ("api2", "latency_p95_ms") not in micro  # no histogram, no percentile: nothing, not a guess
    cad = _by_key(provider(prom.url, convention="cadvisor").call("metrics.series", **window)["series"])
    assert _at(cad[("api", "cpu_util")], late) == pytest.approx(0.5)
    assert _at(cad[("api", "mem_util")], late) == pytest.approx(0.25)
    # istio (destination_workload) with otel (service): one query per name (istio's four), each service once
    both = provider(prom.url, convention=["istio", "otel"])
    combined = _by_key(both.call("metrics.series", **window)["series"])
    assert both.requests == 4
    assert _at(combined[("cart", "error_rate")], late) == pytest.approx(0.5 / 10.5)
    assert _at(combined[("api", "error_rate")], late) == pytest.approx(0.2)
    assert _at(combined[("api", "latency_p95_ms")], late) == pytest.approx(750.0)


# ---------------------------------------------------------------- bounds


@pytest.mark.integration
def test_long_window_step_stays_under_max_points(prom: Any) -> None:
    p = provider(prom.url)
    start, end = LONG_T0, LONG_T0 + LONG_DAYS * 86400
    assert (end - start) / 60 > 11_000  # at 60 s Prometheus would refuse this window
    got = p.call("metrics.series", name="cpu_util", service="longsvc", start=iso(start), end=iso(end))
    points = got["series"][0]["points"]
    assert len(points) == (end - start) // 120 <= 11_000
    assert parse_ts(points[1][0]) - parse_ts(points[0][0]) == 120  # the next multiple of step_s that fits
    for ts, value in points[:50] + points[-50:]:
        assert value == pytest.approx(_long_value(int((parse_ts(ts) - LONG_T0) // 60)))
    small = provider(prom.url, max_points=100).call("metrics.series", name="error_rate", service="orders",
                                                    start=W_START, end=W_END)
    assert len(small["series"][0]["points"]) == 60  # 7200 s / 100 points -> 120 s steps


@pytest.mark.integration
def test_max_series_truncates_out_loud(prom: Any) -> None:
    got = provider(prom.url, max_series=3, timeout_s=0.5).call("metrics.series", name="error_rate", start=W_START, end=W_END)
    assert [s["service"] for s in got["series"]] == ["booking", "calendar", "checkout"]
    assert got["truncated"] == "metric error_rate: 10 series, kept 3 (max_series)"


# ---------------------------------------------------------------- failing templates


@pytest.mark.integration
def test_failing_template_is_a_query_error_and_the_rest_still_come_back(prom: Any) -> None:
    broken = "rate(error_rate{$selector}[5m]"
    p = provider(prom.url, queries={"broken": broken, "unlabelled": "sum(error_rate{$selector})"})
    with pytest.raises(QueryError) as err:
        p.call("metrics.series", name="broken", start=W_START, end=W_END)
    assert "metric broken" in str(err.value) and broken in str(err.value) and "metrics[0].queries.broken" in str(err.value)
    with pytest.raises(QueryError, match=r"metric unlabelled: .*without the service label"):
        p.call("metrics.series", name="unlabelled", start=W_START, end=W_END)
    got = p.call("metrics.series", start=W_START, end=W_END)
    assert len(got["series"]) == 40
    notes = got["missing_sources"]
    assert len(notes) == 2 and all(isinstance(n, str) for n in notes)
    assert "metric broken" in notes[0] and "metric unlabelled" in notes[1]


def test_bad_settings_are_named() -> None:
    with pytest.raises(ConfigError, match=r"metrics\[0\]\.convention: 'graphite' unknown"):
        provider("http://127.0.0.1:9", convention="graphite")
    with pytest.raises(ConfigError, match=r"queries\.x: unknown placeholder \$servce"):
        provider("http://127.0.0.1:9", queries={"x": "max by ($servce) (x)"})
    with pytest.raises(ConfigError, match=r"service_label: 'app-name' is not a Prometheus label name"):
        provider("http://127.0.0.1:9", service_label="app-name")
    with pytest.raises(ConfigError, match=r"metrics\[0\]\.url: required"):
        build_provider(*_entry({"kind": "prometheus"}))


def _entry(raw: dict[str, Any]) -> tuple[Any, Any]:
    doc = parse_sources({"metrics": [raw]}, base_dir=Path.cwd())
    return doc.entries[0], doc


# ---------------------------------------------------------------- a Prometheus that fails


class _Handler(BaseHTTPRequestHandler):
    state: Any

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        self.state.seen.append((self.path, self.headers.get("Authorization")))
        status, body, delay = self.state.reply
        if delay:
            time.sleep(delay)
        raw = body.encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
        except OSError:
            pass  # the client gave up (the slow case): nothing to answer

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._answer()

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer()


class FakeProm(LoopbackServer):
    """Answers every request with ``reply = (status, body, delay_s)``."""

    handler = _Handler
    thread_name = "fake-prometheus"

    def __init__(self) -> None:
        super().__init__()
        self.reply: tuple[int, str, float] = (200, "{}", 0.0)
        self.seen: list[tuple[str, str | None]] = []


@pytest.fixture
def fake() -> Iterator[FakeProm]:
    server = FakeProm().start()
    yield server
    server.stop()


def _error(kind: str, message: str) -> str:
    return json.dumps({"status": "error", "errorType": kind, "error": message})


@pytest.mark.integration
@pytest.mark.parametrize(("reply", "pattern", "query_error"), [
    ((500, "<html>internal oops</html>", 0.0), r"HTTP 500: <html>internal oops", False),
    ((200, "not json at all", 0.0), r"not Prometheus API JSON \(not json at all\); set url:", False),
    ((200, '{"status": "success", "data": {"resultType": "vector", "result": []}}', 0.0),
     r"expected a matrix result, got vector", False),
    ((200, "{}", 1.0), r"timed out; raise timeout_s", False),
    ((503, _error("timeout", "query timed out in expression evaluation"), 0.0), r"Prometheus gave up", False),
    ((422, _error("execution", "query processing would load too many samples"), 0.0),
     r"metric error_rate: query failed \(execution: query processing would load too many samples\)", True),
    ((401, "Unauthorized", 0.0), r"HTTP 401 \(refused our credentials\)", False),
])
def test_vendor_failures_say_what_to_change(fake: FakeProm, reply: tuple[int, str, float], pattern: str,
                                            query_error: bool) -> None:
    fake.reply = reply
    p = provider(fake.url, timeout_s=0.3)
    with pytest.raises(SourceError, match=pattern) as err:
        p.call("metrics.series", name="error_rate", start=W_START, end=W_END)
    assert isinstance(err.value, QueryError) is query_error
    assert fake.url in str(err.value)  # the message names the source


@pytest.mark.integration
def test_a_source_failure_fails_the_whole_call_and_token_is_sent(fake: FakeProm,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PM_TEST_PROM_TOKEN", "s3cret")
    fake.reply = (500, "down", 0.0)
    p = provider(fake.url, token={"env": "PM_TEST_PROM_TOKEN"})
    with pytest.raises(SourceError, match="HTTP 500"):
        p.call("metrics.series", start=W_START, end=W_END)  # not a missing_sources note: the source is down
    # queries not yet sent when the first failure came back are dropped, so at most one per name
    assert 1 <= p.requests <= len(PLAIN_NAMES) and len(fake.seen) == p.requests
    assert {path for path, _ in fake.seen} == {"/api/v1/query_range"}
    assert {auth for _, auth in fake.seen} == {"Bearer s3cret"}
    # a hung Prometheus: the names are asked at once, so the call fails after about one timeout, not six
    fake.reply = (200, "{}", 2.0)
    slow = provider(fake.url, timeout_s=0.3)
    started = time.monotonic()
    with pytest.raises(SourceError, match="timed out"):
        slow.call("metrics.series", start=W_START, end=W_END)
    assert time.monotonic() - started < 1.5  # one by one it would be 6 x 0.3 s


def test_unreachable_prometheus() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    p = provider(url, timeout_s=2)
    with pytest.raises(SourceError, match=r"cannot connect .*check metrics\[0\]\.url: and that Prometheus runs") as err:
        p.call("metrics.list")
    assert url in str(err.value)
    with pytest.raises(SourceError, match="cannot connect"):
        p.check()


# ---------------------------------------------------------------- topology


@pytest.mark.integration
def test_topology_from_istio_peer_labels(prom: Any) -> None:
    p = provider(prom.url, section="topology", now=iso(T0 + 3600))
    assert p.capabilities() == ("topology.get",)
    assert p.call("topology.get") == {"services": [
        {"name": "cart", "calls": []},
        {"name": "frontend", "calls": ["cart", "payments"]},
        {"name": "istio-ingressgateway", "calls": ["frontend"]},
        {"name": "payments", "calls": []},
    ]}
    assert p.requests == 1
    assert p.check() == "Prometheus 2.42.0+ds, up; 3 call edges between 4 services"
    cut = provider(prom.url, section="topology", now=iso(T0 + 3600), max_series=2).call("topology.get")
    assert cut == {"services": [{"name": "cart", "calls": []}, {"name": "frontend", "calls": ["cart", "payments"]},
                                {"name": "payments", "calls": []}],
                   "truncated": "topology: 4 edges, kept 2 (max_series)"}
    # long before the samples: nothing seen, an empty topology (not an error)
    assert provider(prom.url, section="topology", now=W_END).call("topology.get") == {"services": []}


# ---------------------------------------------------------------- end to end through MCP


@pytest.mark.integration
def test_through_the_gateway_over_mcp(prom: Any, tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    # written as a person would: YAML reads the unquoted times as datetimes
    path.write_text(f"metrics: [{{kind: prometheus, url: '{prom.url}', now: {W_END}}}]\n"
                    f"topology: [{{kind: prometheus, url: '{prom.url}', now: {iso(T0 + 3600)}}}]\n")
    total = PrometheusProvider.total_requests
    with open_gateway(gateway_config(load_sources(path))) as gw:
        got = gw.call("metrics.series", start=W_START, end=W_END)
        listed = gw.call("metrics.list", service="orders")
        topo = gw.call("topology.get")
    assert PrometheusProvider.total_requests - total == 2 * len(PLAIN_NAMES) + 1  # what a bench would print
    tools = WorldTools(WORLD)
    _assert_same_series(got["series"], tools.call("metrics.series", start=W_START, end=W_END)["series"])
    assert listed["metrics"] == tools.call("metrics.list", service="orders")["metrics"]
    assert {s["name"]: s["calls"] for s in topo["services"]}["frontend"] == ["cart", "payments"]
