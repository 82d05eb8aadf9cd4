"""The knowledge base: offline embeddings against a published reference, real embedded ChromaDB, a real
Chroma server (`chroma run`), bad input (corrupted store, unreadable records, unreachable server), and
whole investigations that remember each other."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from commands import feedback
from commands.investigate import start
from commands.requests import InvestigationRequest, Origin
from commands.schedules import knowledge_update
from pipeline.runtime import build_runtime
from sandbox.tools import WorldTools
from store.config import load_settings
from store.db import upgrade
from store.embeddings import EmbeddingsUnavailable, MiniLM, read_safetensors
from store.errors import NotFound
from store.knowledge import (
    SEEN_BEFORE,
    Incident,
    KnowledgeBase,
    KnowledgeUnavailable,
    Memory,
    add_feedback,
    make_client,
    memory_from_settings,
    open_for_rebuild,
    remember,
    shared_embedder,
    tally,
)
from store.models import Investigation

ROOT = Path(__file__).resolve().parents[2]
WORLDS = ROOT / "examples" / "worlds"

# The sentence-transformers documentation's own example for this model (README "Usage" and docs index,
# UKPLab/sentence-transformers): cosine similarities printed to 4 decimals.
REFERENCE_SENTENCES = ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
REFERENCE_SIMILARITY = np.array([[1.0000, 0.6660, 0.1046], [0.6660, 1.0000, 0.1411], [0.1046, 0.1411, 1.0000]])


@pytest.fixture(scope="module")
def model() -> MiniLM:
    return shared_embedder()  # type: ignore[return-value]


# -- embeddings ------------------------------------------------------------------------------------
def test_embeddings_reproduce_the_published_similarities_to_1e4(model):
    e = model.embed(REFERENCE_SENTENCES)
    assert e.shape == (3, 384) and e.dtype == np.float32
    assert np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-6)
    # the reference is rounded to 4 decimals (±5e-5); float32 adds far less than the rest of 1e-4
    assert np.abs(e @ e.T - REFERENCE_SIMILARITY).max() <= 1e-4


def test_float32_batches_agree_with_float64_one_text_at_a_time(model):
    texts = [*REFERENCE_SENTENCES, "", "payments-api p99 latency above 2s after deploy of v2.4.1; "
             "HikariPool-1 - Connection is not available, request timed out after 30000ms" * 3]
    exact = MiniLM(model.model_dir, dtype=np.float64, max_tokens=model.max_tokens)
    one_by_one = np.stack([exact.embed([t])[0] for t in texts])
    assert np.abs(model.embed(texts) - one_by_one).max() < 1e-5  # padding and batching change nothing


def test_missing_or_truncated_model_says_how_to_install_it(tmp_path):
    with pytest.raises(EmbeddingsUnavailable, match="ensure-embeddings.sh"):
        MiniLM(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":")
    with pytest.raises(EmbeddingsUnavailable, match="ensure-embeddings.sh"):
        read_safetensors(tmp_path / "model.safetensors")


# -- incidents -------------------------------------------------------------------------------------
def _incident(inv_id, *, service, kind, titles, templates=(), domain="payments", others=()):
    return Incident(
        investigation_id=inv_id, domain=domain, services=[service, *others], alert_titles=list(titles),
        log_templates=[{"key": f"k-{t}", "template": t, "count": 10} for t in templates],
        metrics=[f"{service}/error_rate"],
        root_cause={"service": service, "category": kind, "change_kind": kind, "summary": f"{kind} on {service}"},
        fix=f"roll back {service}", verdict="CONFIRMED", confidence=90)


PAST = [
    _incident("inv-pool", service="payments-api", kind="config", titles=["payments-api p99 latency above 2s"],
              templates=["HikariPool-1 - Connection is not available, request timed out after <*>ms"]),
    _incident("inv-cache", service="search", kind="deploy", titles=["search 5xx ratio above 5%"],
              templates=["NullPointerException in SearchIndex.lookup"], domain="discovery"),
    _incident("inv-disk", service="ledger-db", kind="capacity", titles=["ledger-db disk usage above 90%"],
              templates=["could not extend file: No space left on device"]),
]


def _check_basic_memory(kb: KnowledgeBase) -> None:
    assert kb.upsert(PAST) == 3 and kb.count() == 3
    assert kb.upsert(PAST[:1]) == 1 and kb.count() == 3  # upsert by investigation id
    query = _incident("inv-new", service="payments-api", kind="?", titles=["Slow checkout: payments-api latency high"],
                      templates=["HikariPool-1 - Connection is not available, request timed out after <*>ms"])
    (best, *rest) = kb.similar(query, k=3, domain="payments")
    assert best.incident.investigation_id == "inv-pool" and best.score >= SEEN_BEFORE
    assert all(m.score < best.score for m in rest)
    assert best.as_report()["root_cause"] == {"service": "payments-api", "category": "config", "change_kind": "config"}
    unrelated = _incident("inv-x", service="mailer", kind="?", titles=["mailer queue depth growing"])
    assert all(m.score < SEEN_BEFORE for m in kb.similar(unrelated, k=3))


def test_embedded_chroma_remembers_and_finds_recurrences(tmp_path, model):
    kb = KnowledgeBase(make_client(home=tmp_path, chroma_host=None), model)
    _check_basic_memory(kb)
    # feedback replaces the stored tally; a 👎 last marks the root cause disputed
    assert kb.set_feedback("inv-pool", tally([{"vote": 1}, {"vote": -1, "comment": "it was the DB"}]))
    got = kb.get("inv-pool")
    assert got is not None and got.feedback == {"up": 1, "down": 1, "comments": ["it was the DB"], "disputed": True}
    assert not kb.set_feedback("inv-nope", tally([]))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def chroma_server(tmp_path):
    port = _free_port()
    exe = Path(sys.executable).with_name("chroma")
    proc = subprocess.Popen([str(exe), "run", "--path", str(tmp_path / "server"), "--host", "127.0.0.1",
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"chroma run did not start on port {port}") from None
                time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_http_client_against_a_real_chroma_server(chroma_server, tmp_path, model):
    kb = KnowledgeBase(make_client(home=tmp_path, chroma_host=f"http://{chroma_server}"), model)
    _check_basic_memory(kb)
    assert not (tmp_path / "chroma").exists()  # nothing embedded when CHROMA_HOST is set
    again = open_for_rebuild(home=tmp_path, chroma_host=chroma_server, embedder=model)
    assert again.rebuild(PAST[1:]) == 2 and again.count() == 2


# -- bad input -------------------------------------------------------------------------------------
def test_unreachable_chroma_server_is_a_clear_error(tmp_path, model):
    port = _free_port()  # nothing listens there
    with pytest.raises(KnowledgeUnavailable, match="CHROMA_HOST"):
        KnowledgeBase(make_client(home=tmp_path, chroma_host=f"127.0.0.1:{port}"), model).count()
    with pytest.raises(KnowledgeUnavailable):
        open_for_rebuild(home=tmp_path, chroma_host=f"127.0.0.1:{port}", embedder=model)


def test_unreadable_record_and_corrupted_store_are_reported_then_repaired(tmp_path, model):
    kb = KnowledgeBase(make_client(home=tmp_path, chroma_host=None), model)
    kb.upsert(PAST)
    # a record someone else wrote into our collection, without our metadata
    kb._collection().upsert(ids=["junk"], embeddings=[model.embed(["x"])[0].tolist()], metadatas=[{"domain": "payments"}],
                            documents=["payments-api p99 latency above 2s"])
    memory = Memory(lambda: kb)
    report = remember(memory, investigation_id="inv-q", domain="payments", ctx={"trigger_text": "payments-api p99 "
                      "latency above 2s"}, sig={}, chg=None, report={"missing_sources": []})
    assert report["similar_incidents"] == []
    assert any(m.startswith("knowledge: ") and "knowledge-update" in m for m in report["missing_sources"])
    # the store's database itself unreadable: opening fails, the rebuild moves it aside and starts again
    from chromadb.api.client import SharedSystemClient

    SharedSystemClient.clear_system_cache()
    (tmp_path / "chroma" / "chroma.sqlite3").write_bytes(b"not a database" * 64)
    with pytest.raises(KnowledgeUnavailable, match="knowledge-update"):
        KnowledgeBase(make_client(home=tmp_path, chroma_host=None), model).count()
    fresh = open_for_rebuild(home=tmp_path, chroma_host=None, embedder=model)
    assert fresh.rebuild(PAST) == 3 and fresh.similar(PAST[0], k=1, exclude=["inv-pool"])
    assert [p.name.startswith("chroma.broken-") for p in tmp_path.iterdir()].count(True) == 1


# -- whole investigations --------------------------------------------------------------------------
def _investigate(runtime, world: Path, domain: str) -> dict:
    started = start(runtime=runtime, request=InvestigationRequest(
        trigger={"text": f"investigate {world.name}"}, origin=Origin(kind="cli"), domain=domain,
        sources={"world": str(world)}))
    assert runtime.machine.advance(started.investigation_id) == "COMPLETE"
    with runtime.session() as s:
        inv = s.get(Investigation, started.investigation_id)
        return {"id": inv.id, **inv.report}


def test_investigations_remember_each_other_and_reindex_rebuilds_from_the_database(tmp_path, sqlite_url):
    upgrade(sqlite_url)
    settings = load_settings(PM_HOME=str(tmp_path), DATABASE_URL=sqlite_url)
    runtime = build_runtime(settings, tools_factory=lambda inv: WorldTools(Path(inv["sources"]["world"])))
    try:
        first = _investigate(runtime, WORLDS / "demo-deploy", "music")
        assert first["similar_incidents"] == [] and first["symptoms"]["alert_titles"]
        assert first["root_cause"]["change_kind"] == "deploy"
        other = _investigate(runtime, WORLDS / "demo-capacity", "music")
        assert first["id"] not in [m["investigation_id"] for m in other["similar_incidents"]]
        again = _investigate(runtime, WORLDS / "demo-deploy", "music")
        (seen, *_) = again["similar_incidents"]
        assert seen["investigation_id"] == first["id"] and seen["score"] >= SEEN_BEFORE
        assert seen["root_cause"] == {"service": "playlists", "category": "deploy", "change_kind": "deploy",
                                      "change_id": first["root_cause"]["change_id"]}
        assert again["missing_sources"] == []
        # the hypotheses phase used it as a prior: cited as evidence, its weight in the report
        top = again["hypotheses"][0]
        assert top["service"] == "playlists" and top["features"]["prior"] > 0
        assert any(e["source"] == "knowledge" and e["ref"] == f"investigation:{first['id']}" for e in top["evidence"])
        (applied,) = again["priors"]["applied"]
        assert applied["service"] == "playlists" and first["id"] in applied["incidents"]
        assert applied["weight"] == top["features"]["prior"]

        memory = memory_from_settings(settings)
        out = feedback.record(runtime=runtime, memory=memory, investigation_id=first["id"], vote=1, user="U2")
        assert out["indexed"] and memory.kb().get(first["id"]).feedback["up"] == 1  # type: ignore[union-attr]
        out = feedback.record(runtime=runtime, memory=memory, investigation_id=first["id"], vote=-1, user="U1",
                              comment="not the deploy")
        assert out["feedback"]["disputed"] and memory.kb().get(first["id"]).feedback["disputed"]  # type: ignore
        # a disputed root cause is no prior any more (the other past recurrence still is)
        third = _investigate(runtime, WORLDS / "demo-deploy", "music")
        assert any(first["id"] in n["incidents"] and n["reason"].startswith("disputed")
                   for n in third["priors"]["not_applied"])
        assert first["id"] not in [i for a in third["priors"]["applied"] for i in a["incidents"]]
        with pytest.raises(ValueError), runtime.session() as s:
            add_feedback(session=s, investigation_id=first["id"], vote=5)
        with pytest.raises(NotFound), runtime.session() as s:
            add_feedback(session=s, investigation_id="inv-nope", vote=1)
        shutil.rmtree(tmp_path / "chroma")  # the index is lost; the database still knows everything
        from chromadb.api.client import SharedSystemClient

        SharedSystemClient.clear_system_cache()
        seen_progress: list[tuple[int, int]] = []
        out = knowledge_update(runtime=runtime, settings=settings, progress=lambda d, t: seen_progress.append((d, t)))
        assert out == {"status": "ok", "indexed": 4, "collection": "incidents"} and seen_progress[-1] == (4, 4)
        assert knowledge_update(runtime=runtime, settings=settings)["indexed"] == 4  # idempotent
        kb = open_for_rebuild(home=tmp_path, chroma_host=None, embedder=shared_embedder())
        assert kb.count() == 4
        stored = kb.get(first["id"])
        assert stored is not None and stored.feedback == {"up": 1, "down": 1, "comments": ["not the deploy"],
                                                          "disputed": True}
        with runtime.session() as s:
            assert len(list(s.scalars(select(Investigation)))) == 4
    finally:
        runtime.close()



def test_reports_say_seen_before_in_every_medium_with_outside_text_escaped():
    from publishers import html, jira, markdown, slack

    report = {"verdict": "CONFIRMED", "confidence": 90, "root_cause": {"service": "pay"}, "hypotheses": [],
              "similar_incidents": [{"investigation_id": "inv-2026-01-01-000000-pay", "score": 0.91,
                                     "summary": "deploy broke pay <!channel> {color:red}", "fix": "roll back",
                                     "root_cause": {"service": "pay", "category": "deploy", "change_kind": "deploy"},
                                     "feedback": {"up": 0, "down": 1, "comments": [], "disputed": True}}]}
    md = markdown.render_report(report)
    assert "## Seen before" in md and "inv-2026-01-01-000000-pay" in md and "disputed" in md
    def link(inv_id: str) -> str:
        return f"https://pm.example/investigations/{inv_id}?t=x"

    _, blocks = slack.report_blocks({"id": "inv-now", "status": "COMPLETE"}, report, link=link)
    seen = [e["text"] for b in blocks if b["type"] == "context" for e in b["elements"] if "Seen before" in e["text"]]
    assert len(seen) == 1 and "<!channel>" not in seen[0]
    assert "<https://pm.example/investigations/inv-2026-01-01-000000-pay?t=x|inv-2026-01-01-000000-pay>" in seen[0]
    wiki = jira.render_report(report, "inv-now", link=link)
    assert "|https://pm.example/investigations/inv-2026-01-01-000000-pay?t=x]" in wiki
    assert "{color:red}" not in wiki
    page = html.render_report_page({"id": "inv-now", "report": report, "status": "COMPLETE"}, {}, {})
    assert 'href="/investigations/inv-2026-01-01-000000-pay"' in page and "<!channel>" not in page


def test_seen_before_says_how_the_past_ticket_was_resolved_escaped_in_every_medium():
    from publishers import html, jira, markdown, slack

    resolution = {"name": "Fixed <!here>", "ticket": "PAY-7", "comment": "rolled back {color:red}x{color} <b>now</b>",
                  "fix_versions": ["pay-4.2.1"], "by": "Ann"}
    report = {"verdict": "CONFIRMED", "confidence": 90, "root_cause": {"service": "pay"}, "hypotheses": [],
              "similar_incidents": [{"investigation_id": "inv-2026-01-01-000000-pay", "score": 0.91,
                                     "summary": "deploy broke pay", "fix": "roll back",
                                     "root_cause": {"service": "pay", "category": "deploy", "change_kind": "deploy"},
                                     "feedback": {"up": 0, "down": 0, "comments": [], "disputed": False,
                                                  "resolution": resolution}}]}
    md = markdown.render_report(report)
    assert 'ticket PAY-7 resolved as Fixed <!here>, fix version pay-4.2.1: "rolled back' in md
    _, blocks = slack.report_blocks({"id": "inv-now", "status": "COMPLETE"}, report)
    (seen,) = [e["text"] for b in blocks if b["type"] == "context" for e in b["elements"] if "Seen before" in e["text"]]
    assert "ticket PAY-7 resolved as Fixed" in seen and "<!here>" not in seen
    wiki = jira.render_report(report, "inv-now")
    assert "resolved as Fixed" in wiki and "{color:red}" not in wiki  # wiki markup escaped (PAY\\-7)
    page = html.render_report_page({"id": "inv-now", "report": report, "status": "COMPLETE"}, {}, {})
    assert "ticket PAY-7 resolved as Fixed" in page and "<b>now</b>" not in page and "<!here>" not in page
    reopened = {**report["similar_incidents"][0], "feedback": {"resolution": None}}
    assert "resolved as" not in markdown.render_report({**report, "similar_incidents": [reopened]})


def test_seen_before_shows_the_latest_comment_escaped_in_every_medium():
    from publishers import html, jira, markdown, slack

    said = {"up": 1, "down": 0, "disputed": False, "comments": ["first", "pool size {color:red}x{color} <!here> <b>b</b>"]}
    report = {"verdict": "CONFIRMED", "confidence": 90, "root_cause": {"service": "pay"}, "hypotheses": [],
              "similar_incidents": [{"investigation_id": "inv-2026-01-01-000000-pay", "score": 0.91,
                                     "summary": "deploy broke pay", "fix": "roll back",
                                     "root_cause": {"service": "pay", "category": "deploy", "change_kind": "deploy"},
                                     "feedback": said}]}
    assert markdown.feedback_note(said) == 'latest comment: "pool size {color:red}x{color} <!here> <b>b</b>"'
    assert markdown.feedback_note({"comments": [], "resolution": None}) is None
    assert "latest comment" in markdown.render_report(report)
    _, blocks = slack.report_blocks({"id": "inv-now", "status": "COMPLETE"}, report)
    (seen,) = [e["text"] for b in blocks if b["type"] == "context" for e in b["elements"] if "Seen before" in e["text"]]
    assert "latest comment" in seen and "<!here>" not in seen and "first" not in seen
    wiki = jira.render_report(report, "inv-now")
    assert "latest comment" in wiki and "{color:red}" not in wiki
    page = html.render_report_page({"id": "inv-now", "report": report, "status": "COMPLETE"}, {}, {})
    assert "latest comment" in page and "<b>b</b>" not in page and "<!here>" not in page


def test_single_texts_are_embedded_once_and_an_empty_store_answers_nothing(tmp_path, model):
    text = "payments-api p99 latency above 2s"
    model.clear_cache()
    first = model.embed([text])
    assert text in model._recent and np.array_equal(model.embed([text]), first)
    first[0, 0] = 42.0  # a caller changing its copy does not change what is kept
    assert model.embed([text])[0, 0] != 42.0
    assert np.allclose(model.embed([text, "other"])[0], model.embed([text])[0], atol=1e-6)  # batches agree
    model.clear_cache()
    assert not model._recent
    kb = KnowledgeBase(make_client(home=tmp_path, chroma_host=None), model)
    assert kb.similar(PAST[0], k=3) == []  # no count() first: an empty collection is simply empty
    kb.upsert(PAST[:1])
    assert [m.incident.investigation_id for m in kb.similar(PAST[0], k=3, exclude=["x"])] == []  # itself is skipped


class _Vectors:
    """An embedder with chosen vectors: each document's vector is given by the test (unit rows)."""

    name, dim = "test-vectors", 4

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors, self.calls = vectors, 0

    def embed(self, texts):
        self.calls += 1
        rows = np.array([self.vectors[t] for t in texts], dtype=np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _with_vector(vectors, inv_id, service, vector):
    inc = _incident(inv_id, service=service, kind="deploy", titles=[f"alert {inv_id}"])
    vectors[inc.document()] = vector
    return inc


def test_same_service_candidates_are_the_nearest_not_the_first_stored(tmp_path):
    # The unfiltered nearest are all look-alikes on another service; the same-service records stored first
    # read nothing like the query; the one like it was stored last. It must be found (and win: its service
    # is the query's), however many same-service records came before it.
    vectors: dict[str, list[float]] = {}
    query = _with_vector(vectors, "inv-new", "payments-api", [1, 0, 0, 0])
    alike = [_with_vector(vectors, f"inv-alike-{n}", "mailer", [1, 0.45 + n / 100, 0, 0]) for n in range(6)]
    older = [_with_vector(vectors, f"inv-old-{n}", "payments-api", [0, 0, 1, n / 10]) for n in range(8)]
    newest = _with_vector(vectors, "inv-newest", "payments-api", [1, 0, 0.7, 0])
    kb = KnowledgeBase(make_client(home=tmp_path, chroma_host=None), _Vectors(vectors))  # type: ignore[arg-type]
    for inc in [*alike, *older, newest]:  # one at a time: Chroma's own order is the order stored
        kb.upsert([inc])
    for candidates in (3, 100):  # fewer than stored, and more than any filter matches
        (best, *_) = kb.similar(query, k=3, candidates=candidates)
        assert best.incident.investigation_id == "inv-newest", candidates
        assert abs(best.similarity - 1 / np.linalg.norm([1, 0.7])) < 1e-4


def test_an_empty_store_answers_without_embedding_the_query(tmp_path):
    vectors: dict[str, list[float]] = {}
    query = _with_vector(vectors, "inv-new", "payments-api", [1, 0, 0, 0])
    past = _with_vector(vectors, "inv-past", "payments-api", [1, 0.1, 0, 0])
    embedder = _Vectors(vectors)
    kb = KnowledgeBase(make_client(home=tmp_path, chroma_host=None), embedder)  # type: ignore[arg-type]
    assert kb.similar(query, k=3) == [] and embedder.calls == 0
    kb.upsert([past])
    calls = embedder.calls
    assert [m.incident.investigation_id for m in kb.similar(query, k=3)] == ["inv-past"]
    assert embedder.calls == calls + 1
    kb.rebuild([])  # emptied again: no embedding again
    assert kb.similar(query, k=3) == [] and embedder.calls == calls + 1
    # another client filled the store meanwhile: this one sees it (the empty answer is not remembered)
    KnowledgeBase(make_client(home=tmp_path, chroma_host=None), embedder).upsert([past])  # type: ignore[arg-type]
    assert [m.incident.investigation_id for m in kb.similar(query, k=3)] == ["inv-past"]


def test_the_knowledge_model_embeds_the_first_128_word_pieces_of_a_long_symptom_text(model):
    # A real report's symptom text runs to 256 word pieces; what comes after the first 128 (later templates,
    # the metric and service lists, which are also matched exactly) does not change its vector.
    head = "checkout 5xx ratio above 5%. NullPointerException at CartController.handle(<*>). " * 5
    tails = [head + "anomalous metrics: checkout/error_rate. services: checkout, payments-api",
             head + "services: mailer, ledger-db, search"]
    full = MiniLM(model.model_dir)  # the model's own limit, 256
    assert 128 < len(full.tokenizer.encode(head).ids) < 200
    assert np.abs(model.embed(tails)[0] - model.embed(tails)[1]).max() < 1e-6
    assert np.abs(full.embed(tails)[0] - full.embed(tails)[1]).max() > 1e-3  # the whole text would differ
