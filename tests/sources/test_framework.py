"""The real-source framework: sources.yaml validation, the gateway's fan-out and merge over real MCP
servers, partial failures named in missing_sources, live triggers, and the CLI as a new user meets it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agents.errors import ToolError
from agents.evidence.toolcall import safe_call
from agents.gateway import open_gateway
from agents.sources_gateway import gateway_config
from commands.errors import BadRequest
from commands.live import live_trigger
from sandbox.tools import WorldTools
from store.errors import ConfigError
from store.sources_file import load_sources, parse_sources
from tests.paths import ROOT as PROJECT_ROOT
from tests.paths import WORLDS

# ------------------------------------------------------------ sources.yaml


@pytest.mark.parametrize("doc, message", [
    ([1, 2], "expected a mapping of sections"),
    ({"metrix": [{"kind": "prometheus"}]}, "unknown section 'metrix'"),
    ({"metrics": [{"kind": "promtheus"}]}, "metrics[0].kind: 'promtheus' unknown"),
    ({"logs": [{"kind": "prometheus", "url": "http://x"}]}, "cannot stand under logs"),
    ({"logs": [{"path": "x"}]}, "expected a mapping with kind"),
    ({"changes": [{"kind": "github", "token": "ghp_plaintext"}]}, "changes[0].token: secrets are not written"),
    ({"metrics": [{"kind": "prometheus", "auth": {"password": "hunter2"}}]}, "auth.password: secrets are not"),
    ({}, "no sources"),
    ({"window": {"lookback": "soon"}, "topology": [{"kind": "file", "path": "t.yaml"}]}, "window.lookback"),
])
def test_a_wrong_sources_file_names_the_key_and_what_to_write(doc, message):
    with pytest.raises(ConfigError) as err:
        parse_sources(doc)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_sources_file_entries_refs_and_window(tmp_path):
    path = tmp_path / "sources.yaml"
    path.write_text("window: {lookback: 2h, lookahead: 15m}\n"
                    "logs:\n  - {kind: files, path: \"logs/{service}.jsonl\"}\n  - {kind: loki, name: prod-loki, url: http://l}\n"
                    "changes: {kind: events}\n")
    doc = load_sources(path)
    assert [e.ref for e in doc.entries] == ["logs.0", "logs.1", "changes.0"]
    assert doc.entry("logs.1").name == "prod-loki" and doc.entry("logs.1").settings == {"url": "http://l"}
    assert (doc.lookback_s, doc.lookahead_s) == (7200.0, 900.0)
    assert doc.resolve_path("logs/a.jsonl") == tmp_path / "logs" / "a.jsonl"
    with pytest.raises(ConfigError, match="no entry 'logs.7'; entries are logs.0, logs.1, changes.0"):
        doc.entry("logs.7")
    with pytest.raises(ConfigError, match="cannot read the sources file"):
        load_sources(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("metrics: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_sources(tmp_path / "bad.yaml")


# ------------------------------------------------------------ fan-out and merge through real MCP servers


def _two_topologies(tmp_path: Path, second: str | None) -> Path:
    (tmp_path / "a.yaml").write_text("services:\n  - {name: web, calls: [api]}\n  - {name: api, calls: [db]}\n")
    if second is not None:
        (tmp_path / "b.yaml").write_text(second)
    path = tmp_path / "sources.yaml"
    path.write_text("topology:\n  - {kind: file, path: a.yaml}\n  - {kind: file, name: discovered, path: b.yaml}\n")
    return path


def test_two_topology_sources_are_united(tmp_path):
    path = _two_topologies(tmp_path, "services:\n  - {name: api, calls: [cache, db]}\n  - {name: cache}\n")
    with open_gateway(gateway_config(load_sources(path))) as gw:
        got = gw.call("topology.get")
    assert got == {"services": [{"name": "web", "calls": ["api"]}, {"name": "api", "calls": ["db", "cache"]},
                                {"name": "cache", "calls": []}]}


def test_a_failing_source_is_named_and_the_others_still_answer(tmp_path):
    path = _two_topologies(tmp_path, None)  # b.yaml does not exist
    with open_gateway(gateway_config(load_sources(path))) as gw:
        got = gw.call("topology.get")
        assert [s["name"] for s in got["services"]] == ["web", "api"]
        assert len(got["missing_sources"]) == 1
        assert got["missing_sources"][0].startswith("topology-1-discovered (topology.get failed")
        assert "b.yaml" in got["missing_sources"][0]
        # The engine's defensive call records the note for the report.
        missing: list[str] = []
        safe_call(gw, "topology.get", missing, "topology")
        assert missing == got["missing_sources"]
        # A capability no source answers says so and what to add.
        with pytest.raises(ToolError, match="no source answers logs.search; add a source for its section"):
            gw.call("logs.search")


def test_every_source_failing_is_an_error_naming_each(tmp_path):
    path = tmp_path / "sources.yaml"
    path.write_text("topology:\n  - {kind: file, path: x.yaml}\n  - {kind: file, path: y.yaml}\n")
    with open_gateway(gateway_config(load_sources(path))) as gw, pytest.raises(ToolError) as err:
        gw.call("topology.get")
    assert "every source failed" in str(err.value) and "x.yaml" in str(err.value) and "y.yaml" in str(err.value)


def _two_worlds_config() -> dict:
    servers = {
        name: {"transport": "inprocess", "factory": "sandbox.servers:build_server",
               "kwargs": {"world_dir": str(WORLDS / world), "source": "observability"}}
        for name, world in (("one", "example-1"), ("two", "example-2"))
    }
    caps = {cap: [{"server": "one", "tool": cap.replace(".", "_")}, {"server": "two", "tool": cap.replace(".", "_")}]
            for cap in ("logs.search", "logs.counts", "metrics.list", "alerts.list")}
    return {"servers": servers, "capabilities": caps}


def test_paging_logs_over_two_sources_returns_every_line_once():
    one, two = WorldTools(WORLDS / "example-1"), WorldTools(WORLDS / "example-2")
    expected = one.call("logs.search", levels=["ERROR"], limit=500_000)["total"] + \
        two.call("logs.search", levels=["ERROR"], limit=500_000)["total"]
    with open_gateway(_two_worlds_config()) as gw:
        head = gw.call("logs.search", levels=["ERROR"], limit=1)
        assert head["total"] == expected
        seen, cursor, pages = [], None, 0
        while True:
            page = gw.call("logs.search", levels=["ERROR"], limit=200, cursor=cursor)
            seen.extend((ln["ts"], ln["service"], ln["message"]) for ln in page["lines"])
            pages += 1
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert pages > 1 and len(seen) == expected
        with pytest.raises(ToolError, match="not one we issued"):
            gw.call("logs.search", cursor="garbage")
        counts = gw.call("logs.counts", step_s=3600, group_by="level")
        total_by_level = sum(b["count"] for b in counts["buckets"] if b["level"] == "ERROR")
        assert total_by_level == expected


# ------------------------------------------------------------ live triggers


def test_live_trigger_window_and_time_rules():
    t = live_trigger(text="checkout is failing", at="2026-12-06T08:10:00+01:00", lookback_s=3600)
    assert t == {"text": "checkout is failing", "at": "2026-12-06T07:10:00Z", "lookback_s": 3600.0}
    t = live_trigger(ticket="PAY-1", start="2026-12-06T06:00:00Z", end="2026-12-06T07:00:00Z")
    assert t["window"] == {"start": "2026-12-06T06:00:00Z", "end": "2026-12-06T07:00:00Z"} and "at" not in t
    assert "at" in live_trigger(text="now")  # a free-text ask with no time happened now
    for kwargs, message in (({}, "exactly one of"), ({"text": "a", "alert": "b"}, "exactly one of"),
                            ({"text": "a", "start": "2026-12-06T06:00:00Z"}, "go together"),
                            ({"text": "a", "at": "yesterday"}, "not an ISO-8601 time"),
                            ({"text": "a", "start": "2026-12-06T07:00:00Z", "end": "2026-12-06T06:00:00Z"},
                             "not before")):
        with pytest.raises(BadRequest, match=message):
            live_trigger(**kwargs)


# ------------------------------------------------------------ the CLI, as a new user meets it


def _pm(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PM_", "DATABASE_URL", "REDIS_URL", "RABBITMQ_URL",
                                                                      "MCP_CONFIG", "JIRA_", "SLACK_"))}
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.integration
def test_cli_in_an_empty_directory_says_what_to_set(tmp_path):
    done = _pm("investigate", cwd=tmp_path)
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert "pass --world DIR" in done.stderr and "--sources sources.yaml" in done.stderr
    done = _pm("investigate", "--sources", "sources.yaml", "--text", "x", cwd=tmp_path)
    assert done.returncode == 1 and "cannot read the sources file" in done.stderr
    done = _pm("sources", "check", cwd=tmp_path)
    assert done.returncode == 1 and "pass --sources sources.yaml or set PM_SOURCES" in done.stderr


@pytest.mark.integration
def test_cli_checks_sources_and_investigates_with_what_answers(tmp_path):
    (tmp_path / "topology.yaml").write_text((WORLDS / "example-1" / "topology.yaml").read_text())
    (tmp_path / "sources.yaml").write_text(
        "topology:\n  - {kind: file, path: topology.yaml}\n  - {kind: file, name: extra, path: missing.yaml}\n"
        "changes: [{kind: events}]\n")
    done = _pm("sources", "check", "--sources", "sources.yaml", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].split()[:3] == ["source", "status", "latency"]
    assert "topology.0 file" in lines[1] and " ok " in lines[1] and "10 services" in lines[1]
    assert "topology.1 file" in lines[2] and "FAILED" in lines[2] and "missing.yaml" in lines[2]
    assert "changes.0 events" in lines[3]
    done = _pm("sources", "check", "--sources", "sources.yaml", "--json", cwd=tmp_path)
    rows = [json.loads(x) for x in done.stdout.splitlines()]
    assert [r["ok"] for r in rows] == [True, False, True]
    done = _pm("investigate", "--sources", "sources.yaml", "--text", "checkout is failing",
               "--at", "2026-02-15T12:00:00Z", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    missing = " ".join(report["missing_sources"])
    assert "metrics (" in missing and "logs (" in missing and "missing.yaml" in missing
    assert report["verdict"] == "INCONCLUSIVE"
    done = _pm("investigate", "--world", str(WORLDS / "example-1"), "--text", "x", cwd=tmp_path)
    assert done.returncode == 1 and "go with --sources" in done.stderr
