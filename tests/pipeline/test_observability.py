"""JSON logs with investigation and correlation ids (secrets masked) and OpenTelemetry spans, from a
real investigation: real worker, the sandbox world example-2 through the MCP gateway, spans caught
by the SDK's in-memory exporter (the OTLP exporter is the same SDK pipeline with another exporter).
"""

from __future__ import annotations

import io
import json
import logging

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from commands import investigate
from commands.requests import InvestigationRequest, Origin
from pipeline import logs, tracing
from pipeline.middleware import current_investigation
from pipeline.runtime import build_runtime
from store.config import load_settings
from store.db import upgrade
from tests.paths import SHARED

WORLD = SHARED / "worlds" / "example-2"
API_KEY = "sk-ant-api03-verysecretvalue"


def _capture_json(settings) -> tuple[io.StringIO, list[logging.Handler]]:
    root = logging.getLogger()
    saved = list(root.handlers)
    stream = io.StringIO()
    logs.configure(settings, json_logs=True, stream=stream)
    return stream, saved


def _restore(saved: list[logging.Handler]) -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in saved:
        root.addHandler(h)


def test_json_logs_carry_ids_and_mask_secrets(tmp_path):
    settings = load_settings(PM_HOME=str(tmp_path), API_KEYS="k-12345678:admin,plainkey99", JIRA_API_TOKEN="jira-tok-777",
                             ANTHROPIC_API_KEY=API_KEY)
    stream, saved = _capture_json(settings)
    token = current_investigation.set("inv-1")
    try:
        log = logging.getLogger("pm.test")
        log.warning("calling with key %s and jira-tok-777, header Authorization: Bearer abcdefghijklmnop", API_KEY)
        log.warning("api keys k-12345678 and plainkey99; db postgresql://pm:hunter2pass@db/pm; password=opensesame")
        try:
            raise RuntimeError(f"boom {API_KEY}")
        except RuntimeError:
            log.exception("failed")
    finally:
        current_investigation.reset(token)
        _restore(saved)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 3
    assert all(rec["investigation_id"] == "inv-1" and rec["correlation_id"] == "-" for rec in lines)
    text = stream.getvalue()
    for secret in (API_KEY, "jira-tok-777", "abcdefghijklmnop", "k-12345678", "plainkey99", "hunter2pass", "opensesame"):
        assert secret not in text, secret
    assert "boom ***" in lines[2]["exception"] and lines[2]["level"] == "ERROR"


def test_spans_and_job_logs_of_a_real_investigation(tmp_path, sqlite_url):
    upgrade(sqlite_url)
    settings = load_settings(PM_HOME=str(tmp_path), DATABASE_URL=sqlite_url, PM_WORLD=str(WORLD), PM_WORKER_THREADS=1)
    exporter = InMemorySpanExporter()
    assert tracing.setup(settings, exporter=exporter)
    stream, saved = _capture_json(settings)
    logging.getLogger("pipeline.jobs").setLevel(logging.INFO)
    runtime = build_runtime(settings)
    worker = runtime.start_worker()
    try:
        inv_id = investigate.start(runtime=runtime, request=InvestigationRequest(
            trigger={"ticket": "PAY-44706"}, origin=Origin(kind="api"), mode="fast")).investigation_id
        assert runtime.wait(inv_id, 180)["status"] == "COMPLETE"
    finally:
        worker.stop()
        runtime.close()
        tracing.shutdown()
        _restore(saved)
    spans = exporter.get_finished_spans()
    jobs = [s for s in spans if s.name == "investigation.job"]
    assert jobs and all(s.attributes["pm.investigation_id"] == inv_id for s in jobs)
    job_ids = {s.context.span_id for s in jobs}
    phases = {s.name for s in spans if s.name.startswith("phase ")}
    assert {"phase EVIDENCE", "phase HYPOTHESES", "phase REPORT"} <= phases
    agents = [s for s in spans if s.name == "agent evidence-engine"]
    assert agents and "gen_ai.usage.input_tokens" in agents[0].attributes
    lookups = [s for s in spans if s.name == "trigger.lookup"]  # the typed ticket looked up before the start
    assert len(lookups) == 1 and lookups[0].parent is None
    lookup_ids = {s.context.span_id for s in lookups}
    tools = [s for s in spans if s.name.startswith("mcp ")]
    assert tools and all(s.parent is not None and s.parent.span_id in job_ids | lookup_ids for s in tools)
    assert any(s.parent.span_id in lookup_ids for s in tools if s.parent is not None)
    assert any(s.parent.span_id in job_ids for s in tools if s.parent is not None)
    assert all(s.end_time >= s.start_time for s in spans)
    job_lines = [json.loads(line) for line in stream.getvalue().splitlines() if '"pipeline.jobs"' in line]
    assert job_lines, stream.getvalue()[-2000:]
    assert job_lines[0]["investigation_id"] == inv_id and job_lines[0]["correlation_id"] not in ("-", inv_id)
