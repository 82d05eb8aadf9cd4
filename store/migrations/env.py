"""Alembic environment: migrates the database named by the caller (or DATABASE_URL by hand)."""

from __future__ import annotations

import os

from alembic import context

import store.models  # noqa: F401 - registers every table on Base.metadata
from store.db import Base, make_engine

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    # store.db.upgrade passes the URL in attributes; a hand-run `alembic` reads DATABASE_URL
    # (read here, at migration time, never at import time of the product).
    url = config.attributes.get("url") or os.environ.get("DATABASE_URL")
    if not url:
        raise SystemExit("set DATABASE_URL (e.g. sqlite:///.pm/pm.sqlite3) before running alembic")
    return url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(_url())
    try:
        with engine.connect() as connection:
            # batch mode lets later ALTERs work on SQLite, which cannot alter most constraints in place
            context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
