"""Answers for bad input (RFC 9457 problem+json) and a body reader that enforces a size limit."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse


class BodyTooLarge(Exception):
    """The request body is larger than the listener accepts (answer 413)."""


def problem(
    status: int, title: str, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    """A ``application/problem+json`` response (RFC 9457) with ``extra`` members such as ``field``."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type="application/problem+json", headers=headers)


async def read_body(request: Request, limit: int) -> bytes:
    """Read the body, stopping as soon as it exceeds ``limit`` bytes (a lying Content-Length too).

    Raises:
        BodyTooLarge: the declared or the streamed size is above ``limit``.
    """
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"body of {declared} bytes is above the {limit}-byte limit")
    size = 0
    chunks = []
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"body is above the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)
