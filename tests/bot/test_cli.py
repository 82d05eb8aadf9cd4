"""The `pm` CLI end to end, as a newcomer runs it: real subprocesses, real databases and brokers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[2]
WORLDS = ROOT / "examples" / "worlds"
PM = [sys.executable, "-m", "bot.cli"]
CLEAN_ENV = {
    k: v
    for k, v in os.environ.items()
    if k not in ("DATABASE_URL", "REDIS_URL", "RABBITMQ_URL", "S3_BUCKET", "ANTHROPIC_API_KEY", "MCP_CONFIG", "PM_WORLD",
                 "OPENAI_API_KEY", "ANTHROPIC_BASE_URL", "OPENAI_BASE_URL")
}


def run_pm(args, *, env_extra=None, home, timeout=240):
    env = dict(CLEAN_ENV, PM_HOME=str(home), **(env_extra or {}))
    return subprocess.run(PM + args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def assert_spec_report(report: dict) -> None:
    """The fields the world-format spec says the scorer reads, with their types."""
    assert report["verdict"] in ("CONFIRMED", "LIKELY", "INCONCLUSIVE")
    assert isinstance(report["confidence"], int | float) and 0 <= report["confidence"] <= 100
    rc = report["root_cause"]
    assert set(rc) >= {"summary", "service", "change_id", "category"}
    assert rc["category"] in ("deploy", "feature_flag", "config", "db_migration", "infra", "dependency", "capacity", "none")
    assert report["hypotheses"], "at least one hypothesis"
    for i, h in enumerate(report["hypotheses"], 1):
        assert h["rank"] == i
        assert set(h) >= {"statement", "service", "change_id", "category", "confidence", "evidence", "counter_evidence"}
        for item in h["evidence"] + h["counter_evidence"]:
            assert item["source"] in ("logs", "metrics", "changes", "tickets", "alerts", "chat", "code")
            assert "ref" in item and "summary" in item


def demo_world() -> Path:
    world = WORLDS / "demo-flag-rollout"
    if not world.exists():
        pytest.fail("examples/worlds/demo-flag-rollout is missing: the README demo needs it")
    return world


def test_investigate_json_on_embedded_defaults(tmp_path):
    proc = run_pm(["investigate", "--world", str(demo_world()), "--json"], home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)  # nothing but the report on stdout
    assert_spec_report(report)
    assert (tmp_path / "pm.sqlite3").exists()
    listed = run_pm(["investigations", "list", "--json"], home=tmp_path)
    rows = json.loads(listed.stdout)
    assert len(rows) == 1 and rows[0]["status"] == "COMPLETE"
    # every MCP call the gateway made is timed and recorded on an AgentRun
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'pm.sqlite3'}")
    with engine.connect() as c:
        calls = [
            call
            for (raw,) in c.execute(sa.text("select tool_calls from agent_runs"))
            for call in (json.loads(raw) if isinstance(raw, str) else raw or [])
        ]
    engine.dispose()
    capabilities = {call["capability"] for call in calls}
    assert {"logs.search", "metrics.series", "changes.list"} <= capabilities, capabilities
    assert all(call["duration_ms"] >= 0 and "ok" in call for call in calls)


def test_investigate_markdown_with_stdio_sandbox_servers(tmp_path):
    # PM_SANDBOX_TRANSPORT=stdio: one MCP server subprocess per source instead of in-process streams
    proc = run_pm(["investigate", "--world", str(demo_world())], home=tmp_path,
                  env_extra={"PM_SANDBOX_TRANSPORT": "stdio"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("# Investigation report")
    assert "## Root cause" in proc.stdout


@pytest.mark.integration
def test_investigate_json_on_postgres_and_redis(tmp_path, pg_url, redis_url):
    env = {"DATABASE_URL": pg_url, "REDIS_URL": redis_url, "PM_QUEUE_NAMESPACE": f"t{uuid.uuid4().hex[:10]}"}
    proc = run_pm(["investigate", "--world", str(demo_world()), "--json"], home=tmp_path, env_extra=env)
    assert proc.returncode == 0, proc.stderr
    assert_spec_report(json.loads(proc.stdout))
    engine = sa.create_engine(pg_url)
    with engine.connect() as c:
        assert c.execute(sa.text("select status from investigations")).scalar_one() == "COMPLETE"
    engine.dispose()
    assert not (tmp_path / "pm.sqlite3").exists()


def _count_investigations(home: Path) -> int:
    db = home / "pm.sqlite3"
    if not db.exists():
        return 0
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as c:
        if not sa.inspect(c).has_table("investigations"):
            return 0
        n = c.execute(sa.text("select count(*) from investigations")).scalar_one()
    engine.dispose()
    return n


def assert_one_line_error(proc, *needles):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_missing_world_file_is_one_line_and_writes_nothing(tmp_path):
    world = tmp_path / "w"
    shutil.copytree(demo_world(), world)
    (world / "world.yaml").unlink()
    proc = run_pm(["investigate", "--world", str(world), "--json"], home=tmp_path / "home")
    assert_one_line_error(proc, "world.yaml")
    assert proc.stdout == ""
    assert _count_investigations(tmp_path / "home") == 0


def test_malformed_jsonl_names_file_and_line(tmp_path):
    world = tmp_path / "w"
    shutil.copytree(demo_world(), world)
    with (world / "changes.jsonl").open("a") as f:
        f.write("{not json\n")
    proc = run_pm(["investigate", "--world", str(world), "--json"], home=tmp_path / "home")
    assert_one_line_error(proc, "changes.jsonl")
    assert _count_investigations(tmp_path / "home") == 0


def test_unknown_trigger_is_refused(tmp_path):
    world = tmp_path / "w"
    shutil.copytree(demo_world(), world)
    text = (world / "world.yaml").read_text()
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith(("ticket", "alert", "text", "trigger"))]
    lines.append("trigger: {ticket: NOPE-404}")
    (world / "world.yaml").write_text("\n".join(lines) + "\n")
    proc = run_pm(["investigate", "--world", str(world), "--json"], home=tmp_path / "home")
    assert_one_line_error(proc, "NOPE-404")
    assert _count_investigations(tmp_path / "home") == 0


def test_unreachable_database_names_the_variable(tmp_path):
    proc = run_pm(
        ["investigate", "--world", str(demo_world()), "--json"],
        home=tmp_path,
        env_extra={"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nothing"},
        timeout=60,
    )
    assert_one_line_error(proc, "DATABASE_URL")


def test_unreachable_broker_names_the_variable(tmp_path):
    proc = run_pm(
        ["investigate", "--world", str(demo_world()), "--json"],
        home=tmp_path,
        env_extra={"REDIS_URL": "redis://127.0.0.1:1/0"},
        timeout=60,
    )
    assert_one_line_error(proc, "REDIS_URL")
    assert _count_investigations(tmp_path) == 0


def test_invalid_setting_names_the_variable(tmp_path):
    proc = run_pm(["investigations", "list"], home=tmp_path, env_extra={"PORT": "http"})
    assert_one_line_error(proc, "PORT")


def test_parallel_runs_on_a_fresh_home_all_finish(tmp_path):
    """Several `pm investigate` started at once on a fresh home: one migrates, all report."""
    worlds = ["demo-deploy", "demo-capacity", "demo-config"]
    env = dict(CLEAN_ENV, PM_HOME=str(tmp_path))
    procs = [
        subprocess.Popen(PM + ["investigate", "--world", str(WORLDS / w), "--json"], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for w in worlds
    ]
    outs = [p.communicate(timeout=240) for p in procs]
    for proc, (out, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err
        assert_spec_report(json.loads(out))
