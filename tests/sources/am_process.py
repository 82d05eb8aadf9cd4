"""A real Alertmanager (Debian's prometheus-alertmanager) on a free loopback port, for the source tests.

Started like tests/bot/test_http_alertmanager.py starts it: a temp storage path, a minimal config whose
one receiver sends nowhere (no webhook: these tests only read the API), clustering off.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from bot.http.server import free_port

ROOT = Path(__file__).resolve().parents[2]


def alertmanager_binary() -> str:
    """The binary's path (scripts/ensure-alertmanager.sh installs it when missing)."""
    subprocess.run(["bash", str(ROOT / "scripts" / "ensure-alertmanager.sh")], check=True, timeout=600)
    found = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if not found and Path("/usr/bin/prometheus-alertmanager").exists():
        found = "/usr/bin/prometheus-alertmanager"
    assert found, "scripts/ensure-alertmanager.sh ran but no alertmanager binary is on PATH"
    return found


class Alertmanager:
    """One Alertmanager process; ``post`` puts alerts in through POST /api/v2/alerts."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {"route": {"receiver": "nowhere", "group_wait": "1h", "group_interval": "1h", "repeat_interval": "24h"},
                  "receivers": [{"name": "nowhere"}]}
        (workdir / "alertmanager.yml").write_text(yaml.safe_dump(config))
        self._log = (workdir / "alertmanager.log").open("w")
        self.proc = subprocess.Popen(
            [alertmanager_binary(), f"--config.file={workdir / 'alertmanager.yml'}",
             f"--storage.path={workdir / 'am-data'}", f"--web.listen-address=127.0.0.1:{self.port}",
             "--cluster.listen-address="],
            stdout=self._log, stderr=subprocess.STDOUT,
        )
        self.client = httpx.Client(base_url=self.url, timeout=5)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"alertmanager exited: {(self.workdir / 'alertmanager.log').read_text()[-2000:]}")
            try:
                if self.client.get("/-/ready").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError("alertmanager did not become ready within 30 s")

    def post(self, alerts: list[dict[str, Any]]) -> None:
        """POST alerts and wait until the API lists them all."""
        resp = self.client.post("/api/v2/alerts", json=alerts)
        assert resp.status_code == 200, resp.text
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if len(self.client.get("/api/v2/alerts").json()) >= len(alerts):
                return
            time.sleep(0.05)
        raise RuntimeError("alertmanager did not list the posted alerts within 10 s")

    def fingerprints(self) -> dict[str, str]:
        """alertname -> fingerprint, as Alertmanager computed them."""
        return {a["labels"]["alertname"]: a["fingerprint"] for a in self.client.get("/api/v2/alerts").json()}

    def stop(self) -> None:
        self.client.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()
