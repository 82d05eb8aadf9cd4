"""End to end with a REAL Alertmanager (Debian's prometheus-alertmanager binary): a firing alert posted
to its API is grouped, sent to our listener's webhook (v4 payload, bearer auth) and becomes a queued
investigation in PostgreSQL with Alertmanager's own fingerprint and the severity's priority.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import select

from bot.http.server import free_port
from pipeline.runtime import QUEUES
from store.models import InboundDelivery, Investigation
from tests.bot.test_http import API_KEY, Listener

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def _alertmanager_binary() -> str:
    subprocess.run(["bash", str(ROOT / "scripts" / "ensure-alertmanager.sh")], check=True, timeout=600)
    found = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    assert found, "scripts/ensure-alertmanager.sh ran but no alertmanager binary is on PATH"
    return found


def _wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout_s}s waiting for {what}")


@pytest.fixture()
def alertmanager() -> str:
    """The path of the Alertmanager binary (installed by scripts/ensure-alertmanager.sh when missing)."""
    return _alertmanager_binary()


def test_real_alertmanager_delivers_a_firing_alert_end_to_end(tmp_path, pg_url, alertmanager):
    listener = Listener(tmp_path / "home", pg_url)
    am_port = free_port()
    config = {
        "route": {"receiver": "production-master", "group_by": ["alertname"], "group_wait": "0s",
                  "group_interval": "1s", "repeat_interval": "1h"},
        "receivers": [{
            "name": "production-master",
            "webhook_configs": [{
                "url": f"{listener.server.url}/webhooks/alertmanager",
                "send_resolved": False,
                "http_config": {"authorization": {"type": "Bearer", "credentials": API_KEY}},
            }],
        }],
    }
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(config))
    log = (tmp_path / "alertmanager.log").open("w")
    proc = subprocess.Popen(
        [alertmanager, f"--config.file={tmp_path / 'alertmanager.yml'}", f"--storage.path={tmp_path / 'am-data'}",
         f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address="],
        stdout=log, stderr=subprocess.STDOUT,
    )
    am = httpx.Client(base_url=f"http://127.0.0.1:{am_port}", timeout=5)
    try:
        def ready():
            if proc.poll() is not None:
                pytest.fail(f"alertmanager exited: {(tmp_path / 'alertmanager.log').read_text()[-2000:]}")
            try:
                return am.get("/-/ready").status_code == 200
            except httpx.TransportError:
                return False

        _wait_for(ready, 30, "alertmanager to be ready")
        starts = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        posted = am.post("/api/v2/alerts", json=[{
            "labels": {"alertname": "PricingErrorRate", "service": "pricing", "severity": "critical"},
            "annotations": {"summary": "pricing 5xx above 5%"},
            "startsAt": starts,
            "generatorURL": "http://prometheus.local/graph?g0.expr=error_rate",
        }])
        assert posted.status_code == 200, posted.text
        fingerprint = _wait_for(lambda: [a["fingerprint"] for a in am.get("/api/v2/alerts").json()], 10,
                                "alertmanager to list the alert")[0]

        def investigations():
            with listener.runtime.session() as s:
                return list(s.execute(select(Investigation.fingerprint, Investigation.priority,
                                             Investigation.trigger, Investigation.status)))

        (row,) = _wait_for(investigations, 30, "the webhook to create an investigation")
        assert row.fingerprint == f"alertmanager:{fingerprint}"
        assert row.priority == "P1" and row.status == "QUEUED"
        assert row.trigger["alert"] == f"am-{fingerprint}" and row.trigger["service"] == "pricing"
        assert listener.runtime.broker.queues[QUEUES["P1"][0]].qsize() == 1
        with listener.runtime.session() as s:
            (delivery,) = s.execute(select(InboundDelivery)).scalars()
            assert delivery.source == "alertmanager" and delivery.status == "processed"
            assert delivery.payload["version"] == "4"
    finally:
        am.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        listener.close()
