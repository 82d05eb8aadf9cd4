"""A stored webhook delivery whose processing keeps failing is dead-lettered, listed and retried
(issue #11, finding 4: such rows stayed ``accepted`` and were retried at every start forever).

The fault is injected in the real database, SQLite and PostgreSQL alike: a trigger that refuses
every new investigation. Nothing of ours is mocked; the operator commands run as subprocesses.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from sqlalchemy import select, text

from store.models import InboundDelivery, Investigation
from tests.bot.test_cli_admin import PM, _env
from tests.bot.test_http import Listener
from tests.bot.test_http_hostile_intake import post
from tests.commands.test_webhooks import alert_group_payload

REFUSE = {
    "sqlite": ["CREATE TRIGGER refuse_investigations BEFORE INSERT ON investigations "
               "BEGIN SELECT RAISE(ABORT, 'injected fault: investigations refused'); END"],
    "postgresql": [
        "CREATE FUNCTION refuse_investigations() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'injected fault: investigations refused'; END $$",
        "CREATE TRIGGER refuse_investigations BEFORE INSERT ON investigations "
        "FOR EACH ROW EXECUTE FUNCTION refuse_investigations()",
    ],
}
LIFT = {"sqlite": ["DROP TRIGGER refuse_investigations"],
        "postgresql": ["DROP TRIGGER refuse_investigations ON investigations", "DROP FUNCTION refuse_investigations()"]}


def _sql(listener: Listener, statements: list[str]) -> None:
    with listener.runtime.session() as s:
        for statement in statements:
            s.execute(text(statement))
        s.commit()


def _row(listener: Listener, delivery_id: int) -> InboundDelivery:
    with listener.runtime.session() as s:
        row = s.get(InboundDelivery, delivery_id)
        s.expunge_all()
        return row


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_a_delivery_that_keeps_failing_is_dead_lettered_then_retried_by_the_operator(request, tmp_path, db):
    url = request.getfixturevalue("sqlite_url" if db == "sqlite" else "pg_url")
    listener = Listener(tmp_path, url, PM_WEBHOOK_MAX_ATTEMPTS=3, PM_WEBHOOK_RETRY_S=0.2)
    try:
        _sql(listener, REFUSE[db])
        body = json.dumps(alert_group_payload(fingerprints=("deadfp1",))).encode()
        resp = post(listener, "alertmanager", body)
        assert resp.status_code == 202 and resp.json()["status"] == "accepted", resp.text
        delivery_id = resp.json()["delivery_id"]

        deadline = time.monotonic() + 30  # retries after 0.2 s and 0.8 s, then dead
        while _row(listener, delivery_id).status != "dead" and time.monotonic() < deadline:
            time.sleep(0.1)
        row = _row(listener, delivery_id)
        assert (row.status, row.attempts) == ("dead", 3), (row.status, row.attempts, row.last_error)
        assert "injected fault" in row.last_error

        again = post(listener, "alertmanager", body)  # the sender's redelivery: not retried forever
        assert again.status_code == 200 and again.json()["original_status"] == "dead"
        time.sleep(0.5)
        assert _row(listener, delivery_id).attempts == 3

        env = _env(tmp_path / "cli", DATABASE_URL=url)
        run = lambda *a: subprocess.run(PM + ["deliveries", *a], cwd=tmp_path, env=env,  # noqa: E731
                                        capture_output=True, text=True, timeout=120)
        listed = run("list", "--json")
        assert listed.returncode == 0, listed.stderr
        (dead,) = json.loads(listed.stdout)
        assert (dead["delivery_id"], dead["source"], dead["attempts"]) == (delivery_id, "alertmanager", 3)
        assert "injected fault" in run("list").stdout

        _sql(listener, LIFT[db])  # the cause is fixed
        retried = run("retry", "--source", "alertmanager")
        assert retried.returncode == 0, retried.stdout + retried.stderr
        assert "1 of 1 processed" in retried.stdout
        assert _row(listener, delivery_id).status == "processed"
        with listener.runtime.session() as s:
            assert s.scalar(select(Investigation.fingerprint)) == "alertmanager:deadfp1"
        assert run("list").stdout.strip() == "no dead-lettered webhook deliveries"
    finally:
        listener.close()


def test_deliveries_commands_work_in_an_empty_directory(tmp_path):
    for action, said in (("list", "no dead-lettered webhook deliveries"),
                         ("retry", "no dead-lettered webhook deliveries to retry")):
        proc = subprocess.run(PM + ["deliveries", action], cwd=tmp_path, env=_env(tmp_path / ".pm"),
                              capture_output=True, text=True, timeout=60)
        assert (proc.returncode, proc.stdout.strip()) == (0, said), proc.stderr
