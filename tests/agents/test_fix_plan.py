"""Fix plans name the remedy of the culprit (issue #12 item 2): the version to roll back to, the flag to
turn off, the key and value to revert, the resource to scale — through the engine and through the
pipeline that `pm investigate` runs (which used to drop the change records and say "restart")."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from agents import engine
from sandbox.tools import WorldTools
from tests.paths import ROOT

DEMOS = ROOT / "examples" / "worlds"


@pytest.mark.parametrize("world, action, target, previous, words", [
    ("demo-deploy", "rollback", "playlists", "3.14.0", "Roll playlists back from 3.15.0 to 3.14.0 (undo chg-8606)"),
    ("demo-flag-rollout", "disable_flag", "specs.notifications.asyncExport", "1%",
     "Turn flag specs.notifications.asyncExport off or back to its previous value '1%' (now at 25% rollout)"),
    ("demo-config", "revert_config", "settlement:tls.min_version", "TLS1.2",
     "Revert tls.min_version on settlement from 'TLS1.3' to 'TLS1.2' (undo chg-8564)"),
    ("demo-capacity", "scale_out", "recommendations", None, "raise its memory"),
    ("demo-dependency", "failover", "elasticsearch", None, "elasticsearch is failing on its own"),
])
def test_the_first_step_names_the_fix(world, action, target, previous, words):
    report = engine.run_all(WorldTools(DEMOS / world), None, None)
    first = report["fix_plan"]["steps"][0]
    assert (first["action"], first["target"], first["previous_value"]) == (action, target, previous)
    assert words in first["description"]
    assert first["requires_approval"] is True and first["risk"]
    assert first["verify"].startswith(f"metrics:{report['root_cause']['service']}: error_rate back near ")
    assert report["fix_plan"]["steps"][1]["action"] == "verify_recovery"


@pytest.mark.integration
def test_pm_investigate_names_the_rollback_in_the_report(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PM_", "DATABASE_URL", "REDIS_URL", "MCP_"))}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, "-m", "bot.cli", "investigate", "--world", str(DEMOS / "demo-deploy"),
                           "--json"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    first = json.loads(done.stdout)["fix_plan"]["steps"][0]
    assert first["action"] == "rollback" and "to 3.14.0" in first["description"]
