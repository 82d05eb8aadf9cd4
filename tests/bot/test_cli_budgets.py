"""`pm budgets show|approve` in an empty directory (embedded SQLite), as real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.paths import ROOT


def _pm(cwd, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PM_", "DATABASE_URL", "REDIS_URL"))}
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={**base, "PYTHONPATH": str(ROOT), **env}, timeout=120)


def test_show_and_approve_work_on_embedded_defaults(tmp_path):
    shown = _pm(tmp_path, "budgets", "show")
    assert shown.returncode == 0, shown.stderr
    assert "global           $0.00 of $10,000.00 · 0% · ok" in shown.stdout
    assert "each investigation $5.00" in shown.stdout
    approved = _pm(tmp_path, "budgets", "approve", "domain", "payments", "--usd", "50", "--by", "ops-lead",
                   PM_BUDGET_DOMAIN_MONTH_USD="100")
    assert approved.returncode == 0, approved.stderr
    assert "approved: domain payments now $0.00 of $150.00 (incl. $50.00 approved)" in approved.stdout
    out = json.loads(_pm(tmp_path, "budgets", "show", "--json", PM_BUDGET_DOMAIN_MONTH_USD="100").stdout)
    [pay] = out["domains"]
    assert (pay["key"], pay["limit_usd"]) == ("payments", 150.0)
    assert out["approvals"][0]["approved_by"] == "ops-lead" and (tmp_path / ".pm" / "pm.sqlite3").exists()


def test_bad_settings_and_arguments_say_what_to_do_in_one_line(tmp_path):
    bad = _pm(tmp_path, "budgets", "show", PM_BUDGET_DOMAINS="payments")
    assert bad.returncode != 0 and bad.stderr.strip().count("\n") == 0
    assert "PM_BUDGET_DOMAINS" in bad.stderr and "payments=100" in bad.stderr
    missing = _pm(tmp_path, "budgets", "approve", "domain")
    assert missing.returncode == 2 and "pm budgets approve domain NAME" in missing.stderr
    negative = _pm(tmp_path, "budgets", "approve", "global", "--usd", "-3")
    assert negative.returncode != 0 and "usd must be an amount above 0" in negative.stderr
    threshold = _pm(tmp_path, "budgets", "show", PM_BUDGET_WARN_AT="0.95")
    assert threshold.returncode != 0 and "PM_BUDGET_WARN_AT" in threshold.stderr
