"""PM_SOURCES end to end: `pm serve` takes an Alertmanager webhook and its embedded worker investigates
through real sources — a real Prometheus holding the incident's metrics, log files, the changes a CI
system posted to /webhooks/change and the alert history kept by the listener itself — and names the
culprit deploy, as the sandbox does for the same incident.

The incident is the bundled demo-deploy world, written out as real systems would hold it.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path

import httpx
import pytest

from bot.http.app import create_app
from bot.http.server import ServerThread
from bot.http.settings import load_http_settings
from pipeline.runtime import build_runtime
from sandbox.promrun import prometheus_with
from sandbox.world import parse_ts
from store import investigations
from store.config import load_settings
from store.db import upgrade
from tests.paths import ROOT

WORLD = ROOT / "examples" / "worlds" / "demo-deploy"
API_KEY = "live-key"


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write_logs(folder: Path) -> None:
    by_service: dict[str, list[str]] = defaultdict(list)
    for line in _jsonl(WORLD / "logs.jsonl"):
        svc = line.pop("service")
        by_service[svc].append(json.dumps(line))
    folder.mkdir()
    for svc, lines in by_service.items():
        (folder / f"{svc}.jsonl").write_text("\n".join(lines) + "\n")


@pytest.mark.integration
def test_an_alert_is_investigated_through_real_sources_and_the_culprit_named(tmp_path, sqlite_url, monkeypatch):
    # The `events` source reads the database `pm serve` writes, from the same environment.
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    samples = [(m["name"], {"service": m["service"]}, parse_ts(m["ts"]), m["value"])
               for m in _jsonl(WORLD / "metrics.jsonl")]
    _write_logs(tmp_path / "logs")
    (tmp_path / "topology.yaml").write_text((WORLD / "topology.yaml").read_text())
    upgrade(sqlite_url)
    with prometheus_with(samples) as prom:
        (tmp_path / "sources.yaml").write_text(
            f"metrics:  [{{kind: prometheus, url: '{prom.url}'}}]\n"
            "logs:     [{kind: files, path: 'logs/{service}.jsonl'}]\n"
            "changes:  [{kind: events}]\n"
            "alerts:   [{kind: events}]\n"
            "topology: [{kind: file, path: topology.yaml}]\n")
        settings = load_settings(PM_HOME=str(tmp_path / "home"), DATABASE_URL=sqlite_url, API_KEYS=API_KEY,
                                 PM_SOURCES=str(tmp_path / "sources.yaml"))
        runtime = build_runtime(settings)
        app = create_app(settings, runtime, load_http_settings())
        server = ServerThread(app).start()
        worker = runtime.start_worker()
        try:
            client = httpx.Client(base_url=server.url, timeout=10,
                                  headers={"Authorization": f"Bearer {API_KEY}"})
            # CI reports its changes as they happen ...
            resp = client.post("/webhooks/change", json=_jsonl(WORLD / "changes.jsonl"))
            assert resp.status_code == 202, resp.text
            # ... then the alert fires and Alertmanager delivers it.
            alert = _jsonl(WORLD / "alerts.jsonl")[0]
            payload = {"version": "4", "status": "firing", "receiver": "pm", "groupKey": "{}:{alertname=\"x\"}",
                       "alerts": [{"status": "firing", "startsAt": alert["ts"], "fingerprint": "7053abc",
                                   "labels": {"alertname": "PlaylistsErrors", "service": alert["service"],
                                              "severity": "critical"},
                                   "annotations": {"summary": alert["title"]}}]}
            resp = client.post("/webhooks/alertmanager", json=payload)
            assert resp.status_code == 202, resp.text
            deadline = time.monotonic() + 180
            row = None
            while time.monotonic() < deadline:
                with runtime.session() as session:
                    rows = [investigations.to_dict(i) for i in investigations.list_recent(session=session, limit=5)]
                row = rows[0] if rows else None
                if row and row["status"] in ("COMPLETE", "FAILED"):
                    break
                time.sleep(0.5)
            assert row is not None and row["status"] == "COMPLETE", row
            report = row["report"]
            assert row["trigger"]["alert"] == "am-7053abc"
            assert (report["root_cause"]["service"], report["root_cause"]["change_id"]) == ("playlists", "chg-8606")
            assert report["fix_plan"]["steps"][0]["description"].startswith("Roll playlists back from 3.15.0 to 3.14.0")
            assert not [m for m in report["missing_sources"] if m.split(" ")[0] in ("metrics", "logs", "changes",
                                                                                     "alerts", "topology")]
        finally:
            worker.stop()
            server.stop()
            runtime.close()
