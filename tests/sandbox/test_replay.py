"""sandbox.replay: a world written as what real systems hold, loaded into a real Prometheus (promtool).

The OpenMetrics file must build blocks with Debian's promtool and a real Prometheus must answer every
sample back; every log line lands in its service's file; the change list and the Alertmanager payload
round-trip through the product's own webhook normaliser; names Prometheus refuses are sanitised.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import yaml

from bot.cli import main as pm
from commands.webhooks import WebhookRules, normalise_alert_group
from sandbox.errors import WorldError
from sandbox.promrun import PrometheusProcess, build_blocks
from sandbox.replay import alert_id, prom_name, replay, write_sources
from sandbox.world import load_world, parse_ts
from store.sources_file import load_sources
from tests.paths import ROOT

DEMO = ROOT / "examples/worlds/demo-deploy"


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _tiny(tmp_path: Path, trigger: str, metrics: list[dict], **files: list[dict]) -> Path:
    world = tmp_path / "world"
    world.mkdir(parents=True)
    (world / "world.yaml").write_text(f"name: tiny\nwindow: {{start: 2026-02-20T06:00:00Z, end: 2026-02-20T10:00:00Z}}\n"
                                      f"trigger: {trigger}\n")
    (world / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    for name, records in files.items():
        (world / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return world


@pytest.mark.integration
def test_metrics_build_blocks_and_a_real_prometheus_returns_every_sample(tmp_path: Path) -> None:
    out = tmp_path / "replay"
    manifest = replay(DEMO, out)
    world = load_world(DEMO)
    assert manifest["metrics"]["samples"] == sum(len(s.times) for s in world.metrics.values()) > 0
    build_blocks(out / "metrics.om", tmp_path / "data")
    first, last = manifest["metrics"]["first_ts"], manifest["metrics"]["last_ts"]
    with PrometheusProcess(tmp_path / "data") as prom:
        # A range selector at the last sample's time returns the stored samples themselves.
        span = int(last - first) + 60
        body = httpx.get(f"{prom.url}/api/v1/query", params={"query": f'{{__name__=~".+",service!=""}}[{span}s]',
                                                               "time": last}, timeout=30).json()
    assert body["status"] == "success", body
    got = {(r["metric"]["service"], r["metric"]["__name__"]): [(float(t), float(v)) for t, v in r["values"]]
           for r in body["data"]["result"]}
    want = {key: [(t, float(p[1])) for t, p in zip(s.times, s.points, strict=True)] for key, s in world.metrics.items()}
    assert got.keys() == want.keys()
    for key, points in want.items():
        assert got[key] == points, key


def test_logs_changes_alerts_round_trip(tmp_path: Path) -> None:
    out = tmp_path / "replay"
    manifest = replay(DEMO, out)
    world = load_world(DEMO)
    # Logs: one file per service holding every line of that service, in order, service implied by the file.
    written = {p.stem: _jsonl(p) for p in (out / "logs").glob("*.jsonl")}
    assert sum(len(v) for v in written.values()) == len(_jsonl(DEMO / "logs.jsonl")) == len(world.logs.lines)
    for service, index in world.logs_by_service.items():
        assert written[service] == [{k: v for k, v in line.items() if k != "service"} for line in index.lines]
    assert manifest["logs"]["lines"] == {k: len(v) for k, v in written.items()}
    # Changes: the list POST /webhooks/change takes, equal to changes.jsonl.
    changes = json.loads((out / "changes.json").read_text())
    assert sorted(changes, key=lambda c: c["id"]) == sorted(_jsonl(DEMO / "changes.jsonl"), key=lambda c: c["id"])
    assert all(set(c) == {"id", "ts", "kind", "service", "author", "summary", "details"} for c in changes)
    # Alerts: one Alertmanager v4 payload the product's own normaliser reads back as the world's alerts.
    payload = json.loads((out / "alerts.json").read_text())
    assert payload["version"] == "4" and len(payload["alerts"]) == len(world.alerts) > 0
    parsed = normalise_alert_group("alertmanager", payload, WebhookRules(alert_name_patterns=("*",)))
    back = {r.raw["fingerprint"]: r.trigger for r in parsed.requests}
    for alert in world.alerts:
        got = back[alert["id"]]
        assert (got["service"], parse_ts(got["ts"]), got["title"], got["labels"]["severity"]) == (
            alert["service"], parse_ts(alert["ts"]), alert["title"], alert["severity"])
        assert got["alert"] == manifest["alerts"]["ids"][alert["id"]] == alert_id(alert["id"])
    assert len({r.trigger["alert"] for r in parsed.requests}) == len(world.alerts)
    # sources.yaml parses, names every replayed source, and topology/tickets are copied.
    sources = load_sources(out / "sources.yaml")
    assert {(e.section, e.kind) for e in sources.entries} == {
        ("metrics", "prometheus"), ("logs", "files"), ("changes", "events"), ("alerts", "events"),
        ("topology", "file")}
    assert (out / "topology.yaml").read_text() == (DEMO / "topology.yaml").read_text()
    assert json.loads((out / "replay.json").read_text()) == manifest
    assert "pm investigate --sources sources.yaml" in (out / "REPLAY.md").read_text()


def test_trigger_and_window_become_investigate_arguments(tmp_path: Path) -> None:
    demo = replay(DEMO, tmp_path / "a")
    trigger = load_world(DEMO).trigger
    window = ["--start", demo["window"]["start"], "--end", demo["window"]["end"]]
    if "alert" in trigger:
        assert demo["investigate"] == ["--alert", alert_id(trigger["alert"]), *window]
    sample = [{"ts": "2026-02-20T06:00:00Z", "service": "api", "name": "error_rate", "value": 0.1}]
    ticket = {"key": "OPS-1", "ts": "2026-02-20T08:10:00Z", "summary": "api 500s", "description": "since 08:02 UTC"}
    world = _tiny(tmp_path, "{ticket: OPS-1}", sample, tickets=[ticket])
    manifest = replay(world, tmp_path / "b")
    assert manifest["investigate"] == ["--text", "api 500s since 08:02 UTC", "--at", "2026-02-20T08:10:00Z",
                                       "--start", "2026-02-20T06:00:00Z", "--end", "2026-02-20T10:00:00Z"]
    assert (tmp_path / "b/tickets.jsonl").exists()
    # No topology in the world: an empty one, so the live run says "no call graph" as the sandbox does.
    assert yaml.safe_load((tmp_path / "b/topology.yaml").read_text()) == {"services": []}
    assert yaml.safe_load((tmp_path / "b/sources.yaml").read_text())["topology"] == [
        {"kind": "file", "path": "topology.yaml"}]


@pytest.mark.integration
def test_invalid_metric_names_are_sanitised_and_still_load(tmp_path: Path) -> None:
    assert prom_name("error_rate") == "error_rate"
    assert prom_name("http.requests-total") == "http_requests_total"
    assert prom_name("5xx_rate") == "_5xx_rate"
    samples = [{"ts": f"2026-02-20T06:0{i}:00Z", "service": 'we"ird', "name": "http.requests-total", "value": i}
               for i in range(3)]
    manifest = replay(_tiny(tmp_path, "{text: boom}", samples), tmp_path / "out", blocks=True)
    assert manifest["metrics"]["renamed"] == {"http.requests-total": "http_requests_total"}
    with PrometheusProcess(tmp_path / "out/prometheus-data") as prom:
        body = httpx.get(f"{prom.url}/api/v1/query", params={"query": "http_requests_total[10m]",
                                                               "time": parse_ts("2026-02-20T06:02:00Z")}).json()
    (result,) = body["data"]["result"]
    assert result["metric"]["service"] == 'we"ird'
    assert [float(v) for _, v in result["values"]] == [0.0, 1.0, 2.0]


def test_names_that_cannot_be_replayed_are_refused(tmp_path: Path) -> None:
    clash = [{"ts": "2026-02-20T06:00:00Z", "service": "api", "name": n, "value": 1} for n in ("a.b", "a-b")]
    with pytest.raises(WorldError, match="both become the Prometheus name 'a_b'"):
        replay(_tiny(tmp_path / "1", "{text: boom}", clash), tmp_path / "o1")
    line = {"ts": "2026-02-20T06:00:00Z", "service": "../etc", "level": "ERROR", "message": "x"}
    with pytest.raises(WorldError, match="cannot name a log file"):
        replay(_tiny(tmp_path / "2", "{text: boom}", [], logs=[line]), tmp_path / "o2")


def test_pm_worlds_replay_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert pm(["worlds", "replay", str(DEMO), "--out", str(tmp_path / "out"),
               "--prometheus-url", "http://127.0.0.1:9999"]) == 0
    assert "log lines" in capsys.readouterr().out
    doc = yaml.safe_load((tmp_path / "out/sources.yaml").read_text())
    entry = doc["metrics"][0]
    assert (entry["kind"], entry["url"], entry["convention"]) == ("prometheus", "http://127.0.0.1:9999", "plain")
    world = load_world(DEMO)
    # Past data: "now" is the data's end and the look-back reaches its first sample; one step per sample.
    last = max(s.times[-1] for s in world.metrics.values())
    first = min(s.times[0] for s in world.metrics.values())
    assert parse_ts(entry["now"]) == max(last, parse_ts(world.window["end"])) + 1
    assert parse_ts(entry["now"]) - entry["lookback_s"] <= min(first, parse_ts(world.window["start"]))
    assert entry["step_s"] == 60 and entry["gauges"] == sorted({n for _, n in world.metrics})
    assert pm(["worlds", "replay", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) != 0


def test_samples_off_the_minute_give_the_grid_their_phase(tmp_path: Path) -> None:
    samples = [{"ts": f"2026-02-20T06:0{i}:10Z", "service": "api", "name": "error_rate", "value": 0.0} for i in range(5)]
    replay(_tiny(tmp_path, "{text: boom}", samples), tmp_path / "o")
    entry = yaml.safe_load((tmp_path / "o/sources.yaml").read_text())["metrics"][0]
    assert (entry["step_s"], entry["step_offset_s"]) == (60, 10)
    on_minute = [{**s, "ts": s["ts"].replace(":10Z", ":00Z")} for s in samples]
    entry = replay(_tiny(tmp_path / "b", "{text: boom}", on_minute), tmp_path / "p")["prometheus"]
    assert entry["step_s"] == 60 and "step_offset_s" not in entry


@pytest.mark.integration
def test_the_prometheus_provider_reads_the_replay_as_the_sandbox_serves_the_world(tmp_path: Path) -> None:
    from sandbox.tools import WorldTools
    from sources.registry import build_provider

    out = tmp_path / "replay"
    manifest = replay(DEMO, out, blocks=True)
    world = WorldTools(DEMO)
    with PrometheusProcess(out / "prometheus-data") as prom:
        write_sources(out, prom.url)
        sources = load_sources(out / "sources.yaml")
        provider = build_provider(next(e for e in sources.entries if e.section == "metrics"), sources)
        window = {"start": manifest["window"]["start"], "end": manifest["window"]["end"]}
        for name in ("error_rate", "latency_p95_ms"):
            assert provider.metrics_series(name=name, **window) == world.call("metrics.series", name=name, **window)
        assert provider.metrics_list() == world.call("metrics.list")


def test_one_file_logs_keep_the_worlds_order(tmp_path: Path) -> None:
    manifest = replay(DEMO, tmp_path / "o", logs="one-file")
    assert [p.name for p in (tmp_path / "o/logs").iterdir()] == ["all.jsonl"]
    assert _jsonl(tmp_path / "o/logs/all.jsonl") == load_world(DEMO).logs.lines
    assert yaml.safe_load((tmp_path / "o/sources.yaml").read_text())["logs"] == [
        {"kind": "files", "path": "logs/all.jsonl"}]
    assert manifest["logs"]["path"] == "logs/all.jsonl"
    with pytest.raises(WorldError, match="logs layout 'both' unknown"):
        replay(DEMO, tmp_path / "x", logs="both")
