"""Concurrent front doors asking for the same fingerprint get one investigation (real PostgreSQL)."""

from __future__ import annotations

import threading

from commands.investigate import start
from commands.requests import InvestigationRequest, Origin
from pipeline.runtime import build_runtime
from store import outbox
from store.config import load_settings
from store.db import upgrade
from store.models import Investigation


def test_racing_starts_with_one_fingerprint_make_one_investigation(pg_url, tmp_path, monkeypatch):
    for var in ("REDIS_URL", "RABBITMQ_URL", "S3_BUCKET"):
        monkeypatch.delenv(var, raising=False)
    upgrade(pg_url)
    runtime = build_runtime(load_settings(DATABASE_URL=pg_url, PM_HOME=str(tmp_path)))
    barrier = threading.Barrier(6)
    results = []

    def front_door(i: int) -> None:
        request = InvestigationRequest(
            trigger={"alert": "pd-7781"},
            origin=Origin(kind="webhook", source="pagerduty"),
            fingerprint="pagerduty:incident-42",
            requested_by=f"door-{i}",
        )
        barrier.wait()
        results.append(start(runtime=runtime, request=request))

    threads = [threading.Thread(target=front_door, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == 6
    assert sum(r.created for r in results) == 1
    assert len({r.investigation_id for r in results}) == 1
    with runtime.session() as s:
        assert s.query(Investigation).count() == 1
        kinds = [e.kind for e in outbox.events(session=s, investigation_id=results[0].investigation_id)]
    assert kinds.count("attached") == 5
