"""GET /healthz: the listener is up and its database answers."""

from __future__ import annotations

from sqlalchemy import text
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.http.context import ListenerContext
from bot.http.problems import problem


def routes(ctx: ListenerContext) -> list[Route]:
    """The health route bound to ``ctx``."""

    def _ping() -> None:
        with ctx.runtime.session() as session:
            session.execute(text("SELECT 1"))

    async def healthz(request: Request) -> Response:
        try:
            await run_in_threadpool(_ping)
        except Exception as exc:  # any driver error means "not healthy"; say which
            return problem(503, "Unhealthy", f"database unreachable ({type(exc).__name__}); check DATABASE_URL")
        return JSONResponse({"status": "ok"})

    return [Route("/healthz", healthz, methods=["GET"])]
