"""The knowledge base in a helper process (store/knowledge_proc.py): the same answers as in this process,
a write that lasts, a helper that dies mid-run, and `pm investigate` leaving Chroma to the helper."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

from store import knowledge_proc
from store.knowledge import Incident, KnowledgeBase, make_client, shared_embedder
from tests.bot.test_cli import CLEAN_ENV, ROOT, demo_world


def _incident(inv_id: str, service: str, titles: list[str]) -> Incident:
    return Incident(investigation_id=inv_id, domain="shop", services=[service], alert_titles=titles,
                    root_cause={"service": service, "category": "deploy"})


PAST = [_incident("inv-past-1", "payments", ["payments error rate above 5%"]),
        _incident("inv-past-2", "search", ["search latency p99 above 2s"])]
QUERY = _incident("inv-now", "payments", ["payments error rate above 5% after deploy"])


def _settings(home) -> SimpleNamespace:
    return SimpleNamespace(home=str(home), chroma_host=None)


def test_the_helper_answers_as_this_process_would_and_its_writes_last(tmp_path):
    memory = knowledge_proc.start(_settings(tmp_path))
    try:
        assert memory.kb().upsert(PAST) == 2
        remote = memory.kb().similar(QUERY, k=3, domain="shop")
        assert memory._helper is not None and not memory._helper.broken  # the helper answered both
        assert memory._local._kb is None  # nothing was opened in this process
    finally:
        memory.close()
    # the helper's write is in the store on disk: the in-process knowledge base reads it back, same ranking
    local = KnowledgeBase(make_client(home=tmp_path, chroma_host=None), shared_embedder())
    assert local.count() == 2
    here = local.similar(QUERY, k=3, domain="shop")
    assert [(m.incident.investigation_id, round(m.score, 6)) for m in remote] == \
        [(m.incident.investigation_id, round(m.score, 6)) for m in here]
    assert remote[0].incident.investigation_id == "inv-past-1"


def test_a_helper_that_dies_is_replaced_by_this_process(tmp_path):
    memory = knowledge_proc.start(_settings(tmp_path))
    try:
        assert memory.kb().count() == 0  # through the helper
        memory._helper.proc.kill()
        memory._helper.proc.wait()
        # the next request finds the pipe closed and the knowledge base opens here instead
        assert memory.kb().upsert(PAST[:1]) == 1
        assert memory._helper.broken
        assert memory._local._kb is not None
        assert [m.incident.investigation_id for m in memory.kb().similar(QUERY, k=3)] == ["inv-past-1"]
    finally:
        memory.close()


def test_errors_of_the_knowledge_base_come_back_as_themselves(tmp_path):
    memory = knowledge_proc.start(_settings(tmp_path))
    try:
        try:
            memory.kb().no_such_method()
        except AttributeError as exc:
            assert "no_such_method" in str(exc)
        else:  # pragma: no cover - the helper must raise what the knowledge base raised
            raise AssertionError("no error came back")
        assert not memory._helper.broken  # an answer, even an error, keeps the helper
    finally:
        memory.close()


_PROBE = """
import json, sys
from bot.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "chromadb": "chromadb" in sys.modules, "onnxruntime": "onnxruntime" in sys.modules}),
      file=sys.stderr)
"""


def test_pm_investigate_leaves_chroma_and_the_model_to_the_helper(tmp_path):
    """The CLI's own process never imports chromadb or onnxruntime; the report still has the knowledge
    base's sections, and the second run recognises the first."""
    env = dict(CLEAN_ENV, PM_HOME=str(tmp_path))
    runs = []
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-c", _PROBE, "investigate", "--world", str(demo_world()), "--json"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
        assert proc.returncode == 0, proc.stderr
        probe = json.loads(proc.stderr.strip().splitlines()[-1])
        assert probe == {"code": 0, "chromadb": False, "onnxruntime": False}, probe
        runs.append(json.loads(proc.stdout))
    assert runs[0]["similar_incidents"] == [] and "symptoms" in runs[0]
    assert not [m for m in runs[1].get("missing_sources") or [] if m.startswith("knowledge")]
    assert runs[1]["similar_incidents"], runs[1].get("missing_sources")
