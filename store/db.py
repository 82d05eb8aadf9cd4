"""Database plumbing: the declarative ``Base``, engines, sessions, migrations, reachability.

Every table of the product hangs off the one :class:`Base` defined here, so Alembic sees
one metadata. SQLite is the embedded default (one file under ``PM_HOME``); PostgreSQL via
psycopg 3 is the server default.
"""

from __future__ import annotations

import ast
import contextlib
import fcntl
import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, sessionmaker

from store.errors import DatabaseUnavailable

_MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Long enough to ride out a concurrent writer's transaction, short enough to surface a real deadlock.
_SQLITE_BUSY_TIMEOUT_MS = 30_000


class Base(DeclarativeBase):
    """The declarative base of every table of the product."""


def _sqlite_file(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL, or None for an in-memory database."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """Create an engine for ``url`` with the settings the product relies on.

    SQLite gets WAL journaling (readers do not block the writer), foreign keys and a busy
    timeout, and the parent directory of its file is created. PostgreSQL URLs use psycopg 3.

    Args:
        url: a ``sqlite:///path`` or ``postgresql+psycopg://`` URL.
        echo: log every statement (debugging only).

    Raises:
        DatabaseUnavailable: the URL is not one the product can use.

    Returns:
        The engine (connections are opened lazily).
    """
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError with a terse message
        raise DatabaseUnavailable(
            f"DATABASE_URL {url!r} is not a database URL ({exc}); use sqlite:///path or postgresql+psycopg://..."
        ) from None
    if parsed.drivername.startswith("sqlite"):
        file = _sqlite_file(url)
        if file is not None:
            file.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, echo=echo, connect_args={"timeout": _SQLITE_BUSY_TIMEOUT_MS / 1000})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record) -> None:  # noqa: ANN001 - DB-API connection
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            # WAL + NORMAL: a commit survives a crash of the process (what "nothing accepted is
            # lost" needs here) without an fsync per commit; only an OS crash can drop the last
            # commits. Production deployments use PostgreSQL. (SQLite docs: "WAL mode ... synchronous=NORMAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
            cur.close()

        return engine
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if not parsed.drivername.startswith("postgresql"):
        raise DatabaseUnavailable(
            f"DATABASE_URL uses {parsed.drivername!r}; use sqlite:///path or postgresql+psycopg://..."
        )
    return create_engine(parsed, echo=echo, pool_pre_ping=True)


def make_read_engine(engine: Engine) -> Engine:
    """An engine for single-statement reads of hot paths (the admin API's status view).

    On PostgreSQL: its own small pool of AUTOCOMMIT connections and no ``pool_pre_ping``, so a read is
    one round trip instead of four (ping, BEGIN, the query, ROLLBACK at check-in); one statement in
    autocommit sees the same committed data as in its own READ COMMITTED transaction. Without the ping
    a connection the server dropped fails its next read: callers retry once (:func:`read_with_retry`).
    On SQLite (a local file, no round trips) it is ``engine`` itself.
    """
    if engine.dialect.name != "postgresql":
        return engine
    # 8 connections at most per process (the admin API reads on 8 threads): budget max_connections for them
    return create_engine(engine.url, isolation_level="AUTOCOMMIT", pool_pre_ping=False, pool_size=8,
                         max_overflow=0)


def read_with_retry(engine: Engine, fn: Any) -> Any:
    """``fn(connection)`` on a connection of ``engine``; once more on a new connection when the first was
    found dropped (the server restarted, an idle timeout): what ``pool_pre_ping`` would have caught.

    Raises:
        sqlalchemy.exc.DBAPIError: the database fails again (or for another reason).
    """
    from sqlalchemy.exc import DBAPIError

    try:
        with engine.connect() as conn:
            return fn(conn)
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
    with engine.connect() as conn:
        return fn(conn)


def make_session_factory(engine: Engine) -> sessionmaker:
    """A session factory bound to ``engine``; objects stay readable after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def check_reachable(engine: Engine) -> None:
    """Open one connection and run ``SELECT 1``.

    Raises:
        DatabaseUnavailable: naming DATABASE_URL and what to do.
    """
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        where = engine.url.render_as_string(hide_password=True)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseUnavailable(
            f"cannot reach the database at DATABASE_URL={where} ({first}); "
            "start it or point DATABASE_URL at a reachable database"
        ) from None


def alembic_config(url: str):  # noqa: ANN201 - alembic.config.Config, imported lazily
    """An Alembic config for ``url`` whose script location is this package's migrations.

    The URL travels in ``config.attributes`` rather than the ini option, because configparser
    would treat a ``%`` in a password as interpolation.
    """
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS_DIR))
    cfg.attributes["url"] = url
    return cfg


@functools.lru_cache(maxsize=1)
def script_heads() -> frozenset[str]:
    """The head revisions of this package's migration scripts, read without importing Alembic.

    Each script's module-level ``revision`` and ``down_revision`` literals are read with ``ast``
    (what Alembic reads too, by importing the script); a head is a revision no other script names
    as its ``down_revision``. An empty set when a script cannot be read that way, which turns the
    fast path of :func:`upgrade` off.
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in sorted((_MIGRATIONS_DIR / "versions").glob("*.py")):
        found: dict[str, object] = {}
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in tree.body:
                target: ast.expr
                value: ast.expr | None
                if isinstance(node, ast.AnnAssign):
                    target, value = node.target, node.value
                elif isinstance(node, ast.Assign) and len(node.targets) == 1:
                    target, value = node.targets[0], node.value
                else:
                    continue
                if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                    found[target.id] = ast.literal_eval(value) if value is not None else None
        except (OSError, SyntaxError, ValueError):
            return frozenset()
        rev, down = found.get("revision"), found.get("down_revision")
        if not isinstance(rev, str):
            return frozenset()
        revisions.add(rev)
        if isinstance(down, str):
            parents.add(down)
        elif isinstance(down, (tuple, list)):
            parents.update(str(d) for d in down)
        elif down is not None:
            return frozenset()
    return frozenset(revisions - parents)


def _at_heads(engine: Engine) -> bool:
    """Whether the database's ``alembic_version`` rows are exactly :func:`script_heads` (nothing to do)."""
    heads = script_heads()
    if not heads:
        return False
    try:
        with engine.connect() as conn:
            stamped = {str(r[0]) for r in conn.execute(text("SELECT version_num FROM alembic_version"))}
    except SQLAlchemyError:  # no table yet (a fresh database): migrate
        return False
    return stamped == heads


def upgrade(url: str, revision: str = "heads") -> None:
    """Migrate the database at ``url`` to ``revision`` (default: every head).

    "heads" rather than "head" because other rooms may add their own migration branch
    off the base revision. When the database is already stamped with exactly the scripts'
    heads, Alembic is not even imported: one ``SELECT`` under the migration lock says so
    (Alembic's own run of the same check costs ~0.1-0.25 s of a CLI start, plus its import).

    Raises:
        DatabaseUnavailable: the database cannot be reached.
    """
    engine = make_engine(url)
    # SQLite's first connection turns a fresh file to WAL, which must not race either: check
    # it under the (file) lock; PostgreSQL is checked first so an outage reads as one.
    sqlite = engine.dialect.name == "sqlite"
    try:
        if not sqlite:
            check_reachable(engine)
        # Several processes may start on a fresh database at once (parallel `pm investigate`
        # runs, a worker and a listener): only one may migrate at a time, or both create tables.
        with _migration_lock(engine, url):
            if sqlite:
                check_reachable(engine)
            if revision == "heads" and _at_heads(engine):
                return
            from alembic import command

            command.upgrade(alembic_config(url), revision)
    finally:
        engine.dispose()


def upgrade_on_start(settings: Any) -> bool:
    """Migrate the configured database when a server or worker starts, unless PM_AUTO_MIGRATE=0.

    Deployments that migrate in a separate Job (the Helm chart's hook) set PM_AUTO_MIGRATE=0.

    Returns:
        Whether migrations were applied (checked).

    Raises:
        DatabaseUnavailable: the database cannot be reached.
    """
    if not getattr(settings, "auto_migrate", True):
        return False
    upgrade(settings.effective_database_url)
    return True


@contextlib.contextmanager
def _migration_lock(engine: Engine, url: str) -> Iterator[None]:
    """Hold a cross-process lock while migrating: a file lock beside a SQLite file, an advisory
    lock on PostgreSQL (released when its connection closes, so a crashed migrator frees it)."""
    file = _sqlite_file(url) if engine.dialect.name == "sqlite" else None
    if file is not None:
        with open(file.with_name(file.name + ".migrate.lock"), "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            # an arbitrary constant naming "Production Master migrations"
            conn.execute(text("SELECT pg_advisory_lock(727274001)"))
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(727274001)"))
        return
    yield
