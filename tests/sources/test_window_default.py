"""sources.yaml's `window:` is the span read around the trigger for every investigation on PM_SOURCES,
not only for `pm investigate`: a webhook-started investigation (its trigger carries no window of its own)
reads it too, and a trigger's own lookback still wins."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from commands import investigate
from commands.requests import InvestigationRequest, Origin
from pipeline.runtime import build_runtime
from sandbox.world import parse_ts
from store import checkpoints
from store.config import load_settings
from store.db import upgrade

AT = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _context_window(runtime, investigation_id: str) -> tuple[float, float]:
    with runtime.session() as s:
        cp = checkpoints.get(session=s, investigation_id=investigation_id, phase="CONTEXT_GATHERING")
        assert cp is not None and cp.status == "done"
        win = cp.output["window"]
    return parse_ts(win["start"]), parse_ts(win["end"])


@pytest.mark.integration
def test_a_webhook_investigation_reads_the_window_of_sources_yaml(tmp_path, sqlite_url):
    logs = tmp_path / "logs"
    logs.mkdir()
    lines = [{"ts": _iso(AT - timedelta(minutes=m)), "level": "ERROR", "message": "db pool exhausted"}
             for m in range(0, 300, 5)]
    (logs / "checkout.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    (tmp_path / "sources.yaml").write_text(
        "logs: [{kind: files, path: 'logs/{service}.jsonl'}]\n"
        "window: {lookback: 5h, lookahead: 10m}\n")
    upgrade(sqlite_url)
    settings = load_settings(PM_HOME=str(tmp_path / "home"), DATABASE_URL=sqlite_url,
                             PM_SOURCES=str(tmp_path / "sources.yaml"))
    runtime = build_runtime(settings)
    worker = runtime.start_worker()
    try:
        started = []
        for n, extra in enumerate(({}, {"lookback_s": 1800.0})):
            req = InvestigationRequest(
                trigger={"alert": f"am-{n}", "service": "checkout", "title": "checkout errors", "at": _iso(AT), **extra},
                origin=Origin(kind="webhook", source="alertmanager"))
            started.append(investigate.start(runtime=runtime, request=req).investigation_id)
        for inv in started:
            runtime.wait(inv, timeout_s=120)
        at = AT.timestamp()
        start, end = _context_window(runtime, started[0])
        assert (at - start, end - at) == (5 * 3600, 600)  # sources.yaml's window, not the built-in 3 h / 30 min
        start, end = _context_window(runtime, started[1])
        assert (at - start, end - at) == (1800, 600)  # the trigger's own lookback wins
    finally:
        worker.stop()
        runtime.close()
