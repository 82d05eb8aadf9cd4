"""The live drill end to end, one fault (the bad deploy, the quickest to alert): the real shop on
loopback, a real Prometheus scraping it and evaluating the alert rules, a real Alertmanager sending to
``pm serve`` (a subprocess with its embedded worker and PM_SOURCES on this shop), and the report it
writes naming the deploy. Every process the drill started is gone afterwards.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from drill.faults import FAULTS
from drill.run import run_fault

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it runs nothing.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_a_bad_deploy_is_alerted_investigated_and_named_with_nobody_asking(tmp_path):
    subprocess.run(["bash", str(ROOT / "scripts" / "ensure-prometheus.sh")], check=True, timeout=600)
    said: list[str] = []
    row = run_fault(FAULTS["bad-deploy"], root=tmp_path, warmup_s=40, alert_timeout_s=90, report_timeout_s=60,
                    keep=False, say=said.append)
    assert "error" not in row, (row, said)
    # The alert Prometheus raised reached pm serve through Alertmanager and started the investigation.
    assert row["alert"]["id"].startswith("am-") and row["fault_to_alert_s"] > 0, row
    assert row["status"] == "COMPLETE" and row["alert_to_report_s"] is not None, row
    assert row["truth"]["change"] and row["truth"]["change"].startswith("deploy-payments-"), row
    assert row["culprit"] == row["truth"], row
    assert row["right"] is True and row["verdict"] in ("CONFIRMED", "LIKELY"), row
    # Nothing the drill started is left running, and its files are gone.
    assert len(row["pids"]) >= 9, row["pids"]
    assert not [pid for pid in row["pids"] if _alive(pid)]
    assert not list(tmp_path.iterdir())
