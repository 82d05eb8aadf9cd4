"""Investigations through real Dramatiq workers: in-process queue, Redis and RabbitMQ."""

from __future__ import annotations

import time
import uuid

import pytest

from pipeline import phases as P
from pipeline.publishing import RetryLater
from pipeline.runtime import QUEUES, build_runtime
from store import checkpoints, outbox
from store import investigations as invs
from store.config import Settings
from store.db import upgrade
from tests.pipeline.plans import ScriptedPlan, tool_error


def _settings(kind: str, request, sqlite_url: str, tmp_path) -> tuple[Settings, str | None]:
    upgrade(sqlite_url)
    env = {"DATABASE_URL": sqlite_url, "PM_HOME": str(tmp_path / "pm")}
    namespace = None
    if kind == "redis":
        env["REDIS_URL"] = request.getfixturevalue("redis_url")
        namespace = request.getfixturevalue("redis_namespace")
    elif kind == "rabbitmq":
        env["RABBITMQ_URL"] = request.getfixturevalue("rabbitmq_url")
        namespace = f"pmtest-{uuid.uuid4().hex[:8]}"
    return Settings(**env), namespace


def _delete_rabbit_queues(url: str, prefix: str) -> None:
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    for queue, _ in [*QUEUES.values(), ("publishing", 0)]:
        for suffix in ("", ".DQ", ".XQ", ".DQ.XQ"):
            ch.queue_delete(f"{prefix}{queue}{suffix}")
    conn.close()


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["inprocess", "redis", "rabbitmq"])
def test_worker_runs_every_priority_and_retries_a_tool_error(kind, request, sqlite_url, tmp_path):
    settings, namespace = _settings(kind, request, sqlite_url, tmp_path)
    plan = ScriptedPlan(fail={P.CHANGES: [tool_error()]})
    rt = build_runtime(settings, plan=plan, tools_factory=lambda inv: None, namespace=namespace,
                       min_backoff_ms=50, max_backoff_ms=200)
    handle = rt.start_worker(2, recover=False)
    try:
        ids = []
        for priority in ("P1", "P2", "P3"):
            with rt.session() as s:
                ids.append(invs.create(session=s, trigger={"text": f"t {priority}"}, origin={"kind": "cli"},
                                       priority=priority).id)
            rt.enqueue(ids[-1], priority=priority)
        finals = [rt.wait(i, 30) for i in ids]
    finally:
        handle.stop()
        rt.close()
        if kind == "rabbitmq":
            _delete_rabbit_queues(settings.rabbitmq_url, f"{namespace}.")
    assert [f["status"] for f in finals] == ["COMPLETE"] * 3
    # exactly one CHANGES execution failed and was retried by the broker; nothing else ran twice
    assert plan.runs[(P.CHANGES, 0)] == 4
    assert sum(plan.runs.values()) == 3 * 9 + 1
    assert rt.timing.stats["run_investigation_fast"]["count"] >= 1


class _RecordingSink:
    """A stand-in sink: remembers what it was sent, asks to wait once, returns message ids."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int, dict | None]] = []
        self.waited = False

    def deliver(self, event: dict, investigation: dict, publication: dict | None) -> dict:
        if event["seq"] == 3 and not self.waited:
            self.waited = True
            raise RetryLater(0.3, "429 from sink")
        self.seen.append((investigation["id"], event["seq"], publication))
        return {"status_ts": "1.0"} if event["kind"] == "created" else {f"seq{event['seq']}": True}


@pytest.mark.integration
def test_publish_events_delivers_each_event_once_in_order(sqlite_url, tmp_path):
    settings, _ = _settings("inprocess", None, sqlite_url, tmp_path)
    rt = build_runtime(settings, plan=ScriptedPlan(), tools_factory=lambda inv: None, min_backoff_ms=50)
    sink = _RecordingSink()
    rt.register_publisher("slack", sink)
    handle = rt.start_worker(2, recover=False)
    try:
        with rt.session() as s:
            inv_id = invs.create(session=s, trigger={"text": "x"}, origin={"kind": "slack", "channel": "C9"}).id
        rt.enqueue(inv_id)
        rt.wait(inv_id, 30)
        deadline = time.monotonic() + 15
        while True:
            with rt.session() as s:
                if outbox.pending_count(session=s, sink="slack") == 0:
                    break
            assert time.monotonic() < deadline, "slack deliveries still pending"
            time.sleep(0.05)
        with rt.session() as s:
            total = len(outbox.events(session=s, investigation_id=inv_id))
            pub = outbox.get_publication(session=s, investigation_id=inv_id, sink="slack", target="C9")
            ref = dict(pub.external_ref)
    finally:
        handle.stop()
        rt.close()
    assert sink.waited
    assert [seq for _, seq, _ in sink.seen] == list(range(1, total + 1))
    assert sink.seen[0][2] is None  # first delivery: nothing published yet
    assert sink.seen[1][2]["external_ref"] == {"status_ts": "1.0"}  # later ones edit in place
    assert ref["status_ts"] == "1.0" and ref[f"seq{total}"] is True


@pytest.mark.integration
def test_requeue_stale_rebuilds_a_lost_in_process_queue(sqlite_url, tmp_path):
    settings, _ = _settings("inprocess", None, sqlite_url, tmp_path)
    plan = ScriptedPlan()
    rt = build_runtime(settings, plan=plan, tools_factory=lambda inv: None)
    with rt.session() as s:
        inv_id = invs.create(session=s, trigger={"text": "x"}, origin={"kind": "cli"}).id
        checkpoints.start(session=s, investigation_id=inv_id, phase=P.INITIALIZING)
        checkpoints.finish(session=s, investigation_id=inv_id, phase=P.INITIALIZING, output={})
    # never enqueued (the process that created it died): the worker's start finds it
    handle = rt.start_worker(1)
    try:
        assert rt.wait(inv_id, 30)["status"] == "COMPLETE"
    finally:
        handle.stop()
        rt.close()
    assert (P.INITIALIZING, 0) not in plan.runs and plan.runs[(P.CONTEXT_GATHERING, 0)] == 1


@pytest.mark.parametrize("env, names", [
    ({"REDIS_URL": "redis://127.0.0.1:1/0"}, "REDIS_URL=redis://127.0.0.1:1/0"),
    ({"RABBITMQ_URL": "amqp://guest:secret@127.0.0.1:1/"}, "RABBITMQ_URL=amqp://guest:\\*\\*\\*@127.0.0.1:1/"),
])
def test_unreachable_broker_names_the_variable_and_hides_the_password(env, names):
    from pipeline.broker import make_broker
    from pipeline.errors import BrokerUnavailable

    with pytest.raises(BrokerUnavailable, match=names) as info:
        make_broker(Settings(**env))
    assert "secret" not in str(info.value)
