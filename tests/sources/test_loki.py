"""The ``loki`` logs provider against a stand-in Loki (tests/fakes/loki_server.py) holding the example world.

The world's lines are pushed as JSON lines in streams labelled by service (and, in one variant,
by level); every answer must equal WorldTools' on the same world, including paging past the
server's entry limit. Then hostile text, vendor failures, the tenant header, bounds, and one
end-to-end run through MCP and the gateway with a files provider and this one side by side.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import yaml

from sandbox.errors import ToolArgumentError
from sandbox.tools import WorldTools
from sandbox.world import parse_ts
from sources.errors import SourceError
from sources.loki import LokiProvider, encoded_literal, logql_string, regex_literal
from sources.registry import build_provider
from store.errors import ConfigError
from store.sources_file import parse_sources
from tests.fakes.loki_server import FakeLoki, LogQLError, parse_logql
from tests.paths import SHARED

EXAMPLE = SHARED / "worlds/example-1"
WINDOW = {"start": "2026-02-15T10:00:00Z", "end": "2026-02-15T14:00:00Z"}
SEARCHES: list[dict[str, Any]] = [
    {},
    {"service": "checkout"},
    {"level": "WARN"},
    {"levels": ["WARN", "ERROR", "FATAL"]},
    {"levels": ["DEBUG", "INFO"], "service": "gateway"},
    {"level": "INFO"},
    {"text": "SLOW"},
    {"text": "checkout"},  # also in host names: only the message counts
    {"text": "slow", "level": "WARN", "service": "checkout"},
    {"start": "2026-02-15T11:10:30Z", "end": "2026-02-15T11:31:10Z"},
    {"start": "2026-02-15T11:10:30.250Z", "end": "2026-02-15T11:31:10Z", "levels": "ERROR,FATAL"},
    {"service": "no-such-service"},
]


def _records() -> list[dict[str, Any]]:
    return [json.loads(line) for line in (EXAMPLE / "logs.jsonl").read_text().splitlines() if line.strip()]


def _key(line: dict[str, Any]) -> str:
    return json.dumps(line, sort_keys=True)


def load(fake: FakeLoki, records: list[dict[str, Any]], *, level_label: bool) -> None:
    """Push world lines: labels {service, namespace[, level]}, the line the rest of the record as JSON."""
    streams: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for rec in records:
        labels = {"service": rec["service"], "namespace": "shop"}
        if level_label:
            labels["level"] = rec["level"].lower()
        body = {k: v for k, v in rec.items() if k != "service"}
        streams[json.dumps(labels, sort_keys=True)].append((round(parse_ts(rec["ts"]) * 1e9), json.dumps(body)))
    for labels, entries in streams.items():
        fake.push(json.loads(labels), entries)


def provider(tmp_path: Path, **entry: Any) -> LokiProvider:
    doc = parse_sources({"logs": [{"kind": "loki", **entry}]}, base_dir=tmp_path)
    built = build_provider(doc.entries[0], doc)
    assert isinstance(built, LokiProvider)
    return built


@pytest.fixture(scope="module")
def reference() -> WorldTools:
    return WorldTools(EXAMPLE)


@pytest.fixture(scope="module", params=["label", "json"])
def world_loki(request: pytest.FixtureRequest) -> Iterator[FakeLoki]:
    """A stand-in Loki holding the example world, levels as a stream label or only in the JSON lines."""
    fake = FakeLoki(max_entries=700).start()
    load(fake, _records(), level_label=request.param == "label")
    fake.mode = request.param  # type: ignore[attr-defined]
    yield fake
    fake.stop()


@pytest.fixture
def fake() -> Iterator[FakeLoki]:
    server = FakeLoki().start()
    yield server
    server.stop()


# ---------------------------------------------------------------- parity with WorldTools


@pytest.mark.parametrize("args", SEARCHES, ids=lambda a: ",".join(f"{k}={v}" for k, v in a.items()) or "all")
def test_search_and_counts_equal_worldtools(world_loki: FakeLoki, tmp_path: Path, reference: WorldTools,
                                            args: dict[str, Any]) -> None:
    logs = provider(tmp_path, url=world_loki.url, selector='{namespace="shop"}', max_entries=700)
    full = {**WINDOW, **args}
    mine = logs.call("logs.search", **full, limit=500_000)
    theirs = reference.call("logs.search", **full, limit=500_000)
    assert mine["total"] == theirs["total"]
    assert mine["next_cursor"] is None and "truncated" not in mine
    assert [x["ts"] for x in mine["lines"]] == [x["ts"] for x in theirs["lines"]]
    assert sorted(map(_key, mine["lines"])) == sorted(map(_key, theirs["lines"]))
    head = logs.call("logs.search", **full, limit=1)
    assert head["total"] == theirs["total"] and len(head["lines"]) == min(1, theirs["total"])
    for group_by, step_s in (("service", 60), ("level", 7), ("service,level", 60), ("none", 3600),
                             ("service,level", 13)):
        assert logs.call("logs.counts", **full, group_by=group_by, step_s=step_s) == reference.call(
            "logs.counts", **full, group_by=group_by, step_s=step_s), (group_by, step_s)
    assert logs.level_mode() == world_loki.mode  # type: ignore[attr-defined]


def test_paging_past_the_server_limit_with_cursors(world_loki: FakeLoki, tmp_path: Path,
                                                   reference: WorldTools) -> None:
    # The provider believes Loki serves 5000 entries; Loki says 700: it learns that from the 400 and pages on.
    logs = provider(tmp_path, url=world_loki.url)
    got: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        page = logs.call("logs.search", **WINDOW, limit=1000, cursor=cursor)
        assert page["total"] == 3073
        got += page["lines"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 4 and logs.max_entries == 700
    assert sorted(map(_key, got)) == sorted(map(_key, reference.call("logs.search", **WINDOW, limit=500_000)["lines"]))
    assert [x["ts"] for x in got] == sorted(x["ts"] for x in got)
    with pytest.raises(ToolArgumentError, match="cursor"):
        logs.call("logs.search", **WINDOW, service="checkout", limit=10, cursor=page_cursor(logs))
    with pytest.raises(ToolArgumentError, match="cursor"):
        logs.call("logs.search", **WINDOW, limit=10, cursor="12")


def page_cursor(logs: LokiProvider) -> str:
    """A real cursor of the unfiltered query (not valid for a filtered one)."""
    cursor = logs.call("logs.search", **WINDOW, limit=10)["next_cursor"]
    assert isinstance(cursor, str)
    return cursor


def test_equal_timestamps_are_neither_lost_nor_repeated(fake: FakeLoki, tmp_path: Path) -> None:
    fake.max_entries = 8
    at = 1_771_153_200_000_000_000
    fake.push({"service": "a"}, [(at, json.dumps({"level": "INFO", "message": m})) for m in ("x", "x", "y")])
    fake.push({"service": "b"}, [(at, json.dumps({"level": "ERROR", "message": m})) for m in ("p", "q", "r")])
    fake.push({"service": "b"}, [(at + 1_000_000, json.dumps({"level": "INFO", "message": "later"}))])
    logs = provider(tmp_path, url=fake.url, max_entries=8)
    seen: list[tuple[str, str]] = []
    cursor = None
    while True:
        page = logs.call("logs.search", start="2026-02-15T11:00:00Z", end="2026-02-15T11:01:00Z", limit=2,
                         cursor=cursor)
        assert page["total"] == 7
        seen += [(x["service"], x["message"]) for x in page["lines"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted([("a", "x"), ("a", "x"), ("a", "y"), ("b", "p"), ("b", "q"), ("b", "r"),
                                   ("b", "later")])
    assert seen[-1] == ("b", "later")
    # More lines at one instant than Loki serves per query: the rest are skipped, out loud.
    fake.push({"service": "c"}, [(at + 5_000_000, json.dumps({"message": f"burst {i}"})) for i in range(12)])
    burst = logs.call("logs.search", service="c", start="2026-02-15T11:00:00Z", end="2026-02-15T11:01:00Z",
                      limit=500_000)
    assert len(burst["lines"]) == 8 and burst["total"] == 12
    assert "more than 8 lines at 2026-02-15T11:00:00.005Z" in burst["truncated"]


def test_max_pages_caps_a_query_and_says_so(world_loki: FakeLoki, tmp_path: Path) -> None:
    logs = provider(tmp_path, url=world_loki.url, max_entries=500, max_pages=3)
    page = logs.call("logs.search", **WINDOW, limit=500_000)
    # three requests of 500, less the few lines at a page's last instant asked for again
    assert 1400 < len(page["lines"]) <= 1500 and page["total"] == 3073
    assert page["next_cursor"] is None
    assert "stopped after 3 requests (max_pages)" in page["truncated"]


def test_max_range_cuts_the_window(world_loki: FakeLoki, tmp_path: Path, reference: WorldTools) -> None:
    logs = provider(tmp_path, url=world_loki.url, max_range="30m")
    page = logs.call("logs.search", **WINDOW, limit=500_000)
    assert "last 0.5 h (max_range)" in page["truncated"]
    assert page["total"] == reference.call("logs.search", start="2026-02-15T13:30:00Z", end=WINDOW["end"],
                                           limit=1)["total"]


# ---------------------------------------------------------------- text is data


HOSTILE = ['"} |= "x', 'a"b', "back`tick`", ".*", "(?i)", "\\d+", "$^[", "100%", "{service=~\".+\"}", "tab\there",
           "line\nbreak", "naïve ÜBER", ") or pm_message=~\".*"]


def test_text_with_quotes_backticks_and_regex_cannot_break_or_change_the_query(fake: FakeLoki,
                                                                               tmp_path: Path) -> None:
    at = 1_771_153_200_000_000_000
    messages = [f"before {needle} after" for needle in HOSTILE] + ["plain line", "a b", "dddd"]
    fake.push({"service": "api"}, [(at + i * 1_000_000, json.dumps({"level": "INFO", "message": m}))
                                   for i, m in enumerate(messages)])
    logs = provider(tmp_path, url=fake.url)
    window = {"start": "2026-02-15T11:00:00Z", "end": "2026-02-15T11:01:00Z"}
    for needle in HOSTILE:
        page = logs.call("logs.search", **window, text=needle.upper() if needle.isascii() else needle)
        expected = [m for m in messages if needle.lower() in m.lower()]
        assert [x["message"] for x in page["lines"]] == expected, needle
        assert page["total"] == len(expected)
        counts = logs.call("logs.counts", **window, text=needle, group_by="none", step_s=60)
        assert sum(b["count"] for b in counts["buckets"]) == len(expected)
    hostile_service = 'api"} or {service=~".+'
    assert logs.call("logs.search", **window, service=hostile_service)["total"] == 0
    assert logs.call("logs.search", **window, service="api")["total"] == len(messages)
    for query in fake.queries():
        parsed = parse_logql(query)  # every query the provider sent parses, with the one selector it meant
        log = parsed if not hasattr(parsed, "log") else parsed.log
        assert [(m.name, m.op) for m in log.matchers] in ([("service", "=~")], [("service", "=")])
        assert log.matchers[0].value in (".+", "api", hostile_service)


def test_escaping_helpers_round_trip_through_the_parser() -> None:
    for needle in HOSTILE + ["\x00\x1f\x7f", "\\", '"', "`", "a/b", "😀"]:
        raw = parse_logql("{a=\"b\"} |~ " + logql_string("(?i)" + regex_literal(needle))).stages[0]  # type: ignore[union-attr]
        assert raw(f"xx{needle.upper()}yy", {}) and not raw("unrelated", {})
        # in a JSON line the text may stand escaped, whichever way the writer escapes
        encoded = parse_logql("{a=\"b\"} |~ " + logql_string("(?i)" + encoded_literal(needle))).stages[0]  # type: ignore[union-attr]
        for ascii_only in (True, False):
            assert encoded(json.dumps({"message": f"xx{needle}yy"}, ensure_ascii=ascii_only), {}), needle
        assert encoded(f"xx{needle}yy", {}) and not encoded("unrelated", {})


# ---------------------------------------------------------------- vendor failures


def test_unreachable_loki(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    logs = provider(tmp_path, url=f"http://127.0.0.1:{port}", level_from="json")
    with pytest.raises(SourceError, match=rf"loki http://127.0.0.1:{port}: cannot connect .*check logs\[0\]\.url"):
        logs.call("logs.search", **WINDOW)
    with pytest.raises(SourceError, match="cannot connect"):
        logs.check()


def test_http_500_garbage_and_slow(fake: FakeLoki, tmp_path: Path) -> None:
    logs = provider(tmp_path, url=fake.url, level_from="json", timeout_s=0.5)
    fake.fail_next(500, "too many outstanding requests")
    with pytest.raises(SourceError, match="HTTP 500: too many outstanding requests"):
        logs.call("logs.search", **WINDOW)
    fake.garbage = True
    with pytest.raises(SourceError, match="not JSON .*points at Loki"):
        logs.call("logs.counts", **WINDOW)
    fake.garbage = False
    fake.delay_s = 2.0
    with pytest.raises(SourceError, match="timed out; raise timeout_s"):
        logs.call("logs.search", **WINDOW)
    fake.delay_s = 0.0
    assert logs.call("logs.search", **WINDOW) == {"lines": [], "next_cursor": None, "total": 0}


def test_a_wrong_shape_is_a_source_error(fake: FakeLoki, tmp_path: Path) -> None:
    fake.push({"service": "api"}, [(1_771_153_200_000_000_000, "hello")])
    logs = provider(tmp_path, url=fake.url, selector="{namespace=shop}")  # an unquoted value: Loki says 400
    with pytest.raises(SourceError, match=r"Loki refused the query .*HTTP 400: parse error.*check logs\[0\]\.selector"):
        logs.call("logs.search", **WINDOW)
    with pytest.raises(ConfigError, match="selector: expected a stream selector"):
        provider(tmp_path, url=fake.url, selector='namespace="shop"')
    with pytest.raises(ConfigError, match="not a Loki label name"):
        provider(tmp_path, url=fake.url, service_label="app.kubernetes.io/name")


def test_tenant_header_is_sent(fake: FakeLoki, tmp_path: Path) -> None:
    fake.tenant = "team-a"
    fake.push({"service": "api", "level": "error"}, [(1_771_153_200_000_000_000, "boom")])
    anonymous = provider(tmp_path, url=fake.url)
    with pytest.raises(SourceError, match=r"multi-tenant: set logs\[0\]\.tenant"):
        anonymous.call("logs.search", **WINDOW)
    logs = provider(tmp_path, url=fake.url, tenant="team-a", line_format="raw")
    before = len(fake.requests)
    page = logs.call("logs.search", **WINDOW, level="ERROR")
    assert page["lines"] == [{"ts": "2026-02-15T11:00:00Z", "service": "api", "level": "ERROR", "message": "boom"}]
    sent = [(r["path"], r["headers"].get("x-scope-orgid")) for r in fake.requests[before:]]
    assert sent == [("/loki/api/v1/labels", "team-a"), ("/loki/api/v1/query_range", "team-a")]


def test_check(fake: FakeLoki, tmp_path: Path) -> None:
    fake.push({"service": "api"}, [(1_771_153_200_000_000_000, "x")])
    fake.push({"service": "web"}, [(1_771_153_200_000_000_000, "y")])
    assert provider(tmp_path, url=fake.url).check() == (
        "ready; 2 services by 'service'; levels from json; 0 line(s) in the last 10 min")
    with pytest.raises(SourceError, match=r"no stream has the label 'app'; set logs\[0\]\.service_label to one of: "
                                          "service"):
        provider(tmp_path, url=fake.url, service_label="app").check()


def test_logfmt_lines_and_level_labels_from_the_line(fake: FakeLoki, tmp_path: Path) -> None:
    at = 1_771_153_200_000_000_000
    fake.push({"app": "cart"}, [(at, 'level=warning msg="cart is slow" trace_id=abc'),
                                (at + 1, "level=info msg=fine"), (at + 2, "garbage without pairs =")])
    logs = provider(tmp_path, url=fake.url, service_label="app", line_format="logfmt")
    got = logs.call("logs.search", **WINDOW)
    assert got["lines"][0] == {"ts": "2026-02-15T11:00:00Z", "service": "cart", "level": "WARN",
                               "message": "cart is slow", "trace_id": "abc"}
    assert logs.call("logs.search", **WINDOW, level="WARN")["total"] == 1
    assert logs.call("logs.search", **WINDOW, text="SLOW")["total"] == 1
    assert logs.call("logs.counts", **WINDOW, group_by="level", step_s=60)["buckets"] == [
        {"ts": "2026-02-15T11:00:00Z", "level": "INFO", "count": 2},
        {"ts": "2026-02-15T11:00:00Z", "level": "WARN", "count": 1}]


# ---------------------------------------------------------------- the stand-in is honest


def test_stand_in_refuses_what_it_does_not_know(fake: FakeLoki) -> None:
    for query, why in [('rate({a="b"}[1m])', "unexpected"), ('{a=~".*"}', "empty-compatible"),
                       ('{a="b"} | line_format "{{.x}}"', "unexpected"), ('{a="b"', "expecting"),
                       ('sum by (a) (count_over_time({a="b"}))', r"expecting \[")]:
        with pytest.raises(LogQLError, match=why):
            parse_logql(query)
    params = urlencode({"query": '{a="b"}', "limit": "6000"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{fake.url}/loki/api/v1/query_range?{params}", timeout=5)
    assert err.value.code == 400
    assert err.value.read().decode() == ("max entries limit per query exceeded, limit > max_entries_limit_per_query "
                                         "(6000 > 5000)")


# ---------------------------------------------------------------- end to end: MCP, gateway, two providers


def test_files_and_loki_together_through_mcp_and_the_gateway(tmp_path: Path, reference: WorldTools) -> None:
    from agents.gateway import open_gateway
    from agents.sources_gateway import gateway_config
    from store.sources_file import load_sources

    records = _records()
    services = sorted({r["service"] for r in records})
    on_files, on_loki = set(services[: len(services) // 2]), set(services[len(services) // 2:])
    folder = tmp_path / "logs"
    folder.mkdir()
    for svc in on_files:
        lines = [json.dumps({k: v for k, v in r.items() if k != "service"}) for r in records if r["service"] == svc]
        (folder / f"{svc}.jsonl").write_text("\n".join(lines) + "\n")
    fake = FakeLoki(max_entries=500).start()
    try:
        load(fake, [r for r in records if r["service"] in on_loki], level_label=True)
        path = tmp_path / "sources.yaml"
        path.write_text(yaml.safe_dump({"logs": [{"kind": "files", "path": "logs/{service}.jsonl"},
                                                 {"kind": "loki", "url": fake.url, "max_entries": 500}]}))
        with open_gateway(gateway_config(load_sources(path))) as gw:
            head = gw.call("logs.search", **WINDOW, limit=1)
            assert head["total"] == 3073
            got: list[dict[str, Any]] = []
            cursor = None
            while True:
                page = gw.call("logs.search", **WINDOW, limit=1000, cursor=cursor)
                got += page["lines"]
                cursor = page["next_cursor"]
                if not cursor:
                    break
            everything = reference.call("logs.search", **WINDOW, limit=500_000)["lines"]
            assert sorted(map(_key, got)) == sorted(map(_key, everything))
            warn = gw.call("logs.search", **WINDOW, levels=["WARN", "ERROR", "FATAL"], limit=500_000)
            assert sorted(map(_key, warn["lines"])) == sorted(map(_key, reference.call(
                "logs.search", **WINDOW, levels=["WARN", "ERROR", "FATAL"], limit=500_000)["lines"]))
            for group_by in ("service", "service,level"):
                merged = gw.call("logs.counts", **WINDOW, group_by=group_by, step_s=300)
                expected = reference.call("logs.counts", **WINDOW, group_by=group_by, step_s=300)
                assert sorted(map(_key, merged["buckets"])) == sorted(map(_key, expected["buckets"]))
            assert "missing_sources" not in merged
    finally:
        fake.stop()


def test_fine_steps_are_asked_in_chunks_loki_accepts(world_loki: FakeLoki, tmp_path: Path,
                                                     reference: WorldTools) -> None:
    logs = provider(tmp_path, url=world_loki.url)
    before = len(world_loki.requests)
    got = logs.call("logs.counts", **WINDOW, group_by="none", step_s=1)  # 14,400 buckets: two matrix queries
    assert got == reference.call("logs.counts", **WINDOW, group_by="none", step_s=1)
    steps = [r["params"]["step"] for r in world_loki.requests[before:] if "step" in r["params"]]
    assert steps == ["1", "1"]


def test_without_start_the_window_is_the_lookback(fake: FakeLoki, tmp_path: Path) -> None:
    import time

    doc = parse_sources({"window": {"lookback": "2h"}, "logs": [{"kind": "loki", "url": fake.url}]},
                        base_dir=tmp_path)
    logs = build_provider(doc.entries[0], doc)
    now_ns = time.time_ns()
    fake.push({"service": "api"}, [(now_ns - 3 * 3600 * 10**9, "too old"), (now_ns - 60 * 10**9, "recent")])
    page = logs.call("logs.search")
    assert [x["message"] for x in page["lines"]] == ["recent"]
    asked = [r["params"] for r in fake.requests if r["path"] == "/loki/api/v1/query_range"][-1]
    assert abs(int(asked["end"]) - int(asked["start"]) - 2 * 3600 * 10**9) < 10**9


def test_a_slow_loki_gets_short_pages_within_the_call_budget(tmp_path: Path, reference: WorldTools) -> None:
    import time

    fake = FakeLoki(max_entries=500).start()
    try:
        load(fake, _records(), level_label=True)
        logs = provider(tmp_path, url=fake.url, max_entries=500, timeout_s=0.5)
        logs.level_mode()
        fake.delay_s = 0.2  # every answer takes 0.2 s: seven pages would take 1.4 s
        got: list[dict[str, Any]] = []
        cursor, calls = None, 0
        while True:
            began = time.monotonic()
            page = logs.call("logs.search", **WINDOW, limit=500_000, cursor=cursor)
            assert time.monotonic() - began < 2 * 0.5 + 0.3  # about two timeouts at most (the gateway's bound)
            assert page["total"] == 3073 and "truncated" not in page
            got += page["lines"]
            calls += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert calls > 1
        assert sorted(map(_key, got)) == sorted(map(_key, reference.call("logs.search", **WINDOW,
                                                                         limit=500_000)["lines"]))
        fake.delay_s = 0.3
        began = time.monotonic()
        counts = logs.call("logs.counts", start="2026-02-15T10:00:30Z", end="2026-02-15T13:59:30Z", step_s=60)
        assert time.monotonic() - began < 0.75  # three matrix queries at once, not 0.9 s one after another
        assert counts == reference.call("logs.counts", start="2026-02-15T10:00:30Z", end="2026-02-15T13:59:30Z",
                                        step_s=60)
    finally:
        fake.delay_s = 0.0
        fake.stop()
