"""The admin API's status view read with one narrow query: runs, tokens per model, and no report needed."""

from __future__ import annotations

import pytest

from commands import api as api_cmd
from pipeline.runtime import build_runtime
from store import agent_runs
from store.config import load_settings
from store.db import upgrade
from store.models import Investigation


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_status_view_sums_tokens_per_model_and_splits_running_agents(tmp_path, db, request):
    url = request.getfixturevalue("sqlite_url" if db == "sqlite" else "pg_url")
    upgrade(url)
    runtime = build_runtime(load_settings(PM_HOME=str(tmp_path), DATABASE_URL=url))
    try:
        inv_id = api_cmd.submit(runtime=runtime, body={"text": "checkout 503s"}, subject="t")["investigation_id"]
        with runtime.session() as s:
            a = agent_runs.start(session=s, investigation_id=inv_id, agent="logs-agent", phase="EVIDENCE",
                                 model="claude-haiku")
            agent_runs.finish(session=s, run_id=a.id, tokens_in=100, tokens_out=20, tool_calls=[{"x": "y" * 1000}])
            b = agent_runs.start(session=s, investigation_id=inv_id, agent="metrics-agent", phase="EVIDENCE",
                                 model="claude-haiku")
            agent_runs.finish(session=s, run_id=b.id, tokens_in=7, tokens_out=3)
            agent_runs.start(session=s, investigation_id=inv_id, agent="verifier", phase="VERIFICATION",
                             model="claude-sonnet")
            agent_runs.start(session=s, investigation_id=inv_id, agent="evidence-engine", phase="EVIDENCE")
            inv = s.get(Investigation, inv_id)
            inv.report = {"verdict": "LIKELY", "blob": "z" * 200_000}  # never read by the status view
        view = api_cmd.status_view(runtime=runtime, investigation_id=inv_id)
        with pytest.raises(api_cmd.Missing):
            api_cmd.status_view(runtime=runtime, investigation_id="inv-nope")
    finally:
        runtime.close()
    assert view["investigation_id"] == inv_id and view["status"] == "QUEUED" and view["trigger"] == {
        "text": "checkout 503s"}
    assert view["agents_completed"] == ["logs-agent", "metrics-agent"]
    assert view["agents_running"] == ["evidence-engine", "verifier"]
    assert view["token_usage"] == {"total": 130, "input": 107, "output": 23,
                                   "by_model": {"claude-haiku": 130, "claude-sonnet": 0, "none": 0}}
    assert view["created_at"].endswith("Z") and view["elapsed_seconds"] >= 0
