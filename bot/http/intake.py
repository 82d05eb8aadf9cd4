"""The one path every webhook takes: read, authenticate, validate, persist, answer, process.

Bad input is answered before anything is stored (413, 401, 400 naming the field, 202 ignored, also
for a PagerDuty/Jira body dated outside the replay window). An accepted
delivery is committed to ``inbound_deliveries`` before the 202, then processed on the listener's
background thread; a crash after the commit loses nothing: the sender's retry (same delivery key)
or the startup sweep finishes it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.exc import SQLAlchemyError
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot.http.context import ListenerContext
from bot.http.problems import BodyTooLarge, problem, read_body
from bot.http.processor import ListenerStopped
from commands.errors import TooManyAlerts
from commands.signatures import SignatureError
from commands.webhooks import (
    PayloadError,
    delivery_key,
    normalise,
    parse_change_body,
    parse_json,
    replay_reason,
)

Authenticate = Callable[[bytes, Headers], None]


async def intake(request: Request, ctx: ListenerContext, source: str, authenticate: Authenticate) -> Response:
    """Handle one webhook delivery for ``source``.

    Args:
        request: the HTTP request.
        ctx: the listener context.
        source: ``jira`` | ``pagerduty`` | ``grafana`` | ``alertmanager`` | ``deploy``.
        authenticate: raises SignatureError when the delivery is not from the sender.

    Returns:
        202 accepted/ignored, 200 duplicate, a problem+json 400/401/413, or 503 when the
        delivery could not be stored (the sender retries).
    """
    try:
        body = await read_body(request, ctx.max_body_bytes)
    except BodyTooLarge as exc:
        return problem(413, "Payload too large", f"{exc}; send one event per delivery")
    try:
        authenticate(body, request.headers)
    except SignatureError as exc:
        return problem(401, "Unauthorized", str(exc))
    try:
        payload = parse_change_body(body) if source == "change" else parse_json(body)
        normalised = normalise(source, payload, ctx.rules)
    except TooManyAlerts as exc:
        return problem(400, "Too many alerts", str(exc), field=exc.field, alerts=exc.count, max_alerts=exc.cap)
    except PayloadError as exc:
        return problem(400, "Bad request", str(exc), field=exc.field)
    stale = replay_reason(source, payload, now=datetime.now(UTC), window_s=ctx.rules.replay_window_s)
    if stale and (normalised.requests or normalised.history or normalised.resolution):
        return JSONResponse({"status": "ignored", "reason": stale}, status_code=202)
    if normalised.ignored and not normalised.history:  # nothing to keep: store nothing
        return JSONResponse({"status": "ignored", "reason": normalised.ignored}, status_code=202)
    key = delivery_key(source, payload, request.headers, body)
    try:
        # Returns once the delivery is committed (group commit on the listener's database thread).
        accepted = await ctx.processor.store(source, key, payload)
    except (ListenerStopped, SQLAlchemyError) as exc:
        detail = f"the delivery could not be stored ({type(exc).__name__}); retry it shortly"
        return problem(503, "Service unavailable", detail, headers={"Retry-After": "5"})
    if accepted.duplicate and accepted.status != "accepted":
        return JSONResponse(
            {"status": "duplicate", "delivery_id": accepted.delivery_id, "original_status": accepted.status},
            status_code=200,
        )
    if normalised.ignored:
        # Nothing to investigate, but its alerts are kept as history (the `events` source).
        return JSONResponse({"status": "ignored", "reason": normalised.ignored, "delivery_id": accepted.delivery_id},
                            status_code=202)
    # New, or a redelivery of one never finished (the processor has queued it again).
    return JSONResponse({"status": "accepted", "delivery_id": accepted.delivery_id}, status_code=202)
