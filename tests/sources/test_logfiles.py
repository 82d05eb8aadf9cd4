"""The ``files`` logs provider against the reference implementation (WorldTools) and bad files.

The example world's logs.jsonl is split into one file per service (``{service}.jsonl``) and read
back through the provider: every answer must equal WorldTools' on the same world. Then other
field names, text lines, malformed lines, missing paths and the reading bounds.
"""

from __future__ import annotations

import gzip
import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from sandbox.errors import ToolArgumentError
from sandbox.tools import WorldTools
from sources.errors import SourceError
from sources.logfiles import FileLogsProvider
from sources.registry import build_provider
from store.errors import ConfigError
from store.sources_file import parse_sources
from tests.paths import SHARED

EXAMPLE = SHARED / "worlds/example-1"
WINDOW = {"start": "2026-02-15T10:00:00Z", "end": "2026-02-15T14:00:00Z"}

#: Argument sets that the engine and agents use: filters alone and combined, sub-windows, odd steps.
SEARCHES: list[dict[str, Any]] = [
    {},
    {"service": "checkout"},
    {"level": "WARN"},
    {"level": "error"},
    {"levels": ["WARN", "ERROR", "FATAL"]},
    {"levels": ["DEBUG", "INFO"], "service": "gateway"},
    {"text": "SLOW"},
    {"text": "checkout"},
    {"text": "slow", "level": "WARN", "service": "checkout"},
    {"start": "2026-02-15T11:10:30Z", "end": "2026-02-15T11:31:10Z"},
    {"start": "2026-02-15T11:10:30Z", "end": "2026-02-15T11:31:10Z", "levels": "ERROR,FATAL"},
    {"service": "no-such-service"},
]


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _key(line: dict[str, Any]) -> str:
    return json.dumps(line, sort_keys=True)


def provider(tmp_path: Path, **entry: Any) -> FileLogsProvider:
    """The provider of a one-entry sources file whose folder is ``tmp_path``."""
    doc = parse_sources({"logs": [{"kind": "files", **entry}]}, base_dir=tmp_path)
    built = build_provider(doc.entries[0], doc)
    assert isinstance(built, FileLogsProvider)
    return built


@pytest.fixture(scope="module")
def reference() -> WorldTools:
    return WorldTools(EXAMPLE)


@pytest.fixture
def split(tmp_path: Path) -> Path:
    """The example world's log lines, one file per service, without the (implied) service field."""
    by_service: dict[str, list[str]] = defaultdict(list)
    for rec in _lines(EXAMPLE / "logs.jsonl"):
        svc = rec.pop("service")
        by_service[svc].append(json.dumps(rec))
    folder = tmp_path / "logs"
    folder.mkdir()
    for svc, lines in by_service.items():
        (folder / f"{svc}.jsonl").write_text("\n".join(lines) + "\n")
    return folder


# ---------------------------------------------------------------- parity with WorldTools


@pytest.mark.parametrize("args", SEARCHES, ids=lambda a: ",".join(f"{k}={v}" for k, v in a.items()) or "all")
def test_search_and_counts_equal_worldtools(split: Path, tmp_path: Path, reference: WorldTools,
                                            args: dict[str, Any]) -> None:
    logs = provider(tmp_path, path="logs/{service}.jsonl")
    full = {**WINDOW, **args}
    mine = logs.call("logs.search", **full, limit=500_000)
    theirs = reference.call("logs.search", **full, limit=500_000)
    assert mine["total"] == theirs["total"]
    assert mine["next_cursor"] is None and "truncated" not in mine
    # Equal times keep each file's order, so only lines of one second may differ in order.
    assert [line["ts"] for line in mine["lines"]] == [line["ts"] for line in theirs["lines"]]
    assert sorted(map(_key, mine["lines"])) == sorted(map(_key, theirs["lines"]))
    assert logs.call("logs.search", **full, limit=1)["total"] == theirs["total"]
    for group_by in ("service", "level", "service,level", "none"):
        for step_s in (60, 7, 3600):
            assert logs.call("logs.counts", **full, group_by=group_by, step_s=step_s) == reference.call(
                "logs.counts", **full, group_by=group_by, step_s=step_s), (group_by, step_s)


def test_paging_with_cursors_walks_every_line_once(split: Path, tmp_path: Path, reference: WorldTools) -> None:
    logs = provider(tmp_path, path="logs/{service}.jsonl")
    mine, theirs = [], []
    cursor_a = cursor_b = None
    while True:
        a = logs.call("logs.search", **WINDOW, limit=1000, cursor=cursor_a)
        b = reference.call("logs.search", **WINDOW, limit=1000, cursor=cursor_b)
        assert a["total"] == b["total"] == 3073
        assert [x["ts"] for x in a["lines"]] == [x["ts"] for x in b["lines"]]
        mine += a["lines"]
        theirs += b["lines"]
        cursor_a, cursor_b = a["next_cursor"], b["next_cursor"]
        assert (cursor_a is None) == (cursor_b is None)
        if cursor_a is None:
            break
    assert len(mine) == 3073
    assert sorted(map(_key, mine)) == sorted(map(_key, theirs))
    with pytest.raises(ToolArgumentError, match="cursor"):
        logs.call("logs.search", limit=10, cursor="not-ours")


def test_one_file_of_many_services_is_the_world_exactly(tmp_path: Path, reference: WorldTools) -> None:
    (tmp_path / "all.jsonl").write_text((EXAMPLE / "logs.jsonl").read_text())
    logs = provider(tmp_path, path="all.jsonl")
    for args in SEARCHES[:6]:
        assert logs.call("logs.search", **args, limit=500_000) == reference.call("logs.search", **args, limit=500_000)
    assert logs.call("logs.counts", group_by="service,level") == reference.call("logs.counts", group_by="service,level")
    assert logs.check() == "1 files, 8 services, 3073 lines"


# ---------------------------------------------------------------- other shapes


def test_other_field_names_nested_fields_epoch_times_and_level_spellings(tmp_path: Path) -> None:
    rows = [
        {"@timestamp": 1771153200123, "severity": "warning", "msg": "disk 91% full", "svc": "db",
         "kubernetes": {"pod": "db-0"}, "trace": "t-1"},
        {"@timestamp": "2026-02-15T13:00:01+02:00", "severity": "CRITICAL", "msg": "primary lost", "svc": "db"},
        {"@timestamp": 1771153202, "severity": "err", "msg": {"code": 7}, "svc": "api"},
        {"@timestamp": "2026-02-15 11:00:03,250", "severity": "notice", "msg": "ok", "svc": "api"},
        {"@timestamp": "2026-02-15T11:00:04Z", "msg": "no level at all", "svc": "api"},
    ]
    (tmp_path / "app.log").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    logs = provider(tmp_path, path="app.log", fields={"ts": "@timestamp", "level": "severity", "message": "msg",
                                                       "service": "svc", "host": "kubernetes.pod",
                                                       "trace_id": "trace"})
    got = logs.call("logs.search")["lines"]
    assert got == [
        {"ts": "2026-02-15T11:00:00.123Z", "service": "db", "level": "WARN", "message": "disk 91% full",
         "host": "db-0", "trace_id": "t-1"},
        {"ts": "2026-02-15T11:00:01Z", "service": "db", "level": "FATAL", "message": "primary lost"},
        {"ts": "2026-02-15T11:00:02Z", "service": "api", "level": "ERROR", "message": '{"code": 7}'},
        {"ts": "2026-02-15T11:00:03.25Z", "service": "api", "level": "INFO", "message": "ok"},
        {"ts": "2026-02-15T11:00:04Z", "service": "api", "level": "INFO", "message": "no level at all"},
    ]
    assert logs.call("logs.search", level="ERROR")["total"] == 2
    assert logs.call("logs.counts", group_by="level", step_s=3600)["buckets"] == [
        {"ts": "2026-02-15T11:00:00Z", "level": "ERROR", "count": 1},
        {"ts": "2026-02-15T11:00:00Z", "level": "FATAL", "count": 1},
        {"ts": "2026-02-15T11:00:00Z", "level": "INFO", "count": 2},
        {"ts": "2026-02-15T11:00:00Z", "level": "WARN", "count": 1},
    ]


def test_text_lines_default_pattern_and_own_pattern(tmp_path: Path) -> None:
    folder = tmp_path / "text"
    folder.mkdir()
    (folder / "payments.log").write_text(
        "2026-02-20T08:00:01Z ERROR card declined for order 17\n"
        "2026-02-20T08:00:02.500Z [WARN] retrying gateway call\n"
        "2026-02-20 08:00:03+00:00 warning: slow response 2300ms\n"
        "2026-02-20T08:00:04Z INFO   all good\n"
    )
    logs = provider(tmp_path, path="text/{service}.log", format="text")
    got = logs.call("logs.search")
    assert got["total"] == 4
    assert [(x["ts"], x["service"], x["level"], x["message"]) for x in got["lines"]] == [
        ("2026-02-20T08:00:01Z", "payments", "ERROR", "card declined for order 17"),
        ("2026-02-20T08:00:02.500Z", "payments", "WARN", "retrying gateway call"),
        ("2026-02-20T08:00:03Z", "payments", "WARN", "slow response 2300ms"),
        ("2026-02-20T08:00:04Z", "payments", "INFO", "all good"),
    ]
    (folder / "orders.log").write_text(
        "2026-02-20T08:00:01Z ERROR payment failed\n"
        "java.lang.IllegalStateException: pool exhausted\n"
        "\tat com.shop.Pool.take(Pool.java:42)\n"
        "2026-02-20T08:00:02Z INFO recovered\n"
    )
    traces = logs.call("logs.search", service="orders")["lines"]
    assert [x["message"] for x in traces] == [
        "payment failed\njava.lang.IllegalStateException: pool exhausted\n\tat com.shop.Pool.take(Pool.java:42)",
        "recovered"]
    single = provider(tmp_path, path="text/{service}.log", format="text", multiline=False)
    assert single.call("logs.search", service="orders")["total"] == 2
    assert "2 lines skipped" in single.check()
    (tmp_path / "mixed.log").write_text(
        "ts=2026-02-20T08:00:01Z svc=cart lvl=E host=cart-1 some failure\n"
        "ts=2026-02-20T08:00:02Z svc=api lvl=W host=api-2 something odd\n"
    )
    own = provider(tmp_path, path="mixed.log", format="text",
                   pattern=r"ts=(?P<ts>\S+) svc=(?P<service>\S+) lvl=(?P<level>\S+) host=(?P<host>\S+) (?P<message>.*)")
    lines = own.call("logs.search", service="cart")["lines"]
    assert lines == [{"ts": "2026-02-20T08:00:01Z", "service": "cart", "level": "INFO", "message": "some failure",
                      "host": "cart-1"}]


def test_malformed_lines_are_skipped_and_a_wrong_format_is_named(tmp_path: Path) -> None:
    good = [json.dumps({"ts": f"2026-02-20T08:00:0{i}Z", "level": "INFO", "message": f"m{i}"}) for i in range(6)]
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "web.jsonl").write_text("\n".join([good[0], "{broken", good[1], "not json at all", *good[2:]]))
    logs = provider(tmp_path, path="logs/{service}.jsonl")
    assert logs.call("logs.search")["total"] == 6
    assert logs.check() == "1 files, 1 services, 6 lines (2 lines skipped: not json)"

    (tmp_path / "plain.log").write_text("\n".join(f'Feb 20 08:00:0{i} web[1]: "quoted" \x1b[31mred\x1b[0m'
                                                  for i in range(5)) + "\n")
    wrong = provider(tmp_path, path="plain.log", service="web")
    with pytest.raises(SourceError) as err:
        wrong.call("logs.search")
    text = str(err.value)
    assert "plain.log" in text and "5 of 5 lines" in text and "line 1:" in text
    assert "\\x1b[31mred" in text  # the bad line quoted, escaped
    assert "format: text" in text and "logs[0]" in text
    text_wrong = provider(tmp_path, path="plain.log", service="web", format="text")
    with pytest.raises(SourceError, match="do not match the pattern"):
        text_wrong.call("logs.counts")


def test_missing_folder_file_and_service(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"folder .*/nowhere does not exist; check logs\[0\]\.path"):
        provider(tmp_path, path="nowhere/{service}.jsonl").call("logs.search")
    with pytest.raises(SourceError, match=r"files .*/gone\.jsonl: no such file"):
        provider(tmp_path, path="gone.jsonl").call("logs.search")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no file matches"):
        provider(tmp_path, path="empty/{service}.jsonl").check()
    (tmp_path / "empty" / "a.jsonl").write_text(json.dumps({"ts": "2026-02-20T08:00:00Z", "message": "x"}) + "\n")
    logs = provider(tmp_path, path="empty/{service}.jsonl")
    assert logs.call("logs.search", service="b") == {"lines": [], "next_cursor": None, "total": 0}
    assert logs.call("logs.search", service="../empty/a")["total"] == 0  # a service is a name, never a path


def test_bad_settings_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"logs\[0\]\.path: required"):
        provider(tmp_path)
    with pytest.raises(ConfigError, match="format: 'xml' unknown"):
        provider(tmp_path, path="a.log", format="xml")
    with pytest.raises(ConfigError, match="needs the named group"):
        provider(tmp_path, path="a.log", format="text", pattern=r"(?P<ts>\S+) (?P<msg>.*)")
    with pytest.raises(ConfigError, match="not a regex"):
        provider(tmp_path, path="a.log", format="text", pattern="(?P<ts>")
    with pytest.raises(ConfigError, match="fields: unknown key"):
        provider(tmp_path, path="a.log", fields={"timestamp": "t"})


# ---------------------------------------------------------------- bounds, caching, rotation


def test_max_lines_truncates_and_says_so(split: Path, tmp_path: Path, reference: WorldTools) -> None:
    logs = provider(tmp_path, path="logs/{service}.jsonl", max_lines=1000)
    got = logs.call("logs.search", limit=500_000)
    assert got["total"] == 1000
    assert got["truncated"].endswith("(max_lines 1000 per query); narrow the window or raise logs[0].max_lines")
    assert "read only part of " in got["truncated"]
    counts = logs.call("logs.counts", group_by="none", step_s=86400)
    assert counts["buckets"][0]["count"] == 1000 and "truncated" in counts


def test_max_bytes_enters_a_big_file_at_the_window(tmp_path: Path, reference: WorldTools) -> None:
    source = EXAMPLE / "logs.jsonl"
    (tmp_path / "all.jsonl").write_text(source.read_text())
    size = source.stat().st_size
    logs = provider(tmp_path, path="all.jsonl", max_bytes=size // 4)
    window = {"start": "2026-02-15T11:20:00Z", "end": "2026-02-15T11:25:00Z"}
    got = logs.call("logs.search", **window, limit=500_000)
    assert got["lines"] == reference.call("logs.search", **window, limit=500_000)["lines"]
    assert got["total"] > 0 and "truncated" not in got
    wide = logs.call("logs.search", start="2026-02-15T11:00:00Z", limit=500_000)
    assert "max_bytes" in wide["truncated"]
    assert 0 < wide["total"] < 3073


def test_index_is_cached_until_the_file_changes(split: Path, tmp_path: Path) -> None:
    logs = provider(tmp_path, path="logs/{service}.jsonl")
    logs.call("logs.search", service="checkout", limit=1)
    cached = dict(logs._files)
    logs.call("logs.counts", service="checkout")
    assert dict(logs._files) == cached  # same keys, same index objects: nothing re-read
    path = split / "checkout.jsonl"
    first = logs._latest[str(path)].lines[0]
    with path.open("a") as fh:  # a live log grows: only the new lines are read
        fh.write(json.dumps({"ts": "2026-02-15T13:59:59Z", "level": "FATAL", "message": "appended"}) + "\n")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    got = logs.call("logs.search", service="checkout", level="FATAL", limit=5)
    assert got["lines"][-1]["message"] == "appended"
    assert logs._latest[str(path)].lines[0] is first and len(logs._latest[str(path)].lines) == 447
    # truncated and rewritten longer (copytruncate): read again from the start
    path.write_text("\n".join(json.dumps({"ts": "2026-02-15T12:00:00Z", "level": "WARN", "message": f"new {i}"})
                              for i in range(2000)) + "\n")
    assert logs.call("logs.search", service="checkout", limit=1)["total"] == 2000


def test_rotated_files_are_read_when_asked(tmp_path: Path) -> None:
    folder = tmp_path / "rot"
    folder.mkdir()

    def line(ts: str, msg: str) -> str:
        return json.dumps({"ts": ts, "level": "INFO", "message": msg}) + "\n"
    (folder / "api.jsonl").write_text(line("2026-02-20T08:00:03Z", "current"))
    (folder / "api.jsonl.1").write_text(line("2026-02-20T08:00:02Z", "yesterday"))
    with gzip.open(folder / "api.jsonl.2.gz", "wt") as gz:
        gz.write(line("2026-02-20T08:00:01Z", "older"))
    plain = provider(tmp_path, path="rot/{service}.jsonl")
    assert [x["message"] for x in plain.call("logs.search")["lines"]] == ["current"]
    rotated = provider(tmp_path, path="rot/{service}.jsonl", rotated=True)
    assert [x["message"] for x in rotated.call("logs.search", service="api")["lines"]] == ["older", "yesterday",
                                                                                           "current"]
