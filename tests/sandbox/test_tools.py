"""sandbox.tools.WorldTools: every capability answered per docs/contracts.md, checked against the raw files."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter

import pytest

from sandbox.errors import NotFoundError, ToolArgumentError
from sandbox.tools import SOURCES, WorldTools
from tests.paths import SHARED

EXAMPLE = (SHARED / "worlds/example-1")
RANK = {"DEBUG": 0, "INFO": 1, "WARN": 2, "ERROR": 3, "FATAL": 4}


def _raw(name: str) -> list[dict]:
    return [json.loads(line) for line in (EXAMPLE / name).read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def tools() -> WorldTools:
    return WorldTools(EXAMPLE)


def _epoch(ts: str) -> float:
    return dt.datetime.fromisoformat(ts).timestamp()


def test_capabilities_cover_the_contract_and_the_servers(tools):
    assert tools.capabilities() == sorted(
        ["world.describe", "logs.search", "logs.counts", "metrics.list", "metrics.series", "changes.list",
         "tickets.get", "tickets.search", "alerts.list", "alerts.get", "chat.search", "topology.get"])
    assert sorted(c for caps in SOURCES.values() for c in caps) == tools.capabilities()


def test_logs_search_filters_match_a_brute_force_scan(tools):
    raw = _raw("logs.jsonl")
    start, end = "2026-02-15T12:00:00Z", "2026-02-15T12:30:00Z"
    expected = [r for r in raw if r["service"] == "gateway" and RANK[r["level"]] >= RANK["WARN"]
                and _epoch(start) <= _epoch(r["ts"]) < _epoch(end)]
    got = tools.call("logs.search", service="gateway", level="WARN", start=start, end=end, limit=100000)
    assert got["total"] == len(expected) > 0
    assert got["next_cursor"] is None
    assert [(line["ts"], line["message"]) for line in got["lines"]] == [(r["ts"], r["message"]) for r in expected]


def test_logs_search_text_is_case_insensitive_and_levels_exact(tools):
    raw = _raw("logs.jsonl")
    needle = "CONNECTION"
    expected = [r for r in raw if needle.lower() in r["message"].lower() and r["level"] in ("ERROR", "FATAL")]
    got = tools.call("logs.search", text=needle, levels=["ERROR", "FATAL"], limit=500000)
    assert got["total"] == len(expected) > 0
    assert all(line["level"] in ("ERROR", "FATAL") for line in got["lines"])


def test_logs_search_pages_cover_every_line_once(tools):
    total = len(_raw("logs.jsonl"))
    seen, cursor, pages = [], None, 0
    while True:
        page = tools.call("logs.search", limit=700, cursor=cursor)
        assert page["total"] == total
        seen.extend((line["ts"], line["service"], line["message"]) for line in page["lines"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == -(-total // 700)
    assert len(seen) == total
    assert seen == [(line["ts"], line["service"], line["message"])
                    for line in tools.call("logs.search", limit=500000)["lines"]]


@pytest.mark.parametrize(("args", "message"), [
    ({"limit": 0}, "'limit' 0 is out of range; use 1..500000"),
    ({"limit": 500001}, "out of range"),
    ({"limit": "ten"}, "'limit' must be an integer"),
    ({"cursor": "abc"}, "'cursor' 'abc' is not one we issued"),
    ({"level": "LOUD"}, "'level' 'LOUD' is not a level; use one of DEBUG/INFO/WARN/ERROR/FATAL"),
    ({"start": "yesterday"}, "'start' 'yesterday' is not an ISO-8601 time"),
    ({"colour": "red"}, "unknown argument(s) colour; allowed:"),
])
def test_logs_search_bad_arguments_are_refused_clearly(tools, args, message):
    with pytest.raises(ToolArgumentError) as info:
        tools.call("logs.search", **args)
    assert message in str(info.value)
    assert str(info.value).startswith("logs.search:")


def test_logs_counts_add_up_and_align_to_the_step(tools):
    raw = _raw("logs.jsonl")
    got = tools.call("logs.counts", level="ERROR", step_s=300, group_by="service,level")
    assert got["step_s"] == 300
    expected = Counter()
    for r in raw:
        if RANK[r["level"]] >= RANK["ERROR"]:
            bucket = int(_epoch(r["ts"]) // 300 * 300)
            expected[(bucket, r["service"], r["level"])] += 1
    assert {(int(_epoch(b["ts"])), b["service"], b["level"]): b["count"] for b in got["buckets"]} == expected
    assert [b["ts"] for b in got["buckets"]] == sorted(b["ts"] for b in got["buckets"])
    by_level = tools.call("logs.counts", group_by="level")["buckets"]
    assert sum(b["count"] for b in by_level) == len(raw)
    assert all("service" not in b for b in by_level)
    with pytest.raises(ToolArgumentError, match="'group_by' 'host' unknown"):
        tools.call("logs.counts", group_by="host")


def test_metrics_list_and_series(tools):
    raw = _raw("metrics.jsonl")
    listed = tools.call("metrics.list", service="orders")["metrics"]
    expected = Counter(r["name"] for r in raw if r["service"] == "orders")
    assert {m["name"]: m["samples"] for m in listed} == dict(expected)
    series = tools.call("metrics.series", service="orders", name="error_rate",
                        start="2026-02-15T12:00:00Z", end="2026-02-15T12:10:00Z")["series"]
    assert len(series) == 1
    points = [[r["ts"], r["value"]] for r in raw if r["service"] == "orders" and r["name"] == "error_rate"
              and "2026-02-15T12:00:00Z" <= r["ts"] < "2026-02-15T12:10:00Z"]
    assert series[0]["points"] == points and len(points) == 10


def test_changes_alerts_tickets_chat_topology_describe(tools):
    changes = tools.call("changes.list", kind="deploy")["changes"]
    assert changes and all(c["kind"] == "deploy" for c in changes)
    assert {"id", "ts", "kind", "service", "author", "summary", "details"} <= set(changes[0])
    assert len(tools.call("changes.list")["changes"]) == len(_raw("changes.jsonl"))
    assert tools.call("alerts.get", id="pd-8240")["service"] == "orders"
    assert [a["id"] for a in tools.call("alerts.list", service="notifications")["alerts"]] == ["pd-7871"]
    assert tools.call("tickets.get", key="sched-57756")["key"] == "SCHED-57756"
    assert len(tools.call("tickets.search", text="ERRORS SINCE", labels=["auto-investigate"])["tickets"]) == 1
    assert tools.call("tickets.search", labels=["no-such-label"])["tickets"] == []
    assert len(tools.call("chat.search", channel="orders-alerts", text="firing")["messages"]) == 1
    assert tools.call("topology.get")["services"][0]["name"] == "orders"
    assert tools.call("world.describe") == {"name": "example-1", "trigger": {"alert": "pd-8240"},
                                            "window": {"start": "2026-02-15T11:00:00Z", "end": "2026-02-15T13:00:00Z"}}


def test_unknown_keys_and_capabilities_are_errors(tools):
    with pytest.raises(NotFoundError, match="no ticket 'NOPE-1' in this world; find keys with tickets.search"):
        tools.call("tickets.get", key="NOPE-1")
    with pytest.raises(NotFoundError, match="no alert"):
        tools.call("alerts.get", id="pd-0")
    with pytest.raises(ToolArgumentError, match="'key' is required"):
        tools.call("tickets.get")
    with pytest.raises(ToolArgumentError, match="unknown capability 'logs.grep'; use one of"):
        tools.call("logs.grep")


def test_results_are_fresh_copies(tools):
    first = tools.call("logs.search", limit=1)
    first["lines"][0]["message"] = "changed"
    assert tools.call("logs.search", limit=1)["lines"][0]["message"] != "changed"
    change = tools.call("changes.list")["changes"][0]
    change["details"]["key"] = "changed"
    assert tools.call("changes.list")["changes"][0]["details"].get("key") != "changed"


def test_call_json_is_compact_and_equal_to_call(tools):
    text = tools.call_json("alerts.list")
    assert text == json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)  # no whitespace
    assert json.loads(text) == tools.call("alerts.list")


def test_world_without_sources_answers_empty_lists(tmp_path):
    (tmp_path / "world.yaml").write_text(
        "name: bare\nwindow: {start: 2026-02-20T06:00:00Z, end: 2026-02-20T10:00:00Z}\ntrigger: {text: x}\n")
    bare = WorldTools(tmp_path)
    assert bare.call("logs.search") == {"lines": [], "next_cursor": None, "total": 0}
    assert bare.call("logs.counts") == {"step_s": 60, "buckets": []}
    assert bare.call("logs.search", service="nobody")["total"] == 0
    for cap, key in [("metrics.list", "metrics"), ("metrics.series", "series"), ("changes.list", "changes"),
                     ("alerts.list", "alerts"), ("tickets.search", "tickets"), ("chat.search", "messages"),
                     ("topology.get", "services")]:
        assert bare.call(cap) == {key: []}


def test_log_pages_are_written_by_orjson_as_json_would(tools, monkeypatch):
    """A logs.search page is written by orjson (the in-process MCP servers send megabytes of them), with the
    very text json.dumps writes; what orjson refuses (a lone surrogate) is written by json."""
    import orjson

    calls: list[int] = []
    real = orjson.dumps
    monkeypatch.setattr(orjson, "dumps", lambda obj: (calls.append(1), real(obj))[1])
    text = tools.call_json("logs.search", limit=5000)
    assert calls
    assert text == json.dumps(tools.call("logs.search", limit=5000), separators=(",", ":"), ensure_ascii=False)
    from sandbox.tools import _dumps_lines

    odd = {"lines": [{"message": "bad \ud800 half", "ts": "2026-02-20T07:00:00Z"}], "total": 1, "next_cursor": None}
    assert _dumps_lines(odd) == json.dumps(odd, separators=(",", ":"), ensure_ascii=False)
