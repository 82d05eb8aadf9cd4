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


def test_outbox_list_and_retry_as_an_operator_runs_them(tmp_path):
    from store import investigations as invs
    from store import outbox
    from store.db import make_engine, make_session_factory, upgrade
    from store.models import Delivery

    empty = tmp_path / "empty"
    empty.mkdir()
    for action, said in (("list", "no dead-lettered deliveries"), ("retry", "no dead-lettered deliveries to retry")):
        proc = subprocess.run(PM + ["outbox", action], cwd=empty, env=_env(empty / ".pm"), capture_output=True,
                              text=True, timeout=60)
        assert (proc.returncode, proc.stdout.strip()) == (0, said), proc.stderr
    url = f"sqlite:///{tmp_path / 'pm' / 'pm.sqlite3'}"
    upgrade(url)
    engine = make_engine(url)
    with make_session_factory(engine)() as s:
        inv_id = invs.create(session=s, trigger={"text": "x"}, origin={"kind": "slack", "channel": "C1"}).id
        s.flush()
        s.execute(sa.update(Delivery).values(status="dead", attempts=12, last_error="ConnectionError: down"))
        s.commit()
    run = lambda *a: subprocess.run(PM + ["outbox", *a], cwd=tmp_path, env=_env(tmp_path / "pm"),  # noqa: E731
                                    capture_output=True, text=True, timeout=60)
    listed = run("list")
    assert listed.returncode == 0 and inv_id in listed.stdout and "ConnectionError: down" in listed.stdout
    assert run("retry", "--investigation", "inv-none").stdout.startswith("no dead-lettered")
    retried = run("retry", "--investigation", inv_id)
    assert retried.returncode == 0 and retried.stdout.startswith("1 deliveries put back")
    with make_session_factory(engine)() as s:
        assert outbox.pending_count(session=s, sink="slack") == 1
        assert outbox.dead_letters(session=s) == []
        assert s.scalar(sa.select(Delivery.attempts)) == 0
    engine.dispose()
