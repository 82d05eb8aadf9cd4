"""sandbox.world: loading incident worlds, tolerating what the spec allows, refusing bad files clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sandbox.errors import WorldError
from sandbox.world import MAX_MESSAGE_CHARS, load_world, load_world_meta
from tests.paths import SHARED

EXAMPLE = (SHARED / "worlds/example-1")

WORLD_YAML = "name: tiny\nwindow: {start: 2026-02-20T06:00:00Z, end: 2026-02-20T10:00:00Z}\ntrigger: {text: boom}\n"


def _world(tmp_path: Path, world_yaml: str = WORLD_YAML, **files: str) -> Path:
    (tmp_path / "world.yaml").write_text(world_yaml)
    for name, text in files.items():
        (tmp_path / name.replace("_jsonl", ".jsonl").replace("_yaml", ".yaml")).write_text(text)
    return tmp_path


def _lines(*records: dict) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def test_example_world_loads_every_source_sorted_and_indexed():
    world = load_world(EXAMPLE)
    raw_logs = [json.loads(line) for line in (EXAMPLE / "logs.jsonl").read_text().splitlines() if line.strip()]
    assert world.name == "example-1"
    assert world.trigger == {"alert": "pd-8240"}
    assert world.window == {"start": "2026-02-15T11:00:00Z", "end": "2026-02-15T13:00:00Z"}
    assert len(world.logs.lines) == len(raw_logs)
    assert world.logs.times == sorted(world.logs.times)
    assert sum(len(idx.lines) for idx in world.logs_by_service.values()) == len(raw_logs)
    assert {line["service"] for line in world.logs_by_service["gateway"].lines} == {"gateway"}
    assert len(world.topology) == 10 and world.topology[0]["calls"] == ["calendar", "checkout", "geo"]
    assert sum(len(s.points) for s in world.metrics.values()) == 4800
    assert [c["id"] for c in world.changes][:2] == ["chg-8646", "chg-5852"]


def test_meta_reads_only_world_yaml(tmp_path):
    _world(tmp_path, logs_jsonl="this is not json\n")  # a broken source must not matter to the meta
    meta = load_world_meta(tmp_path)
    assert meta == {"name": "tiny", "window": {"start": "2026-02-20T06:00:00Z", "end": "2026-02-20T10:00:00Z"},
                    "trigger": {"text": "boom"}, "domain": None}


def test_missing_sources_are_empty_and_unknown_keys_ignored(tmp_path):
    world_yaml = WORLD_YAML + "domain: Payments\nfuture_key: 1\n"
    _world(tmp_path, world_yaml, chat_jsonl="", logs_jsonl=_lines(
        {"ts": "2026-02-20T07:00:00Z", "service": "ghost", "level": "INFO", "message": "m", "colour": "red"}))
    world = load_world(tmp_path)
    assert world.domain == "Payments"
    assert world.tickets == [] and world.alerts == [] and world.chat == [] and world.topology == []
    assert world.metrics == {}
    # A service absent from the topology is kept; the unknown key is dropped from the served line.
    assert world.logs.lines == [{"ts": "2026-02-20T07:00:00Z", "service": "ghost", "level": "INFO", "message": "m"}]


def test_unsorted_lines_are_sorted_and_odd_times_normalised(tmp_path):
    _world(tmp_path, logs_jsonl=_lines(
        {"ts": "2026-02-20T08:00:00Z", "service": "a", "level": "warning", "message": "late"},
        {"ts": "2026-02-20T07:00:00+00:00", "service": "a", "level": "INFO", "message": "early"},
        {"ts": "2026-02-20T07:30:00.250", "service": "b", "level": "ERROR", "message": "middle"},
    ) + "\n\n")
    world = load_world(tmp_path)
    assert [line["message"] for line in world.logs.lines] == ["early", "middle", "late"]
    assert [line["ts"] for line in world.logs.lines] == [
        "2026-02-20T07:00:00Z", "2026-02-20T07:30:00.25Z", "2026-02-20T08:00:00Z"]
    assert world.logs.lines[2]["level"] == "WARN"


def test_huge_message_is_kept_but_truncated(tmp_path):
    big = "x" * (MAX_MESSAGE_CHARS + 5000)
    _world(tmp_path, logs_jsonl=_lines({"ts": "2026-02-20T07:00:00Z", "service": "a", "level": "INFO", "message": big}))
    message = load_world(tmp_path).logs.lines[0]["message"]
    assert message.startswith("x" * MAX_MESSAGE_CHARS) and message.endswith("[truncated 5000 chars]")


@pytest.mark.parametrize(("world_yaml", "expected"), [
    ("name: x\nwindow: {start: 2026-02-20T06:00:00Z, end: 2026-02-20T10:00:00Z}\n",
     "world.yaml: missing 'trigger' (exactly one of ticket/alert/text)"),
    ("name: x\nwindow: {start: 2026-02-20T06:00:00Z, end: 2026-02-20T10:00:00Z}\ntrigger: {ticket: A-1, text: t}\n",
     "world.yaml: 'trigger' must hold exactly one of ticket/alert/text"),
    ("name: x\ntrigger: {text: t}\n", "world.yaml: missing 'window'"),
    ("name: x\nwindow: {start: soon, end: later}\ntrigger: {text: t}\n", "world.yaml: bad 'window' time"),
    ("name: x\nwindow: {start: 2026-02-20T10:00:00Z, end: 2026-02-20T06:00:00Z}\ntrigger: {text: t}\n",
     "world.yaml: 'window' end is not after start"),
    ("name: [x\n", "world.yaml:2:"),
    ("- just a list\n", "world.yaml: expected a mapping"),
])
def test_bad_world_yaml_names_the_problem(tmp_path, world_yaml, expected):
    _world(tmp_path, world_yaml)
    with pytest.raises(WorldError) as info:
        load_world(tmp_path)
    assert str(info.value).startswith(expected)
    assert "\n" not in str(info.value)


def test_missing_world_yaml_and_missing_directory(tmp_path):
    with pytest.raises(WorldError, match=r"world.yaml: not found in .*needs a world.yaml"):
        load_world(tmp_path)
    with pytest.raises(WorldError, match="not a directory"):
        load_world_meta(tmp_path / "nope")


GOOD = {"ts": "2026-02-20T07:00:00Z", "service": "a", "level": "INFO", "message": "ok"}


@pytest.mark.parametrize(("filename", "bad_line", "expected"), [
    ("logs.jsonl", '{"ts": "2026-02-20T07:00:00Z", "service": ', "logs.jsonl:3: not valid JSON"),
    ("logs.jsonl", "[1, 2]", "logs.jsonl:3: expected a JSON object per line"),
    ("logs.jsonl", json.dumps({"service": "a", "level": "INFO", "message": "m"}), "logs.jsonl:3: missing 'ts'"),
    ("logs.jsonl", json.dumps({**GOOD, "ts": "yesterday"}), "logs.jsonl:3: bad 'ts' 'yesterday'; use ISO-8601"),
    ("logs.jsonl", json.dumps({**GOOD, "level": "LOUD"}), "logs.jsonl:3: unknown level 'LOUD'"),
    ("logs.jsonl", json.dumps({"ts": GOOD["ts"], "level": "INFO", "message": "m"}), "logs.jsonl:3: missing 'service'"),
    ("changes.jsonl", json.dumps({"ts": GOOD["ts"], "kind": "deploy"}), "changes.jsonl:3: missing 'id'"),
    ("metrics.jsonl", json.dumps({"ts": GOOD["ts"], "service": "a", "name": "cpu", "value": "hot"}),
     "metrics.jsonl:3: missing or bad 'value (a number)'"),
])
def test_bad_jsonl_line_is_named_with_its_line_number(tmp_path, filename, bad_line, expected):
    good = {"logs.jsonl": GOOD, "changes.jsonl": {"id": "c1", "ts": GOOD["ts"]},
            "metrics.jsonl": {"ts": GOOD["ts"], "service": "a", "name": "cpu", "value": 1}}[filename]
    _world(tmp_path)
    (tmp_path / filename).write_text(json.dumps(good) + "\n\n" + bad_line + "\n")  # line 2 is blank
    with pytest.raises(WorldError) as info:
        load_world(tmp_path)
    assert str(info.value).startswith(expected)


def test_bad_topology_is_refused(tmp_path):
    _world(tmp_path, topology_yaml="services:\n  - {calls: [b]}\n")
    with pytest.raises(WorldError, match=r"topology.yaml: services\[0\] has no 'name'"):
        load_world(tmp_path)


@pytest.mark.parametrize("body", [
    _lines(GOOD, {**GOOD, "service": "b", "message": "naïve ✓ 😀"}),  # the usual file: orjson reads it
    _lines(GOOD) + '{"ts": "2026-02-20T07:01:00Z", "service": "a", "level": "INFO", "message": "x", "n": NaN}\n',
    _lines(GOOD) + '{"ts": "2026-02-20T07:01:00Z", "service": "a", "level": "INFO", "message": "\\ud800"}\n',
    _lines(GOOD) + '{"ts": "2026-02-20T07:01:00Z", "service": "a", "level": "INFO", "message": "m", "n": 1' + "0" * 30 + "}\n",
    "\ufeff" + _lines(GOOD),  # a BOM: both parsers refuse it, the per-line pass names the line
    _lines(GOOD) + "\r\n" + _lines(GOOD),
])
def test_jsonl_reads_the_same_with_orjson_or_json(tmp_path, body, monkeypatch):
    """logs.jsonl is read by orjson when it can and by json otherwise, with the same records or error."""
    import orjson

    import sandbox.world as world_mod

    calls: list[int] = []
    real = orjson.loads
    monkeypatch.setattr(orjson, "loads", lambda data: (calls.append(1), real(data))[1])
    _world(tmp_path, logs_jsonl=body)
    try:
        lines: object = load_world(tmp_path).logs.lines
    except WorldError as exc:
        lines = str(exc)
    monkeypatch.setattr(world_mod, "_read_jsonl_fast", lambda path: None)
    try:
        expected: object = load_world(tmp_path).logs.lines
    except WorldError as exc:
        expected = str(exc)
    assert lines == expected
    assert calls  # orjson was asked first
