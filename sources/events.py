"""Our own stored events (kind ``events``): alerts and changes this product received on its webhooks.

``alerts: [{kind: events}]`` answers ``alerts.list`` / ``alerts.get`` from every alert that reached
``/webhooks/alertmanager``, ``/webhooks/grafana/alert`` or ``/webhooks/pagerduty`` — kept after the
alert resolved, which Alertmanager's own API forgets. ``changes: [{kind: events}]`` answers
``changes.list`` from ``/webhooks/change`` (any change record: deploys, flags, config, migrations,
infra) and ``/webhooks/deploy``. The database is the one ``pm serve`` writes: DATABASE_URL, else the
SQLite file under PM_HOME; an entry may name another with ``database_url: {env: VARIABLE}``.
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from sandbox.args import opt_str, opt_time
from sandbox.errors import NotFoundError, ToolArgumentError
from sources.base import Provider, iso
from sources.errors import SourceError
from store import events

_ENGINES: dict[str, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def _engine(url: str) -> Engine:
    # One engine (and pool) per database per process: a provider is built for every investigation.
    with _ENGINES_LOCK:
        engine = _ENGINES.get(url)
        if engine is None:
            from store.db import make_engine

            engine = _ENGINES[url] = make_engine(url)
        return engine


class EventsProvider(Provider):
    """``{kind: events}`` under ``alerts:`` and/or ``changes:``; ``max_rows`` caps one answer (default 10,000)."""

    KIND = "events"
    CAPABILITIES = ("alerts.list", "alerts.get", "changes.list")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_rows = self.opt_int("max_rows", 10_000)
        url = self.secret("database_url")
        if url is None:
            from store.config import load_settings

            url = load_settings().effective_database_url
        self.database_url = url

    @property
    def label(self) -> str:
        return "events (this product's stored webhooks)"

    def _session(self) -> Session:
        return Session(_engine(self.database_url))

    def _query(self, kind: str, cap: str, service: Any, start: Any, end: Any) -> tuple[list[dict[str, Any]], bool]:
        svc = opt_str(cap, "service", service)
        t0, t1 = opt_time(cap, "start", start), opt_time(cap, "end", end)
        try:
            with self._session() as session:
                return events.query(session=session, kind=kind, service=svc, limit=self.max_rows,
                                    start=iso(t0) if t0 is not None else None, end=iso(t1) if t1 is not None else None)
        except SQLAlchemyError as exc:
            if self._no_history(exc):
                return [], False
            raise self._db_error(exc) from None

    @staticmethod
    def _no_history(exc: SQLAlchemyError) -> bool:
        """The database was never migrated: nothing was received yet (an empty history, said in check())."""
        text = str(exc).splitlines()[0]
        return "source_events" in text and ("no such table" in text or "does not exist" in text)

    def _db_error(self, exc: SQLAlchemyError) -> SourceError:
        return SourceError(f"{self.label}: database error ({type(exc).__name__}); check DATABASE_URL / PM_HOME")

    def changes_list(self, service: Any = None, kind: Any = None, start: Any = None, end: Any = None) -> dict[str, Any]:
        wanted = opt_str("changes.list", "kind", kind)
        rows, cut = self._query("change", "changes.list", service, start, end)
        out: dict[str, Any] = {"changes": [r for r in rows if wanted is None or r.get("kind") == wanted]}
        if cut:
            out["truncated"] = f"more than {self.max_rows} changes in the window; narrow it or raise max_rows"
        return out

    def alerts_list(self, service: Any = None, start: Any = None, end: Any = None) -> dict[str, Any]:
        rows, cut = self._query("alert", "alerts.list", service, start, end)
        out: dict[str, Any] = {"alerts": rows}
        if cut:
            out["truncated"] = f"more than {self.max_rows} alerts in the window; narrow it or raise max_rows"
        return out

    def alerts_get(self, id: Any = None) -> dict[str, Any]:  # noqa: A002 - the contract names it id
        wanted = opt_str("alerts.get", "id", id)
        if wanted is None:
            raise ToolArgumentError("alerts.get: 'id' is required; pass an alert id such as am-1a2b3c")
        try:
            with self._session() as session:
                found = events.get(session=session, kind="alert", event_id=wanted)
        except SQLAlchemyError as exc:
            if not self._no_history(exc):
                raise self._db_error(exc) from None
            found = None
        if found is None:
            raise NotFoundError(f"alerts.get: no alert {wanted!r} was received on our webhooks; list them with alerts.list")
        return found

    def check(self) -> str:
        kind = "alert" if self.entry.section == "alerts" else "change"
        where = self.database_url.split("@")[-1]  # never print a password
        try:
            with self._session() as session:
                rows, cut = events.query(session=session, kind=kind, limit=1_000)
        except SQLAlchemyError as exc:
            if self._no_history(exc):
                return (f"no {kind}s received yet in {where}: start `pm serve` with the same DATABASE_URL / "
                        f"PM_HOME and send {'alerts' if kind == 'alert' else 'changes'} to its webhooks")
            raise self._db_error(exc) from None
        count = f"{len(rows)}{'+' if cut else ''}"
        return f"{count} {kind}s kept in {where}"
