"""No configured secret reaches a log, an artifact, the database or a posted message (issue #11, finding 7).

Every secret variable of store/config.py (each SecretStr, and the password of every URL setting)
gets a recognisable value; ``pm serve`` runs as a real process with every library logging at DEBUG
(PM_DEBUG=1), on PostgreSQL, publishing to the stand-in Slack; webhooks of three senders arrive
and an investigation runs to its report. Then its output, every file under PM_HOME, every row of
every table and every message posted are searched for the values. The start-up errors of
``pm worker``/``pm serve``/``python -m pipeline.worker`` (the one leak found: REDIS_URL's password)
are checked the same way, with and without PM_DEBUG tracebacks.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from commands.signatures import sign
from store.config import Settings
from store.db import upgrade
from tests.commands.test_webhooks import alert_group_payload, jira_payload, pagerduty_payload
from tests.fakes.slack_server import FakeSlack
from tests.paths import SHARED

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _secret_env(tag: str) -> dict[str, str]:
    """A recognisable value for every SecretStr setting (named by its variable)."""
    out = {}
    for name, info in Settings.model_fields.items():
        if info.annotation in (SecretStr, SecretStr | None):
            alias = info.alias or name.upper()
            out[alias] = f"Zq{alias.replace('_', '')}{tag}"
    out["SLACK_BOT_TOKEN"] = f"xoxb-Zq{tag}-bot"
    out["SLACK_APP_TOKEN"] = f"xapp-Zq{tag}-app"
    out["ANTHROPIC_API_KEY"] = f"sk-ant-Zq{tag}-key"
    return out


def _base_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "RABBITMQ_URL") and not k.startswith(("PM_", "SLACK_", "JIRA_"))}
    return dict(env, PYTHONPATH=str(ROOT), PM_HOME=str(home), **extra)


def _leaks(text: str, secrets: dict[str, str]) -> list[str]:
    return sorted(name for name, value in secrets.items() if value in text)


def test_every_secret_variable_is_covered_by_the_test():
    secret_fields = {info.alias for info in Settings.model_fields.values() if info.annotation in (SecretStr, SecretStr | None)}
    assert secret_fields <= set(_secret_env("x")), secret_fields - set(_secret_env("x"))
    assert len(secret_fields) >= 12  # ANTHROPIC_API_KEY, VAULT_TOKEN, ..., JIRA_WEBHOOK_SECRET


@pytest.mark.parametrize("debug", ["0", "1"], ids=["one-line", "traceback"])
@pytest.mark.parametrize("command", [["-m", "bot.cli", "worker"], ["-m", "bot.cli", "serve", "--port", "0"],
                                     ["-m", "pipeline.worker"]], ids=["pm-worker", "pm-serve", "pipeline.worker"])
@pytest.mark.parametrize("variable, url", [
    ("REDIS_URL", "redis://:{pw}@127.0.0.1:1/0"),
    ("REDIS_URL", "redis://default:{pw}@127.0.0.1:1/0"),
    ("RABBITMQ_URL", "amqp://guest:{pw}@127.0.0.1:1/"),
    ("DATABASE_URL", "postgresql+psycopg://postgres:{pw}@127.0.0.1:1/pm"),
], ids=["redis-no-user", "redis-user", "rabbitmq", "postgresql"])
def test_a_start_up_error_never_prints_a_url_password(tmp_path, command, debug, variable, url):
    password = f"UrlPw{uuid.uuid4().hex[:10]}"
    env = _base_env(tmp_path / "home", PM_DEBUG=debug, **{variable: url.format(pw=password)})
    proc = subprocess.run([sys.executable, *command], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    said = proc.stdout + proc.stderr
    assert variable in said or "127.0.0.1:1" in said or "Connection refused" in said, said[-800:]
    assert password not in said, said[-1500:]


def _wait_http(url: str, proc: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"pm serve exited with {proc.returncode}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("pm serve did not answer /healthz")


def test_no_secret_reaches_logs_artifacts_the_database_or_slack(tmp_path, pg_url):
    tag = uuid.uuid4().hex[:12]
    secrets = _secret_env(tag)
    pg_password = f"PgPw{tag}"
    db_url = pg_url.replace("postgres@", f"postgres:{pg_password}@")  # trust auth: sent, never needed
    secrets["DATABASE_URL (password)"] = pg_password
    upgrade(pg_url)
    home = tmp_path / "home"
    port = _free_port()
    with FakeSlack() as fake:
        env = _base_env(
            home, PM_DEBUG="1", LOG_LEVEL="DEBUG", DATABASE_URL=db_url, SLACK_API_URL=fake.api_url,
            ANTHROPIC_BASE_URL="http://127.0.0.1:1", PM_WORLD=str(SHARED / "worlds" / "example-2"),
            PM_DOMAINS=json.dumps({"booking": "bookings"}), PM_DOMAIN_CHANNELS=json.dumps({"bookings": "C0BOOK"}),
            POST_DEPLOY_CHECK_DELAY_MS="0",
            **{k: v for k, v in secrets.items() if " " not in k},
        )
        # API_KEYS holds a list: one key for us, one the secret value itself.
        api_key = secrets["API_KEYS"]
        out = (tmp_path / "serve.log").open("w")
        proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--port", str(port)], cwd=tmp_path,
                                env=env, stdout=out, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_http(base, proc)
            resp = httpx.post(f"{base}/webhooks/alertmanager", json=alert_group_payload(),
                              headers={"Authorization": f"Bearer {api_key}"}, timeout=10)
            assert resp.status_code == 202, resp.text
            body = json.dumps(pagerduty_payload(priority="P3")).encode()
            pd_sig = "v1=" + sign(body, secrets["PAGERDUTY_WEBHOOK_SECRET"])
            assert httpx.post(f"{base}/webhooks/pagerduty", content=body, headers={"X-PagerDuty-Signature": pd_sig},
                              timeout=10).status_code == 202
            body = json.dumps(jira_payload(labels=("frontend",))).encode()
            jira_sig = "sha256=" + sign(body, secrets["JIRA_WEBHOOK_SECRET"])
            assert httpx.post(f"{base}/webhooks/jira", content=body, timeout=10,
                              headers={"X-Hub-Signature": jira_sig, "X-Atlassian-Webhook-Identifier": "w1"}
                              ).status_code == 202
            # Refused credentials are logged too: a wrong key, a wrong signature.
            assert httpx.post(f"{base}/webhooks/alertmanager", json={}, timeout=10,
                              headers={"Authorization": f"Bearer {api_key}x"}).status_code == 401
            assert httpx.get(f"{base}/api/v1/investigations", timeout=10,
                             headers={"Authorization": f"Bearer {secrets['JWT_SECRET']}"}).status_code == 401
            parent = fake.wait_for(
                lambda: next((m for m in fake.bot_messages("C0BOOK") if not m.get("thread_ts")), None),
                90, "a parent message in the domain channel")
            fake.wait_for(
                lambda: next((m for m in fake.thread("C0BOOK", parent["ts"])
                              if any(b.get("type") == "header" for b in m.get("blocks") or [])), None),
                150, "the report in the thread")
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            out.close()
        posted = json.dumps(fake.messages, ensure_ascii=False)
        call_args = json.dumps([args for _method, args in fake.calls], ensure_ascii=False, default=str)

    log_text = (tmp_path / "serve.log").read_text(errors="replace")
    assert "DEBUG" in log_text and len(log_text) > 2000  # the libraries did log: there was something to leak
    assert _leaks(log_text, secrets) == [], [line for line in log_text.splitlines() if any(
        v in line for v in secrets.values())][:5]
    files = {p: p.read_bytes().decode("utf-8", "replace") for p in home.rglob("*") if p.is_file()}
    assert any("artifacts" in str(p) for p in files), sorted(map(str, files))  # the report was written
    for path, content in files.items():
        assert _leaks(content, secrets) == [], path
    assert _leaks(posted, secrets) == [] and _leaks(call_args, secrets) == []
    engine = sa.create_engine(pg_url)
    try:
        with engine.connect() as conn:
            tables = [r[0] for r in conn.execute(sa.text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))]
            dump = "\n".join(str(row[0]) for t in tables
                             for row in conn.execute(sa.text(f'SELECT CAST(t AS text) FROM "{t}" t')))
    finally:
        engine.dispose()
    assert "pm-alertmanager" in dump or "alertmanager" in dump  # the rows are there
    assert _leaks(dump, secrets) == []


def test_one_filter_masks_secrets_in_every_handler_even_one_added_later():
    import io
    import logging

    from pipeline.logs import install_redaction
    from store.config import load_settings

    tag = uuid.uuid4().hex[:10]
    settings = load_settings(SLACK_BOT_TOKEN=f"xoxb-{tag}", JIRA_API_TOKEN=f"JiraTok{tag}",
                             REDIS_URL=f"redis://:RedisPw{tag}@cache:6379/0",
                             RABBITMQ_URL=f"amqp://u:Rabbit%40Pw{tag}@mq:5672/")
    install_redaction(settings)
    try:
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)  # as uvicorn or a library adds its own, after start-up
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        logger = logging.getLogger(f"later.{tag}")
        logger.addHandler(handler)
        logger.propagate = False
        logger.warning("token %s and %s", f"xoxb-{tag}", settings.redis_url)
        try:
            raise RuntimeError(f"jira said no to JiraTok{tag} via amqp://u:Rabbit@Pw{tag}@mq")
        except RuntimeError:
            logger.exception("call failed")
        logger.error("a URL nobody configured: postgresql://app:Other%s@db/x", tag)
        text = stream.getvalue()
    finally:
        install_redaction(load_settings())  # leave no test secrets behind in the process
    for value in (f"xoxb-{tag}", f"RedisPw{tag}", f"JiraTok{tag}", f"Rabbit@Pw{tag}", f"Other{tag}"):
        assert value not in text, text
    assert "call failed" in text and "RuntimeError" in text and text.count("***") >= 4
