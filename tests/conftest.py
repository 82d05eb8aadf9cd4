"""Shared fixtures: databases, Redis, RabbitMQ and artifact stores, each unique per test.

PostgreSQL/Redis/RabbitMQ fixtures skip only when the server is not reachable at all (CI makes
sure it is); everything they create is removed afterwards.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
REDIS = "redis://127.0.0.1:6379/0"
RABBITMQ = "amqp://guest:guest@127.0.0.1:5672/"


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite database file of this test only."""
    return f"sqlite:///{tmp_path / 'db' / 'pm.sqlite3'}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A freshly created, uniquely named PostgreSQL database; dropped afterwards."""
    if not _listening(5432):
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432 (run scripts/services.sh)")
    import psycopg

    name = f"pm_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_namespace() -> Iterator[str]:
    """A unique Redis key prefix; every key under it is deleted afterwards."""
    if not _listening(6379):
        pytest.skip("Redis is not reachable on 127.0.0.1:6379 (run scripts/services.sh)")
    import redis

    ns = f"pmtest-{uuid.uuid4().hex[:10]}"
    yield ns
    client = redis.Redis.from_url(REDIS)
    keys = list(client.scan_iter(match=f"{ns}*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def redis_url(redis_namespace: str) -> str:
    """The Redis URL; use it together with the ``redis_namespace`` fixture's prefix."""
    return REDIS


@pytest.fixture
def rabbitmq_url() -> str:
    """The RabbitMQ URL (queues are named per test by the caller and deleted by it)."""
    if not _listening(5672):
        pytest.skip("RabbitMQ is not reachable on 127.0.0.1:5672 (run scripts/services.sh)")
    return RABBITMQ


@pytest.fixture
def artifacts(tmp_path: Path):
    """A local artifact store of this test only."""
    from store.artifacts import LocalArtifactStore

    return LocalArtifactStore(tmp_path / "artifacts")
