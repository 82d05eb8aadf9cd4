"""GET /healthz (the process is up: answered from memory) and GET /readyz (database and broker answer).

/readyz checks at most once per second and serves the last result in between, so a probe storm
or many replicas probing cannot load the database.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.http.context import ListenerContext
from bot.http.problems import problem

READY_CACHE_S = 1.0


def _ping_broker(broker: Any) -> None:
    client = getattr(broker, "client", None)
    if client is not None and hasattr(client, "ping"):  # Redis
        client.ping()
    elif hasattr(broker, "get_queue_message_counts") and hasattr(broker, "connection"):  # RabbitMQ
        _ = broker.connection


class Readiness:
    """The last readiness result, refreshed at most every ``ttl_s`` seconds (one check at a time).

    Args:
        checks: name -> callable raising when that dependency is not ready.
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(self, checks: dict[str, Callable[[], None]], ttl_s: float = READY_CACHE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._checks = checks
        self._ttl = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._at: float | None = None
        self._result: dict[str, str] = {}
        self.runs = 0

    def result(self) -> dict[str, str]:
        """``{dependency: "ok" | "<error type>"}``, at most ``ttl_s`` old."""
        with self._lock:
            now = self._clock()
            if self._at is None or now - self._at >= self._ttl:
                out = {}
                for name, check in self._checks.items():
                    try:
                        check()
                        out[name] = "ok"
                    except Exception as exc:  # any driver error means "not ready"; say which
                        out[name] = type(exc).__name__
                self._result, self._at = out, self._clock()
                self.runs += 1
            return dict(self._result)


def routes(ctx: ListenerContext) -> list[Route]:
    """The health routes bound to ``ctx``."""

    def _ping_db() -> None:
        with ctx.runtime.session() as session:
            session.execute(text("SELECT 1"))

    readiness = Readiness({"database": _ping_db, "broker": lambda: _ping_broker(ctx.runtime.broker)})
    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        result = await run_in_threadpool(readiness.result)
        failing = {k: v for k, v in result.items() if v != "ok"}
        if failing:
            what = ", ".join(f"{k} ({v})" for k, v in failing.items())
            return problem(503, "Not ready", f"unreachable: {what}; check DATABASE_URL / REDIS_URL / RABBITMQ_URL",
                           checks=result)
        return JSONResponse({"status": "ok", "checks": result})

    healthz_route = Route("/healthz", healthz, methods=["GET"])
    readyz_route = Route("/readyz", readyz, methods=["GET"])
    readyz_route.readiness = readiness  # type: ignore[attr-defined]  # tests count the checks
    return [healthz_route, readyz_route]
