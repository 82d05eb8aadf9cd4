"""The knowledge base: finished investigations remembered in ChromaDB and recognised the next time.

The database is the source of truth (the investigation's report, its ``symptoms`` section, and the
``knowledge_feedback`` rows); the Chroma collection is an index built from it, so it can always be
thrown away and rebuilt (:meth:`KnowledgeBase.rebuild`, ``pm schedule run knowledge-update``).

Each incident is one Chroma record: the document is a text of its symptoms (alert titles, ticket
summary, new log templates, anomalous metrics, services), embedded by a :class:`store.embeddings.Embedder`;
the metadata hold the domain, the origin service and the whole :class:`Incident` as JSON. Retrieval
mixes the vector with exact matches (:func:`score`): services in common and log templates in common
(by a hash of the template text, stable across domains and drain3 states).

Chroma runs embedded (``PersistentClient`` under ``PM_HOME/chroma``) by default, or as a server when
``CHROMA_HOST`` is set (``HttpClient``).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from store.errors import StoreError

if TYPE_CHECKING:
    # numpy comes with the embeddings, SQLAlchemy with the models: each is imported where it is used, so the
    # knowledge base's helper process (store/knowledge_proc.py) loads neither the ORM nor, until it embeds,
    # numpy, and importers of this module pay for neither
    from sqlalchemy.orm import Session

    from store.embeddings import Embedder
    from store.models import KnowledgeFeedback

COLLECTION = "incidents"
#: A past incident is shown as "seen before" from this combined score up (bench/knowledge.py chose it).
SEEN_BEFORE = 0.80
# Weights of the combined score: the symptom text carries most; the exact matches lift recurrences whose
# wording changed and sink look-alikes on other services.
W_VECTOR, W_SERVICES, W_TEMPLATES = 0.6, 0.25, 0.15


class KnowledgeUnavailable(StoreError):
    """The knowledge base cannot be used now (Chroma unreachable or its collection unreadable)."""


def template_key(template: str) -> str:
    """A log template's id for exact matching: a short hash of its text (drain3 ids differ per domain)."""
    return hashlib.sha1(template.strip().encode()).hexdigest()[:12]


@dataclass
class Incident:
    """One finished investigation as the knowledge base remembers it."""

    investigation_id: str
    domain: str | None = None
    services: list[str] = field(default_factory=list)
    alert_titles: list[str] = field(default_factory=list)
    ticket_summary: str | None = None
    log_templates: list[dict[str, Any]] = field(default_factory=list)  # {key, template, count}
    metrics: list[str] = field(default_factory=list)  # "service/metric"
    root_cause: dict[str, Any] = field(default_factory=dict)  # {service, category, change_kind, summary}
    fix: str | None = None
    verdict: str | None = None
    confidence: int | None = None
    finished_at: str | None = None
    feedback: dict[str, Any] = field(default_factory=lambda: {"up": 0, "down": 0, "comments": [],
                                                               "disputed": False})

    def document(self) -> str:
        """The text that is embedded: the symptoms only, since a new incident has nothing else yet."""
        parts = list(self.alert_titles)
        if self.ticket_summary:
            parts.append(self.ticket_summary)
        parts += [t["template"] for t in self.log_templates[:8]]
        if self.metrics:
            parts.append("anomalous metrics: " + ", ".join(self.metrics[:8]))
        if self.services:
            parts.append("services: " + ", ".join(self.services[:8]))
        return ". ".join(p.strip() for p in parts if p and p.strip()) or "(no symptoms recorded)"

    def template_keys(self) -> set[str]:
        return {t["key"] for t in self.log_templates if t.get("key")}

    def summary(self) -> str:
        """One line for a report: the root cause's own summary, else the first symptom."""
        return str(self.root_cause.get("summary") or (self.alert_titles or [self.document()])[0])[:300]


def symptoms_of(ctx: dict[str, Any], sig: dict[str, Any], report: dict[str, Any]) -> dict[str, Any]:
    """The ``symptoms`` section of a report, from the engine's context and signals.

    Params: ctx — gather_context output; sig — analyse_signals output; report — build_report output.
    Returns: ``{alert_titles, ticket_summary, log_templates: [{id, key, service, template, count}],
    metrics, services}``, JSON-able.
    """
    titles = [str(a.get("title")) for a in (ctx.get("alerts") or []) if a.get("title")]
    if not titles and ctx.get("trigger_text"):
        titles = [str(ctx["trigger_text"])]
    ticket = ctx.get("ticket") or {}
    ticket_summary = ticket.get("summary") or ticket.get("title") if isinstance(ticket, dict) else None
    templates = [
        {"id": t.get("id"), "key": template_key(str(t["template"])), "service": t.get("service"),
         "template": str(t["template"])[:300], "count": int(t.get("after") or 0)}
        for t in (sig.get("templates") or []) if t.get("template") and t.get("kind") in ("new", "burst", None)
    ]
    templates.sort(key=lambda t: -t["count"])
    metrics = [f"{s.get('service')}/{s.get('name')}" for s in (sig.get("series") or []) if s.get("name")]
    services: list[str] = []
    rc = report.get("root_cause") or {}
    for name in [rc.get("service"), ctx.get("trigger_service"), *(t["service"] for t in templates),
                 *(m.split("/")[0] for m in metrics)]:
        if name and name not in services:
            services.append(str(name))
    return {"alert_titles": titles[:10], "ticket_summary": ticket_summary, "log_templates": templates[:20],
            "metrics": metrics[:20], "services": services[:10]}


def incident_from_report(investigation_id: str, domain: str | None, report: dict[str, Any], *,
                         finished_at: str | None = None, change_kinds: dict[str, str] | None = None,
                         feedback: Sequence[dict[str, Any]] = ()) -> Incident:
    """Build an :class:`Incident` from a report that has a ``symptoms`` section.

    Params: change_kinds — change id -> kind (deploy, config, flag, ...), when the caller knows them;
    feedback — ``{vote, user, comment}`` rows in time order.
    """
    sym = report.get("symptoms") or {}
    rc = report.get("root_cause") or {}
    steps = (report.get("fix_plan") or {}).get("steps") or []
    kind = rc.get("change_kind") or (change_kinds or {}).get(str(rc.get("change_id"))) or rc.get("category")
    return Incident(
        investigation_id=investigation_id, domain=domain, services=list(sym.get("services") or []),
        alert_titles=list(sym.get("alert_titles") or []), ticket_summary=sym.get("ticket_summary"),
        log_templates=list(sym.get("log_templates") or []), metrics=list(sym.get("metrics") or []),
        root_cause={"service": rc.get("service"), "category": rc.get("category"), "change_kind": kind,
                    "change_id": rc.get("change_id"), "summary": rc.get("summary")},
        fix=(steps[0].get("description") if steps else None), verdict=report.get("verdict"),
        confidence=report.get("confidence"), finished_at=finished_at, feedback=tally(feedback),
    )


def tally(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Sum feedback rows: 👍/👎 counts, comments, and ``disputed`` when the latest vote is a 👎.

    When a ticket's resolution was recorded (rows with ``details``), ``resolution`` is the latest one:
    ``{name, ticket, comment, fix_versions, by}``, or None once the ticket was reopened.
    """
    up = sum(1 for r in rows if r.get("vote", 0) > 0)
    down = sum(1 for r in rows if r.get("vote", 0) < 0)
    votes = [r["vote"] for r in rows if r.get("vote")]
    comments = [str(r["comment"])[:300] for r in rows if r.get("comment") and not r.get("details")][-5:]
    out: dict[str, Any] = {"up": up, "down": down, "comments": comments, "disputed": bool(votes) and votes[-1] < 0}
    resolved = [r for r in rows if r.get("details")]
    if resolved:
        last = resolved[-1]
        details = last["details"]
        out["resolution"] = None if details.get("reopened") or not last.get("resolution") else {
            "name": last["resolution"], "ticket": details.get("ticket"),
            "comment": str(last["comment"])[:300] if last.get("comment") else None,
            "fix_versions": list(details.get("fix_versions") or []), "by": last.get("user")}
    return out


def score(similarity: float, query: Incident, past: Incident) -> float:
    """Combined score in [0, 1]: cosine similarity of the symptoms plus exact matches.

    Services: 1 when the past root cause's service is among the query's services (else, for a past
    incident without a root-cause service, the share of the query's services it also had); templates:
    how many the two share, over the smaller set. Weights and threshold: bench/knowledge.py, seed 7.
    """
    return _score(similarity, set(query.services), query.template_keys(), past)


def _score(similarity: float, qs: set[str], qt: set[str], past: Incident) -> float:
    """:func:`score` with the query's services and template keys computed once (a lookup scores ~200)."""
    origin = past.root_cause.get("service")
    if origin:
        services = 1.0 if origin in qs else 0.0
    else:
        services = len(qs & set(past.services)) / len(qs) if qs else 0.0
    pt = past.template_keys()
    templates = len(qt & pt) / min(len(qt), len(pt)) if qt and pt else 0.0
    return W_VECTOR * max(0.0, similarity) + W_SERVICES * services + W_TEMPLATES * templates


@dataclass
class Match:
    """A past incident found for a new one."""

    incident: Incident
    score: float
    similarity: float

    def as_report(self) -> dict[str, Any]:
        """The report's ``similar_incidents`` item."""
        rc = self.incident.root_cause
        return {"investigation_id": self.incident.investigation_id, "score": round(self.score, 3),
                "summary": self.incident.summary(),
                "root_cause": {"service": rc.get("service"), "category": rc.get("category"),
                               "change_kind": rc.get("change_kind"),
                               **({"change_id": rc["change_id"]} if "change_id" in rc else {})},
                "fix": self.incident.fix, "feedback": self.incident.feedback}


class KnowledgeBase:
    """Incident memory in one Chroma collection.

    Args:
        client: a chromadb client (``PersistentClient`` or ``HttpClient``).
        embedder: what turns symptom texts into vectors.
        collection: the collection's name.

    Every method raises :class:`KnowledgeUnavailable` (with what to do) when Chroma fails.
    """

    def __init__(self, client: Any, embedder: Embedder, *, collection: str = COLLECTION) -> None:
        self.client = client
        self.embedder = embedder
        self.name = collection
        self._lock = threading.Lock()
        self._coll: Any = None
        self._pool: ThreadPoolExecutor | None = None
        self._stored = False  # something is known to be stored (see _empty)

    def _collection(self) -> Any:
        if self._coll is None:
            from store.embeddings import ChromaEmbedding

            self._coll = self._guard(lambda: self.client.get_or_create_collection(
                self.name, embedding_function=ChromaEmbedding(self.embedder),  # type: ignore[arg-type]
                metadata={"hnsw:space": "cosine"}))
        return self._coll

    def _guard(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except KnowledgeUnavailable:
            raise
        except Exception as exc:  # chromadb raises many kinds (HTTP, sqlite, Rust bindings)
            self._coll = None
            self._stored = False
            raise KnowledgeUnavailable(
                f"knowledge base unavailable ({type(exc).__name__}: {str(exc)[:160]}); "
                "run `pm schedule run knowledge-update` to rebuild it, or check CHROMA_HOST"
            ) from exc

    # -- writing ------------------------------------------------------------------------
    def upsert(self, incidents: Sequence[Incident]) -> int:
        """Store or replace ``incidents`` (by investigation id); returns how many."""
        if not incidents:
            return 0
        docs = [i.document() for i in incidents]
        vectors = self.embedder.embed(docs)
        with self._lock:
            coll = self._collection()
            self._guard(lambda: coll.upsert(
                ids=[i.investigation_id for i in incidents], documents=docs,
                embeddings=[v.tolist() for v in vectors],
                metadatas=[{"domain": i.domain or "", "service": i.root_cause.get("service") or "",
                            "record": json.dumps(asdict(i))} for i in incidents]))
            self._stored = True
        return len(incidents)

    def get(self, investigation_id: str) -> Incident | None:
        """The stored incident, or None."""
        with self._lock:
            coll = self._collection()
            got = self._guard(lambda: coll.get(ids=[investigation_id], include=["metadatas"]))
        metas = got.get("metadatas") or []
        return _incident(metas[0]) if metas else None

    def set_feedback(self, investigation_id: str, feedback: dict[str, Any]) -> bool:
        """Replace the stored feedback of one incident (the vector is kept); False if it is not stored."""
        inc = self.get(investigation_id)
        if inc is None:
            return False
        inc.feedback = feedback
        with self._lock:
            coll = self._collection()
            self._guard(lambda: coll.update(ids=[investigation_id], metadatas=[
                {"domain": inc.domain or "", "service": inc.root_cause.get("service") or "",
                 "record": json.dumps(asdict(inc))}]))
        return True

    def count(self) -> int:
        with self._lock:
            coll = self._collection()
            return int(self._guard(coll.count))

    def rebuild(self, incidents: Iterable[Incident], *, batch: int = 64,
                progress: Callable[[int], None] | None = None) -> int:
        """Drop the collection and store ``incidents`` again; returns how many were stored.

        Works on a corrupted collection too: deleting it is the repair.
        """
        with self._lock:
            try:
                self.client.delete_collection(self.name)
            except Exception:  # noqa: S110 - absent or unreadable: either way it is recreated below
                pass
            self._coll = None
            self._stored = False
            self._collection()
        done = 0
        chunk: list[Incident] = []
        for inc in incidents:
            chunk.append(inc)
            if len(chunk) >= batch:
                done += self.upsert(chunk)
                chunk = []
                if progress:
                    progress(done)
        done += self.upsert(chunk)
        if progress:
            progress(done)
        return done

    # -- reading ------------------------------------------------------------------------
    def _lookups(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="pm-knowledge")
            return self._pool

    def _nearest(self, vector: list[float], n: int, among: list[str] | None = None) -> Any:
        """The ``n`` records nearest to ``vector`` (among the ids ``among``), with their distances."""
        with self._lock:
            coll = self._collection()
        return self._guard(lambda: coll.query(query_embeddings=[vector], n_results=n, ids=among,
                                              include=["metadatas", "distances"]))

    def _service_ids(self, services: list[str]) -> list[str]:
        """The ids of the records whose root cause was on one of ``services`` (a metadata lookup, no vector)."""
        with self._lock:
            coll = self._collection()
        return list(self._guard(lambda: coll.get(where={"service": {"$in": services}}, include=[]))["ids"])

    def _empty(self) -> bool:
        """True when nothing is stored. Asked of Chroma (count(), ~1 ms at 10,000) until something is seen,
        then remembered: a collection only shrinks by a rebuild, which forgets it."""
        if self._stored:
            return False
        self._stored = self.count() > 0
        return not self._stored

    def similar(self, query: Incident, *, k: int = 3, domain: str | None = None, candidates: int = 100,
                exclude: Iterable[str] = ()) -> list[Match]:
        """The ``k`` past incidents most like ``query``, best first, by :func:`score`.

        Candidates: the nearest ``candidates`` by vector, plus the nearest ``candidates`` among the incidents
        whose root cause was on one of the query's services (their ids are looked up while the query is
        embedded, then a vector query restricted to those ids); when ``domain`` is given and some
        candidates are of that domain, only those are kept (filtered by domain unless none match). An empty
        store answers ``[]`` without embedding the query.
        """
        if self._empty():
            return []
        skip = set(exclude) | {query.investigation_id}
        # Which records are of the query's services needs no vector: asked on the lookup thread while this
        # one embeds the query; then the nearest of them is a vector query restricted to those ids (~3 ms at
        # 10,000 stored, where Chroma's own `where` on the query cost ~8).
        same_ids = self._lookups().submit(self._service_ids, list(query.services)) if query.services else None
        vector = self.embedder.embed([query.document()])[0].tolist()
        # No count() per query: a query asking for more than is stored gets what there is.
        results = [self._nearest(vector, candidates)]
        among = same_ids.result() if same_ids is not None else []
        if among:
            results.append(self._nearest(vector, candidates, among))
        found: dict[str, tuple[float, Any]] = {}
        for got in results:
            # cosine space: distance = 1 - cosine similarity
            for i, m, d in zip((got.get("ids") or [[]])[0], (got.get("metadatas") or [[]])[0],
                               (got.get("distances") or [[]])[0], strict=False):
                found.setdefault(i, (1.0 - float(d), m))
        if domain and any((m or {}).get("domain") == domain for _, m in found.values()):
            found = {i: v for i, v in found.items() if (v[1] or {}).get("domain") == domain}
        matches = []
        qs, qt = set(query.services), query.template_keys()
        for key, (sim, meta) in found.items():
            if key in skip:
                continue
            inc = _incident(meta)
            matches.append(Match(inc, _score(sim, qs, qt, inc), sim))
        matches.sort(key=lambda m: (-m.score, m.incident.investigation_id))
        return matches[:k]


def _incident(meta: Any) -> Incident:
    try:
        return Incident(**json.loads(meta["record"]))
    except (TypeError, KeyError, ValueError) as exc:
        raise KnowledgeUnavailable(
            f"knowledge base holds a record it cannot read ({type(exc).__name__}); "
            "run `pm schedule run knowledge-update` to rebuild it"
        ) from exc


# -- the database side (source of truth) ---------------------------------------------------
def add_feedback(*, session: Session, investigation_id: str, vote: int, user: str | None = None,
                 comment: str | None = None, source: str = "slack") -> dict[str, Any]:
    """Record 👍 (vote 1), 👎 (-1) or a comment (0) on an investigation; returns its new tally.

    Raises:
        ValueError: ``vote`` is not -1, 0 or 1.
        store.errors.NotFound: no such investigation.
    """
    from store.errors import NotFound
    from store.models import Investigation, KnowledgeFeedback

    if vote not in (-1, 0, 1):
        raise ValueError("vote must be 1 (👍), -1 (👎) or 0 (a comment only)")
    if session.get(Investigation, investigation_id) is None:
        raise NotFound(f"no investigation {investigation_id!r}; check the id (pm status lists them)")
    session.add(KnowledgeFeedback(investigation_id=investigation_id, vote=vote, user=user, comment=comment,
                                  source=source))
    session.flush()
    return tally(feedback_rows(session=session, investigation_id=investigation_id))


def remove_feedback(*, session: Session, investigation_id: str, vote: int, user: str | None,
                    source: str = "slack") -> dict[str, Any] | None:
    """Take one vote back (a 👍 / 👎 reaction removed): delete ``user``'s latest ``vote`` row from ``source``.

    Returns:
        The investigation's new tally, or None when that user had no such vote (nothing changed).
    """
    from sqlalchemy import select

    from store.models import KnowledgeFeedback

    if vote not in (-1, 1):
        raise ValueError("only a vote (1 or -1) can be taken back")
    row = session.scalars(
        select(KnowledgeFeedback)
        .where(KnowledgeFeedback.investigation_id == investigation_id, KnowledgeFeedback.vote == vote,
               KnowledgeFeedback.user == user, KnowledgeFeedback.source == source)
        .order_by(KnowledgeFeedback.id.desc()).limit(1)
    ).first()
    if row is None:
        return None
    session.delete(row)
    session.flush()
    return tally(feedback_rows(session=session, investigation_id=investigation_id))


def feedback_rows(*, session: Session, investigation_id: str) -> list[dict[str, Any]]:
    """An investigation's feedback rows in time order, as dicts."""
    from sqlalchemy import select

    from store.models import KnowledgeFeedback

    rows = session.scalars(select(KnowledgeFeedback).where(KnowledgeFeedback.investigation_id == investigation_id)
                           .order_by(KnowledgeFeedback.id))
    return [_row(r) for r in rows]


def _row(r: KnowledgeFeedback) -> dict[str, Any]:
    out: dict[str, Any] = {"vote": r.vote, "user": r.user, "comment": r.comment}
    if r.details:
        out.update(resolution=r.resolution, details=r.details)
    return out


def add_resolution(*, session: Session, investigation_id: str, ticket: str, name: str | None,
                   status: str | None = None, comment: str | None = None, fix_versions: Sequence[str] = (),
                   user: str | None = None) -> tuple[dict[str, Any], bool]:
    """Record that the Jira ticket of an investigation was resolved as ``name`` (None: reopened).

    A resolution identical to the latest one recorded (Jira sends the resolution and the comment of one
    transition in separate events, and retries) is not recorded again.

    Returns:
        (the new tally, whether a row was added).
    """
    from sqlalchemy import select

    from store.models import KnowledgeFeedback

    details = {"ticket": ticket, "status": status, "fix_versions": list(fix_versions), "reopened": name is None}
    last = session.scalars(
        select(KnowledgeFeedback)
        .where(KnowledgeFeedback.investigation_id == investigation_id, KnowledgeFeedback.details.is_not(None))
        .order_by(KnowledgeFeedback.id.desc()).limit(1)).first()
    added = last is None or (last.resolution, last.comment, last.details) != (name, comment, details)
    if added:
        session.add(KnowledgeFeedback(investigation_id=investigation_id, vote=0, user=user, comment=comment,
                                      source="jira", resolution=name, details=details))
        session.flush()
    return tally(feedback_rows(session=session, investigation_id=investigation_id)), added


def finished_for_ticket(*, session: Session, ticket: str) -> str | None:
    """The latest COMPLETE investigation of a Jira ticket: started by it or published to it; else None."""
    from sqlalchemy import select

    from store.models import Investigation, Publication

    published = select(Publication.investigation_id).where(Publication.sink == "jira", Publication.target == ticket)
    return session.scalars(
        select(Investigation.id)
        .where(Investigation.status == "COMPLETE",
               (Investigation.fingerprint == f"jira:{ticket}") | Investigation.id.in_(published))
        .order_by(Investigation.finished_at.desc(), Investigation.id.desc()).limit(1)).first()


def incidents_from_db(*, session: Session) -> list[Incident]:
    """Every COMPLETE investigation whose report has symptoms, with its feedback, oldest first."""
    from sqlalchemy import select

    from store.models import Investigation, KnowledgeFeedback

    invs = session.scalars(select(Investigation).where(Investigation.status == "COMPLETE")
                           .order_by(Investigation.finished_at, Investigation.id))
    fb: dict[str, list[dict[str, Any]]] = {}
    for r in session.scalars(select(KnowledgeFeedback).order_by(KnowledgeFeedback.id)):
        fb.setdefault(r.investigation_id, []).append(_row(r))
    out = []
    for inv in invs:
        if not inv.report or "symptoms" not in inv.report:
            continue
        out.append(incident_from_report(
            inv.id, inv.domain, inv.report, finished_at=inv.finished_at.isoformat() if inv.finished_at else None,
            feedback=fb.get(inv.id, ())))
    return out


# -- opening ----------------------------------------------------------------------------------
def make_client(*, home: Path, chroma_host: str | None) -> Any:
    """A chromadb client: ``HttpClient`` for ``CHROMA_HOST`` (``host[:port]`` or a URL), else embedded.

    Raises:
        KnowledgeUnavailable: the server does not answer, or the embedded store cannot be opened.
    """
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    opts = ChromaSettings(anonymized_telemetry=False)
    try:
        if chroma_host:
            from urllib.parse import urlsplit

            url = urlsplit(chroma_host if "://" in chroma_host else f"http://{chroma_host}")
            return chromadb.HttpClient(host=url.hostname or "127.0.0.1", port=url.port or 8000,
                                       ssl=url.scheme == "https", settings=opts)
        path = home / "chroma"
        path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(path), settings=opts)
    except Exception as exc:
        where = f"CHROMA_HOST={chroma_host}" if chroma_host else f"{home / 'chroma'}"
        raise KnowledgeUnavailable(
            f"knowledge base unavailable: cannot open Chroma at {where} ({type(exc).__name__}: {str(exc)[:160]}); "
            "start the server or unset CHROMA_HOST; for the embedded store run `pm schedule run knowledge-update`"
        ) from exc


def open_for_rebuild(*, home: Path, chroma_host: str | None, embedder: Embedder) -> KnowledgeBase:
    """A knowledge base ready to :meth:`KnowledgeBase.rebuild`, repairing an unreadable embedded store.

    An embedded store that cannot be opened is moved aside (``chroma.broken-<time>``, kept for a
    post-mortem) and a new one is made: the database holds everything needed to fill it again.

    Raises:
        KnowledgeUnavailable: a Chroma server (``CHROMA_HOST``) does not answer.
    """
    try:
        kb = KnowledgeBase(make_client(home=home, chroma_host=chroma_host), embedder)
        kb._guard(lambda: kb.client.list_collections())
        return kb
    except KnowledgeUnavailable:
        if chroma_host:
            raise
    import time

    from chromadb.api.client import SharedSystemClient

    SharedSystemClient.clear_system_cache()  # drop the broken store's cached client
    path = home / "chroma"
    if path.exists():
        path.rename(home / f"chroma.broken-{time.strftime('%Y%m%dT%H%M%S')}-{time.time_ns() % 10**6}")
    return KnowledgeBase(make_client(home=home, chroma_host=None), embedder)


class Memory:
    """The knowledge base as the pipeline uses it: opened on first use, never raising.

    Args:
        opener: builds the :class:`KnowledgeBase` (may raise).

    ``error`` holds the last failure's message, for the report's ``missing_sources``.
    """

    def __init__(self, opener: Callable[[], KnowledgeBase]) -> None:
        self._opener = opener
        self._kb: KnowledgeBase | None = None
        self._lock = threading.Lock()

    def kb(self) -> KnowledgeBase:
        """The knowledge base, opening it if needed.

        Raises:
            StoreError: it cannot be opened (the message says what to do).
        """
        with self._lock:
            if self._kb is None:
                self._kb = self._opener()
            return self._kb

    def reset(self) -> None:
        """Forget the opened knowledge base, so the next use opens it again (after a failure)."""
        with self._lock:
            self._kb = None


def shared_embedder() -> Embedder:
    """The installed MiniLM, loaded once per process (it is 90 MB and read-only); Chroma's rebuilds reuse it."""
    from store.embeddings import shared_model

    return shared_model()


def memory_from_settings(settings: Any) -> Memory:
    """A lazily opened :class:`Memory` for ``settings`` (``PM_HOME``, ``CHROMA_HOST``)."""
    return Memory(lambda: KnowledgeBase(
        make_client(home=Path(settings.home), chroma_host=getattr(settings, "chroma_host", None)),
        shared_embedder()))


def recall(memory: Memory | None, *, investigation_id: str, domain: str | None, ctx: dict[str, Any],
           sig: dict[str, Any], k: int = 5) -> tuple[list[dict[str, Any]], str | None]:
    """Past incidents like this one before it is diagnosed (for the hypotheses' priors).

    The query is the symptoms known after the evidence phase (no root cause yet). Never raises.

    Returns:
        (``similar_incidents`` items scoring at least :data:`SEEN_BEFORE`, best first; a note saying why the
        knowledge base could not be used, or None).
    """
    if memory is None:
        return [], None
    query = incident_from_report(investigation_id, domain, {"symptoms": symptoms_of(ctx, sig, {})})
    try:
        matches = memory.kb().similar(query, k=k, domain=domain)
    except StoreError as exc:
        memory.reset()
        return [], f"knowledge: {exc}"
    return [m.as_report() for m in matches if m.score >= SEEN_BEFORE], None


def remember(memory: Memory | None, *, investigation_id: str, domain: str | None, ctx: dict[str, Any],
             sig: dict[str, Any], chg: dict[str, Any] | None, report: dict[str, Any],
             priors: dict[str, Any] | None = None) -> dict[str, Any]:
    """Add ``symptoms`` and ``similar_incidents`` to a finished report and record it in the knowledge base.

    ``priors`` (the hypotheses phase's ``priors`` section, see ``agents.priors``) is copied into the
    report as ``priors`` when given.

    Never raises for the knowledge base: when it cannot be used the report says so in
    ``missing_sources`` and ``similar_incidents`` is empty. With ``memory`` None nothing is added.

    Returns:
        ``report`` (changed in place).
    """
    if memory is None:
        return report
    if priors is not None:
        report["priors"] = priors
    report["symptoms"] = symptoms_of(ctx, sig, report)
    rc = report.get("root_cause")
    kinds = {str(c.get("id")): str(c.get("kind")) for c in (chg or {}).get("changes") or [] if c.get("id")}
    if isinstance(rc, dict) and rc.get("change_id") in kinds:
        rc["change_kind"] = kinds[rc["change_id"]]
    incident = incident_from_report(investigation_id, domain, report)
    report["similar_incidents"] = []
    try:
        kb = memory.kb()
        matches = kb.similar(incident, k=3, domain=domain)
        report["similar_incidents"] = [m.as_report() for m in matches if m.score >= SEEN_BEFORE]
        kb.upsert([incident])
    except StoreError as exc:
        memory.reset()
        missing = report.setdefault("missing_sources", [])
        missing.append(f"knowledge: {exc}")
    return report
