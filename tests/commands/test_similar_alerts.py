"""Similar alerts join the open investigation (issue #17, item 5), on SQLite and PostgreSQL, through start() and
the webhook intake (real Alertmanager and PagerDuty payloads): same service and a similar title attach; another
service, another title, a finished investigation or a stale one do not."""

from __future__ import annotations

from datetime import timedelta

import pytest

from commands import similar, webhooks
from commands.investigate import start
from commands.requests import InvestigationRequest, Origin
from pipeline.runtime import build_runtime
from store import outbox
from store.config import load_settings
from store.db import upgrade
from store.models import InboundDelivery, Investigation
from tests.commands.test_webhooks import alert_group_payload, pagerduty_payload


def test_title_similarity_ignores_counts_ids_and_filler():
    assert similar.title_words("[FIRING:1] High error rate on pricing (pd-3975)") == {"high", "error", "rate",
                                                                                     "pricing"}
    assert similar.title_similarity("[FIRING:1] High error rate on pricing", "High error rate on pricing") == 1.0
    assert similar.title_similarity("pricing p99 latency above 2s", "pricing latency above 5s") >= 0.6
    assert similar.title_similarity("High error rate on pricing", "pricing disk almost full") < 0.6
    assert similar.title_similarity("", "anything") == 0.0


def _alert(source: str, fp: str, service: str, title: str) -> InvestigationRequest:
    return InvestigationRequest(trigger={"alert": f"{source}-{fp}", "service": service, "title": title},
                                origin=Origin(kind="webhook", source=source), fingerprint=f"{source}:{fp}",
                                requested_by=source)


@pytest.fixture(params=["sqlite", "pg"])
def runtime(request, tmp_path, monkeypatch):
    for var in ("REDIS_URL", "RABBITMQ_URL", "S3_BUCKET"):
        monkeypatch.delenv(var, raising=False)
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    upgrade(url)
    rt = build_runtime(load_settings(DATABASE_URL=url, PM_HOME=str(tmp_path)))
    yield rt
    rt.close()


def test_a_similar_alert_on_the_same_service_joins_the_open_investigation(runtime):
    first = start(runtime=runtime, request=_alert("alertmanager", "a1", "pricing", "High error rate on pricing"))
    joined = start(runtime=runtime, request=_alert("pagerduty", "Q1", "pricing",
                                                   "[FIRING:1] High error rate on pricing (pd-3975)"))
    assert first.created and not joined.created and joined.investigation_id == first.investigation_id
    with runtime.session() as s:
        events = outbox.events(session=s, investigation_id=first.investigation_id)
        attached = [e.payload for e in events if e.kind == "attached"]
    assert attached[0]["similar"] == {"investigation_id": first.investigation_id, "title_similarity": 1.0}
    # the joined alert's repeat joins again (by its title: only the first alert's fingerprint is kept)
    again = start(runtime=runtime, request=_alert("pagerduty", "Q1", "pricing", "[FIRING:2] High error rate on pricing"))
    assert again.investigation_id == first.investigation_id and not again.created
    # the same source's other fingerprint is another alert it keeps apart: not joined
    same_source = start(runtime=runtime, request=_alert("alertmanager", "a9", "pricing", "High error rate on pricing"))
    assert same_source.created
    # another service, or another symptom on the same service, is another investigation
    other_service = start(runtime=runtime, request=_alert("alertmanager", "a2", "checkout", "High error rate on pricing"))
    other_title = start(runtime=runtime, request=_alert("alertmanager", "a3", "pricing", "pricing disk almost full"))
    no_title = start(runtime=runtime, request=InvestigationRequest(
        trigger={"text": "pricing is slow"}, origin=Origin(kind="cli")))
    assert other_service.created and other_title.created and no_title.created
    # a finished investigation, or one opened long ago, is not joined
    with runtime.session() as s:
        inv = s.get(Investigation, first.investigation_id)
        inv.status = "COMPLETE"
        stale = s.get(Investigation, other_title.investigation_id)
        stale.created_at = stale.created_at - similar.WINDOW - timedelta(minutes=1)
        s.commit()
    after = start(runtime=runtime, request=_alert("alertmanager", "a4", "pricing", "High error rate: pricing"))
    assert after.created
    stale_again = start(runtime=runtime, request=_alert("alertmanager", "a5", "pricing", "pricing disk almost full!"))
    assert stale_again.created


def test_webhook_intake_joins_a_pagerduty_incident_to_the_alertmanager_one(runtime):
    rules = webhooks.WebhookRules()
    am = alert_group_payload(fingerprints=("f00d",), service="pricing")
    am["alerts"][0]["annotations"]["summary"] = "High error rate on pricing"
    pd = pagerduty_payload(incident_id="Q1")
    pd["event"]["data"]["title"] = "[FIRING:1] High error rate on pricing"
    pd["event"]["data"]["service"]["summary"] = "pricing"
    ids = []
    with runtime.session() as s:
        for source, payload in (("alertmanager", am), ("pagerduty", pd)):
            row = InboundDelivery(source=source, delivery_key=f"k-{source}", payload=payload, status="accepted")
            s.add(row)
            s.flush()
            ids.append(row.id)
        s.commit()
    assert webhooks.process_many(runtime=runtime, delivery_ids=ids, rules=rules) == {ids[0]: "processed",
                                                                                      ids[1]: "processed"}
    with runtime.session() as s:
        assert s.query(Investigation).count() == 1
        rows = [s.get(InboundDelivery, i) for i in ids]
        assert rows[0].investigation_id == rows[1].investigation_id
