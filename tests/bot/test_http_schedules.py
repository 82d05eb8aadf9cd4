"""Scheduled jobs: `pm schedule run` as a real subprocess, and the jobs against a real database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update

from bot.http.jobs import run_job
from bot.http.settings import load_http_settings
from commands.investigate import start
from commands.requests import InvestigationRequest, Origin
from pipeline.runtime import build_runtime
from sandbox.tools import WorldTools
from store.config import load_settings
from store.db import upgrade
from store.models import Investigation
from tests.paths import SHARED

ROOT = Path(__file__).resolve().parents[2]
WORLD = (SHARED / "worlds/example-2")


def _pm(args, home):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "RABBITMQ_URL", "PM_WORLD")}
    env["PM_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def test_knowledge_update_rebuilds_an_empty_knowledge_base(tmp_path):
    assert _pm(["db", "upgrade"], tmp_path).returncode == 0
    proc = _pm(["schedule", "run", "knowledge-update"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["job"] == "knowledge-update" and out["status"] == "ok" and out["indexed"] == 0
    assert (tmp_path / "chroma").is_dir()


def test_unknown_job_is_a_usage_error(tmp_path):
    proc = _pm(["schedule", "run", "reindex-everything"], tmp_path)
    assert proc.returncode != 0 and "invalid choice" in proc.stderr


def _runtime(tmp_path, url):
    upgrade(url)
    return build_runtime(load_settings(PM_HOME=str(tmp_path), DATABASE_URL=url))


def test_health_check_investigates_only_the_regressed_service(tmp_path, sqlite_url):
    runtime = _runtime(tmp_path, sqlite_url)
    try:
        http = load_http_settings(PM_DOMAIN_SERVICES='{"payments": ["pricing", "shipping"]}',
                                  PM_HEALTH_CHECK_WINDOW_S=900, PM_DOMAIN_CHANNELS='{"payments": "C0PAY"}')
        at = datetime(2026, 10, 2, 16, 28, 2, tzinfo=UTC)  # 15 min after the pricing deploy of example-2
        summary = run_job("health-check", settings=runtime.settings, http=http, runtime=runtime, now=at,
                          tools_factory=lambda spec: WorldTools(WORLD))
        assert summary["checked"] == 2
        (reg,) = summary["regressions"]
        assert reg["service"] == "pricing" and reg["created"] is True
        with runtime.session() as s:
            (inv,) = s.execute(select(Investigation)).scalars()
            assert inv.fingerprint == "health:payments:pricing" and inv.origin["channel"] == "C0PAY"
        again = run_job("health-check", settings=runtime.settings, http=http, runtime=runtime, now=at,
                        tools_factory=lambda spec: WorldTools(WORLD))
        assert again["regressions"][0]["created"] is False  # still open: attached, not duplicated
    finally:
        runtime.close()


def test_stale_p1_tickets_are_rerun_once(tmp_path, sqlite_url):
    runtime = _runtime(tmp_path, sqlite_url)
    http = load_http_settings()
    try:
        def ticket(key, priority):
            return start(runtime=runtime, request=InvestigationRequest(
                trigger={"ticket": key}, origin=Origin(kind="jira", jira_key=key), priority=priority)).investigation_id

        old_p1, old_p2 = ticket("PAY-1", "P1"), ticket("PAY-3", "P2")
        ticket("PAY-2", "P1")  # fresh: investigated just now
        two_days_ago = datetime.now(UTC) - timedelta(days=2)
        with runtime.session() as s:
            s.execute(update(Investigation).values(status="COMPLETE"))
            s.execute(update(Investigation).where(Investigation.id.in_([old_p1, old_p2]))
                      .values(created_at=two_days_ago))
        summary = run_job("stale-ticket-review", settings=runtime.settings, http=http, runtime=runtime)
        (rerun,) = summary["rerun"]
        assert rerun["ticket"] == "PAY-1" and rerun["from"] == old_p1 and rerun["investigation_id"] != old_p1
        assert {s["ticket"] for s in summary["skipped"]} == {"PAY-2"}
        with runtime.session() as s:
            new = s.get(Investigation, rerun["investigation_id"])
            assert new.mode == "deep" and new.priority == "P1" and new.origin["jira_key"] == "PAY-1"
        second = run_job("stale-ticket-review", settings=runtime.settings, http=http, runtime=runtime)
        assert second["rerun"] == [] and "still QUEUED" in {s["ticket"]: s["why"] for s in second["skipped"]}["PAY-1"]
    finally:
        runtime.close()
