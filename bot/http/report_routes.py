"""The report pages: ``GET /investigations`` (recent ones) and ``GET /investigations/{id}`` (one report).

Credentials as for the API (viewer role), or the link token that Slack and Jira reports carry
(``?token=``, a JWT scoped to one investigation: commands/access.py ``link_token``). A token given in
the query is also set as an HttpOnly cookie for the page's own links.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from bot.http.api_routes import ApiContext, _int, check_no_nul
from bot.http.problems import problem
from commands import api as api_cmd
from commands.access import AuthError, Forbidden, Principal, authenticate, require
from commands.errors import BadRequest

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'none'"


def _principal(api: ApiContext, request: Request) -> Principal:
    token = request.query_params.get("token") or request.cookies.get("pm_token")
    if token and not request.headers.get("x-api-key") and not request.headers.get("authorization"):
        return authenticate(api_key=None, authorization=f"Bearer {token}", keys={}, jwt_secret=api.jwt_secret)
    return authenticate(api_key=request.headers.get("x-api-key"), authorization=request.headers.get("authorization"),
                        keys=api.keys, jwt_secret=api.jwt_secret)


def routes(api: ApiContext) -> list[Route]:
    """The two page routes bound to ``api``."""

    async def page(request: Request, render) -> Response:  # noqa: ANN001 - (principal) -> html, sync
        try:
            who = _principal(api, request)
            require(who, "viewer")
        except AuthError as exc:
            return problem(401, "Unauthorized", f"{exc} (or open the link a Slack/Jira report gives)")
        except Forbidden as exc:
            return problem(403, "Forbidden", str(exc))
        wait = api.limiter.take(who.bucket)
        if wait > 0:
            return problem(429, "Too many requests", f"retry in {wait:.1f} s",
                           headers={"Retry-After": str(max(1, round(wait + 0.5)))})
        try:
            check_no_nul(request)
            body = await run_in_threadpool(render, who)
        except Forbidden as exc:
            return problem(403, "Forbidden", str(exc))
        except api_cmd.Missing as exc:
            return problem(404, "Not found", str(exc))
        except BadRequest as exc:
            return problem(400, "Bad request", str(exc))
        resp = HTMLResponse(body, headers={"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                                           "Referrer-Policy": "no-referrer"})
        token = request.query_params.get("token")
        if token:
            resp.set_cookie("pm_token", token, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", path="/investigations")
        return resp

    async def report(request: Request) -> Response:
        inv_id = request.path_params["id"]

        def render(who: Principal) -> str:
            if who.scope is not None and who.scope != inv_id:
                raise Forbidden("this link opens another investigation's report")
            return api_cmd.report_page(runtime=api.runtime, investigation_id=inv_id)

        return await page(request, render)

    async def listing(request: Request) -> Response:
        def render(who: Principal) -> str:
            if who.scope is not None:
                raise Forbidden("a report link opens its own report only; sign in with an API key or a JWT")
            q = request.query_params
            return api_cmd.list_page_html(runtime=api.runtime, status=q.get("status") or None,
                                          domain=q.get("domain") or None, limit=_int(request, "limit", 50),
                                          cursor=q.get("cursor"))

        return await page(request, render)

    return [Route("/investigations", listing, methods=["GET"]),
            Route("/investigations/{id}", report, methods=["GET"])]
