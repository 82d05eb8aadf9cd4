"""A Jira ticket resolved is feedback on its investigation: the real listener over HTTP (signed Jira webhooks),
a real SQLite database and the real embedded ChromaDB under PM_HOME. The resolution (its name, the comment
written with it, the fix versions) lands in the database and on the knowledge base's entry; a reopened ticket
clears it; a resolution starts no investigation, also for a ticket nothing was published to."""

from __future__ import annotations

import time

from sqlalchemy import select

from commands.investigate import start
from commands.requests import InvestigationRequest, Origin
from store import outbox
from store.knowledge import feedback_rows, incident_from_report
from store.models import InboundDelivery, Investigation, utcnow
from tests.bot.test_http import listener  # noqa: F401 - the fixture
from tests.commands.test_webhooks import jira_payload

REPORT = {
    "verdict": "CONFIRMED", "confidence": 91,
    "root_cause": {"service": "bookings", "category": "deploy", "change_kind": "deploy",
                   "summary": "deploy 4.2.0 of bookings broke the booking form"},
    "fix_plan": {"steps": [{"description": "Roll bookings back to 4.1.9"}]},
    "symptoms": {"alert_titles": ["Bookings fail with 500"], "ticket_summary": "Bookings fail with 500",
                 "log_templates": [], "metrics": ["bookings/error_rate"], "services": ["bookings"]},
}


def resolved(key: str, name: str | None, *, comment: str | None = None, versions: tuple[str, ...] = (),
             status: str = "Done", category: str = "done", labels: tuple[str, ...] = ("auto-investigate",),
             items: list[dict] | None = None) -> dict:
    """A Jira Cloud ``jira:issue_updated`` body of a transition that sets (or clears) the resolution."""
    body = jira_payload(key=key, labels=labels, event="jira:issue_updated")
    body["timestamp"] = int(time.time() * 1000)
    body["issue_event_type_name"] = "issue_generic"
    body["issue"]["fields"].update(
        resolution={"id": "10000", "name": name} if name else None,
        status={"name": status, "statusCategory": {"key": category, "name": category.title()}},
        fixVersions=[{"id": str(i), "name": v} for i, v in enumerate(versions)])
    body["changelog"] = {"id": "10101", "items": items if items is not None else [
        {"field": "resolution", "fieldtype": "jira", "from": None if name else "10000",
         "fromString": None if name else "Fixed", "to": "10000" if name else None, "toString": name},
        {"field": "status", "fieldtype": "jira", "from": "3", "fromString": "In Progress", "to": "10001",
         "toString": status}]}
    if comment:
        body["comment"] = {"id": "10400", "body": comment, "author": {"displayName": "Ann"}}
    return body


def _finish(app, inv_id: str) -> None:
    """The investigation as a worker leaves it: COMPLETE, its report kept, remembered in the knowledge base."""
    with app.runtime.session() as s:
        inv = s.get(Investigation, inv_id)
        inv.status, inv.finished_at, inv.report = "COMPLETE", utcnow(), REPORT
    app.runtime.memory.kb().upsert([incident_from_report(inv_id, None, REPORT)])


def test_a_resolved_ticket_is_feedback_on_its_investigation_and_starts_nothing(listener):  # noqa: F811
    app = listener
    assert app.jira(jira_payload()).status_code == 202  # the labelled ticket starts an investigation
    (inv,) = app.investigations()
    _finish(app, inv.id)

    def rows(inv_id: str = inv.id) -> list[dict]:
        with app.runtime.session() as s:
            return feedback_rows(session=s, investigation_id=inv_id)

    def entry(inv_id: str = inv.id) -> dict:
        return app.runtime.memory.kb().get(inv_id).feedback

    body = resolved("SCHED-45895", "Fixed", comment="Rolled back to 4.1.9, bookings work again",
                    versions=("bookings-4.2.1",))
    resp = app.jira(body, delivery="wh-res")
    assert resp.status_code == 202 and resp.json()["status"] == "accepted", resp.text
    with app.runtime.session() as s:
        row = s.get(InboundDelivery, resp.json()["delivery_id"])
        assert (row.status, row.investigation_id) == ("recorded", inv.id)
    assert len(app.investigations()) == 1  # no second investigation of the ticket
    expected = {"name": "Fixed", "ticket": "SCHED-45895", "comment": "Rolled back to 4.1.9, bookings work again",
                "fix_versions": ["bookings-4.2.1"], "by": "Ann"}
    assert entry() == {"up": 0, "down": 0, "comments": [], "disputed": False, "resolution": expected}
    assert rows()[-1]["resolution"] == "Fixed" and rows()[-1]["details"]["ticket"] == "SCHED-45895"

    assert app.jira(body, delivery="wh-res-again").status_code == 200  # Jira retries the same body: once
    again = resolved("SCHED-45895", "Fixed", comment="Rolled back to 4.1.9, bookings work again",
                     versions=("bookings-4.2.1",))
    again["timestamp"] += 1  # the same resolution in another event (e.g. sent twice): recorded once
    assert app.jira(again, delivery="wh-res-2").status_code == 202
    assert len(rows()) == 1

    # reopened: the resolution is cleared on the entry; resolved again without a comment, by status only
    assert app.jira(resolved("SCHED-45895", None, status="Reopened", category="new"), delivery="wh-reopen"
                    ).status_code == 202
    assert entry()["resolution"] is None
    status_only = resolved("SCHED-45895", None, status="Closed", items=[
        {"field": "status", "fieldtype": "jira", "from": "4", "fromString": "Reopened", "to": "6", "toString": "Closed"}])
    assert app.jira(status_only, delivery="wh-closed").status_code == 202
    assert entry()["resolution"] == {"name": "Closed", "ticket": "SCHED-45895", "comment": None, "fix_versions": [],
                                     "by": "Ann"}
    assert len(rows()) == 3 and len(app.investigations()) == 1


def test_a_ticket_we_only_published_to_and_a_ticket_we_never_saw(listener):  # noqa: F811
    app = listener
    request = InvestigationRequest(trigger={"text": "bookings fail"}, origin=Origin(kind="slack", channel="C1"))
    inv_id = start(runtime=app.runtime, request=request).investigation_id
    with app.runtime.session() as s:  # the Slack report's "publish to Jira" created OPS-7 (no label on it)
        outbox.save_publication(session=s, investigation_id=inv_id, sink="jira", target="OPS-7",
                                external_ref={"comment_id": "1"})
    _finish(app, inv_id)

    resp = app.jira(resolved("OPS-7", "Won't Do", labels=()), delivery="wh-ops")
    assert resp.status_code == 202
    assert app.runtime.memory.kb().get(inv_id).feedback["resolution"]["name"] == "Won't Do"

    # a labelled ticket resolved before anything of ours finished: recorded nowhere, and not investigated
    resp = app.jira(resolved("SCHED-1", "Fixed"), delivery="wh-unknown")
    assert resp.status_code == 202
    with app.runtime.session() as s:
        row = s.get(InboundDelivery, resp.json()["delivery_id"])
        assert row.status == "ignored" and row.investigation_id is None
        assert s.scalars(select(Investigation.id).where(Investigation.fingerprint == "jira:SCHED-1")).first() is None
