"""A spent global budget refuses webhook-triggered investigations: the delivery is kept as
``refused`` (with the reason logged) and nothing is queued; after an admin's approval the next
delivery starts one. Real listener over HTTP, SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from agents.pricing import Usage
from commands import budgets
from store import investigations as invs
from store.models import InboundDelivery
from tests.bot.test_http import Listener
from tests.commands.test_webhooks import jira_payload

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("backend", ["sqlite", "pg"])
def test_a_spent_budget_refuses_a_webhook_start_until_approved(request, tmp_path, backend, caplog):
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    listener = Listener(tmp_path / "home", url)
    try:
        rt = listener.runtime
        with rt.session() as s:
            spender = invs.create(session=s, trigger={"text": "earlier"}, origin={"kind": "cli"}).id
        # $10,500 of Opus 4.1 output ($75 per million): past the default global budget of $10,000
        rt.budgets.charge(investigation_id=spender, agent="hypotheses", phase="HYPOTHESES",
                          model="claude-opus-4-1", usage=Usage(output=140_000_000))
        resp = listener.jira(jira_payload(priority="Highest"), delivery="wh-refused")
        assert resp.status_code == 202
        with rt.session() as s:
            # Jira deliveries are keyed by the body's hash (a resent body is a replay), so find it by source
            [row] = s.scalars(select(InboundDelivery).where(InboundDelivery.source == "jira")).all()
            assert row.status == "refused" and row.investigation_id is None
        assert [i.id for i in listener.investigations()] == [spender] and listener.queued("P1") == 0
        assert any("global monthly budget is spent" in r.getMessage() and "pm budgets approve global" in r.getMessage()
                   for r in caplog.records)
        budgets.approve(runtime=rt, body={"scope": "global", "usd": 1000}, by="ops-lead")
        again = listener.jira(jira_payload(key="SCHED-2", priority="Highest"), delivery="wh-after")
        assert again.status_code == 202
        assert len(listener.investigations()) == 2 and listener.queued("P1") == 1
    finally:
        listener.close()
