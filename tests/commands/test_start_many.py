"""commands.investigate.start_many: a burst of starts in one transaction, same outcome as start() one by one."""

from __future__ import annotations

import pytest

from commands.investigate import start, start_many
from commands.requests import InvestigationRequest, Origin
from pipeline.runtime import build_runtime
from store import outbox
from store.config import load_settings
from store.db import upgrade
from store.models import Investigation


@pytest.fixture(params=["sqlite", "pg"])
def runtime(request, tmp_path, monkeypatch):
    for var in ("REDIS_URL", "RABBITMQ_URL", "S3_BUCKET"):
        monkeypatch.delenv(var, raising=False)
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    upgrade(url)
    rt = build_runtime(load_settings(DATABASE_URL=url, PM_HOME=str(tmp_path)))
    yield rt
    rt.close()


def _req(text: str, fp: str | None = None, user: str = "U1", channel: str = "C1") -> InvestigationRequest:
    return InvestigationRequest(trigger={"text": text}, origin=Origin(kind="slack", channel=channel, user=user),
                                fingerprint=fp, requested_by=user, sources={"world": "/w"})


def test_burst_creates_attaches_and_keeps_each_thread_in_order(runtime):
    open_before = start(runtime=runtime, request=_req("db down", fp="fp-open"))
    requests = [_req("checkout is slow"), _req("checkout is slow"),   # same slug, same second: two ids
                _req("payments 500s", fp="fp-new", user="U2"), _req("payments 500s", fp="fp-new", user="U3"),
                _req("db down again", fp="fp-open", user="U4")]
    results = start_many(runtime=runtime, requests=requests)

    assert [r.created for r in results] == [True, True, True, False, False]
    assert results[0].investigation_id != results[1].investigation_id
    assert results[3].investigation_id == results[2].investigation_id      # attached within the batch
    assert results[4].investigation_id == open_before.investigation_id     # attached to the open one
    with runtime.session() as s:
        assert s.query(Investigation).count() == 4
        inv = s.get(Investigation, results[2].investigation_id)
        assert (inv.status, inv.fingerprint, inv.requested_by, inv.sources) == ("QUEUED", "fp-new", "U2", {"world": "/w"})
        kinds = [e.kind for e in outbox.events(session=s, investigation_id=results[2].investigation_id)]
        assert kinds == ["created", "attached"]
        assert [e.kind for e in outbox.events(session=s, investigation_id=open_before.investigation_id)] == \
            ["created", "attached"]
        # every event has its Slack delivery, claimable in order (one event per investigation at a time)
        claimed = outbox.claim_pending(session=s, sink="slack", limit=50)
        assert sorted(c.investigation_id for c in claimed) == sorted({r.investigation_id for r in results})
        assert all(c.event["seq"] == 1 for c in claimed)



def test_before_commit_writes_in_the_batch_transaction_and_its_failure_stores_nothing(runtime):
    seen = []

    def hook(session, results):
        seen.append([r.investigation_id for r in results])
        # what the Slack front door does there (links its inbound rows): visible in this transaction
        assert session.query(Investigation).count() == 2

    results = start_many(runtime=runtime, requests=[_req("a"), _req("b")], before_commit=hook)
    assert seen == [[r.investigation_id for r in results]]

    def failing(session, results):
        raise RuntimeError("link failed")

    with pytest.raises(RuntimeError):
        start_many(runtime=runtime, requests=[_req("c"), _req("d")], before_commit=failing)
    with runtime.session() as s:
        assert s.query(Investigation).count() == 2  # neither c nor d was recorded without its link
