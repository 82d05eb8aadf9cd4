"""A stand-in Anthropic Messages API on loopback, for the real `anthropic` client library.

Serves ``POST /v1/messages`` with the API's wire format: the request must carry the key
(``x-api-key`` or ``Authorization: Bearer``; 401 ``authentication_error`` otherwise) and ``anthropic-version``, and a body with ``model``,
``max_tokens`` (>= 1) and a non-empty ``messages`` list starting with a user turn (400
``invalid_request_error`` otherwise). The answer is a ``message`` object with text content
blocks, ``stop_reason`` and ``usage{input_tokens, output_tokens}``.

Replies are scripted: :meth:`FakeAnthropic.reply` queues a text answer, :meth:`FakeAnthropic.fail`
queues an error answer (429 ``rate_limit_error`` / 529 ``overloaded_error`` with ``retry-after``,
400, 500), :meth:`FakeAnthropic.delay_next` stalls the next answer (for timeouts), and
``responder`` (a function of the request body) answers when the queue is empty. With neither,
the server answers 500 so a test never passes on an answer it did not script. Every request is
recorded in :attr:`FakeAnthropic.requests` as ``{"headers": {...}, "body": {...}}``.
"""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.loopback import LoopbackServer

_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
                413: "request_too_large", 429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}


def _count_tokens(text: str) -> int:
    # A rough stand-in for the tokenizer: ~4 characters per token for English text.
    return max(1, math.ceil(len(text) / 4))


def prompt_text(body: dict[str, Any]) -> str:
    """All the text a request gives the model: the system prompt and every message's text."""
    parts: list[str] = []
    system = body.get("system")
    if isinstance(system, str):
        parts.append(system)
    elif isinstance(system, list):
        parts.extend(str(b.get("text", "")) for b in system if isinstance(b, dict))
    for m in body.get("messages") or []:
        content = m.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return "\n".join(parts)


class FakeAnthropic(LoopbackServer):
    """The server's state: scripted replies, failures and the request log."""

    thread_name = "fake-anthropic"

    def __init__(self, api_key: str = "sk-ant-test-0123456789") -> None:
        super().__init__()
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []
        self.responder: Callable[[dict[str, Any]], str] | None = None
        self._script: list[tuple[str, Any]] = []
        self._delays: list[float] = []
        self._lock = threading.Lock()

    # -- test controls ---------------------------------------------------------------------------
    def reply(self, text: str, *, input_tokens: int | None = None, output_tokens: int | None = None,
              stop_reason: str = "end_turn") -> None:
        """Queue a text answer (token counts default to ~chars/4 of the prompt and the answer)."""
        with self._lock:
            self._script.append(("reply", (text, input_tokens, output_tokens, stop_reason)))

    def fail(self, status: int, *, retry_after: float | None = None, message: str | None = None,
             count: int = 1) -> None:
        """Queue ``count`` error answers with the API's error body (and ``retry-after`` if given)."""
        with self._lock:
            self._script.extend([("fail", (status, retry_after, message))] * count)

    def delay_next(self, seconds: float) -> None:
        """Stall the next answer by ``seconds`` (to trip a client timeout)."""
        with self._lock:
            self._delays.append(seconds)


    # -- request handling ------------------------------------------------------------------------
    def _next(self) -> tuple[str, Any] | None:
        with self._lock:
            return self._script.pop(0) if self._script else None

    def _delay(self) -> float:
        with self._lock:
            return self._delays.pop(0) if self._delays else 0.0

    def handle(self, headers: dict[str, str], body: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Answer one request; returns (status, JSON body, extra headers)."""
        # The SDK authenticates with x-api-key (older releases) or "Authorization: Bearer <key>".
        if self.api_key not in (headers.get("x-api-key"), headers.get("authorization", "").removeprefix("Bearer ")):
            return _error(401, "invalid x-api-key")
        if not headers.get("anthropic-version"):
            return _error(400, "anthropic-version: header is required")
        problem = _validate(body)
        if problem:
            return _error(400, problem)
        scripted = self._next()
        if scripted is not None and scripted[0] == "fail":
            status, retry_after, message = scripted[1]
            extra = {"retry-after": str(retry_after)} if retry_after is not None else {}
            return _error(status, message or {429: "Number of request tokens has exceeded your rate limit.",
                                              529: "Overloaded"}.get(status, "Internal server error"), extra)
        if scripted is not None:
            text, tin, tout, stop = scripted[1]
        elif self.responder is not None:
            text, tin, tout, stop = self.responder(body), None, None, "end_turn"
        else:
            return _error(500, "fake Anthropic: no reply scripted for this request")
        cap = int(body["max_tokens"]) * 4
        if len(text) > cap:
            text, stop = text[:cap], "max_tokens"
        message = {
            "id": f"msg_{uuid.uuid4().hex[:24]}", "type": "message", "role": "assistant", "model": body["model"],
            "content": [{"type": "text", "text": text}], "stop_reason": stop, "stop_sequence": None,
            "usage": {"input_tokens": tin if tin is not None else _count_tokens(prompt_text(body)),
                      "output_tokens": tout if tout is not None else _count_tokens(text)},
        }
        return 200, message, {}


def _validate(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "body: expected a JSON object"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: Field required"
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        return "max_tokens: Field required (an integer >= 1)"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    if messages[0].get("role") != "user":
        return "messages: first message must use the \"user\" role"
    for i, m in enumerate(messages):
        if m.get("role") not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        if not isinstance(m.get("content"), (str, list)) or not m["content"]:
            return f"messages.{i}: all messages must have non-empty content"
    system = body.get("system")
    if system is not None and not isinstance(system, (str, list)):
        return "system: Input should be a valid string or list of text blocks"
    return None


def _error(status: int, message: str, headers: dict[str, str] | None = None
           ) -> tuple[int, dict[str, Any], dict[str, str]]:
    body = {"type": "error", "error": {"type": _ERROR_TYPES.get(status, "api_error"), "message": message},
            "request_id": f"req_{uuid.uuid4().hex[:24]}"}
    return status, body, headers or {}


class _Handler(BaseHTTPRequestHandler):
    state: FakeAnthropic
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        return

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", str(payload.get("request_id") or payload.get("id")))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        self.state.requests.append({"path": path, "headers": headers, "body": body})
        if path != "/v1/messages":
            self._send(*_error(404, f"no route POST {path}"))
            return
        delay = self.state._delay()
        if delay:
            time.sleep(delay)
        status, payload, extra = self.state.handle(headers, body)
        try:
            self._send(status, payload, extra)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            return


FakeAnthropic.handler = _Handler  # the handler class is defined after the fake it serves
