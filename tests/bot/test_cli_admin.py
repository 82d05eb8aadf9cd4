"""`pm worlds generate`, `pm db upgrade` and `pm sandbox serve` as an operator runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
import yaml

from agents.gateway import default_sandbox_config, open_gateway
from tests.sandbox_http import base_url, serving

ROOT = Path(__file__).resolve().parents[2]
PM = [sys.executable, "-m", "bot.cli"]
DEMO = ROOT / "examples" / "worlds" / "demo-deploy"


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "RABBITMQ_URL")}
    return dict(env, PM_HOME=str(home), **extra)


def test_worlds_generate_is_deterministic(tmp_path):
    for out in ("a", "b"):
        proc = subprocess.run(PM + ["worlds", "generate", "--out", str(tmp_path / out), "--count", "3", "--seed", "7"],
                              cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert len(proc.stdout.split()) == 3
    for world in (tmp_path / "a").iterdir():
        truth = yaml.safe_load((world / "truth.yaml").read_text())
        assert set(truth["root_cause"]) >= {"change_id", "service", "category"}
        for f in world.iterdir():
            assert f.read_bytes() == (tmp_path / "b" / world.name / f.name).read_bytes()


def test_worlds_generate_refuses_unknown_family(tmp_path):
    proc = subprocess.run(PM + ["worlds", "generate", "--out", str(tmp_path / "x"), "--family", "meteor"],
                          cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "meteor" in proc.stderr


def test_db_upgrade_twice_on_postgres(tmp_path, pg_url):
    for _ in range(2):
        proc = subprocess.run(PM + ["db", "upgrade"], cwd=ROOT, env=_env(tmp_path, DATABASE_URL=pg_url),
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert "up to date" in proc.stdout
    engine = sa.create_engine(pg_url)
    assert "investigations" in sa.inspect(engine).get_table_names()
    engine.dispose()


def test_sandbox_serve_over_http_with_an_access_key(tmp_path):
    with serving(PM + ["sandbox", "serve", "--world", str(DEMO), "--port", "0"],
                 env=_env(tmp_path, MCP_ACCESS_KEY="k-9")) as urls:
        variables = {"mcp_url": base_url(urls[0]), "mcp_access_key": "k-9"}
        with open_gateway(default_sandbox_config("http"), variables=variables) as gw:
            changes = gw.call("changes.list")["changes"]
            assert changes and all({"id", "ts", "kind", "service"} <= set(c) for c in changes)
            assert gw.call("topology.get")["services"]
