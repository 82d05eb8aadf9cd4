"""A stand-in Anthropic Messages API on loopback, for the real `anthropic` client library.

Serves ``POST /v1/messages`` with the API's wire format: the request must carry the key
(``x-api-key`` or ``Authorization: Bearer``; 401 ``authentication_error`` otherwise) and ``anthropic-version``, and a body with ``model``,
``max_tokens`` (>= 1) and a non-empty ``messages`` list starting with a user turn (400
``invalid_request_error`` otherwise). The answer is a ``message`` object with content blocks
(``text``, ``tool_use``), ``stop_reason`` and ``usage{input_tokens, output_tokens,
cache_creation_input_tokens, cache_read_input_tokens}``.

Tool use is checked as the API checks it: ``tools`` need a name matching ``^[a-zA-Z0-9_-]{1,64}$``
and an object ``input_schema``; a conversation holding ``tool_use``/``tool_result`` blocks needs
``tools``; every ``tool_use`` of an assistant turn must be answered by a ``tool_result`` in the
next user turn and every ``tool_result`` must answer one; ``tool_choice`` ``{"type": "tool"}``
must name an offered tool; at most 4 ``cache_control`` breakpoints. Prompt caching is simulated:
a request whose prefix up to a breakpoint was seen before reads it from the cache
(``cache_read_input_tokens``), a new breakpoint prefix is written (``cache_creation_input_tokens``),
and ``input_tokens`` counts the rest, as the API reports them.

Replies are scripted: :meth:`FakeAnthropic.reply` queues a text answer, :meth:`FakeAnthropic.turn`
queues content blocks (build ``tool_use`` blocks with :func:`tool_use`), :meth:`FakeAnthropic.fail`
queues an error answer (429 ``rate_limit_error`` / 529 ``overloaded_error`` with ``retry-after``,
400, 500), :meth:`FakeAnthropic.delay_next` stalls the next answer (for timeouts), and
``responder`` (a function of the request body returning text, or a dict ``{content, stop_reason,
usage?}``) answers when the queue is empty. With neither,
the server answers 500 so a test never passes on an answer it did not script. Every request is
recorded in :attr:`FakeAnthropic.requests` as ``{"headers": {...}, "body": {...}}``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from tests.fakes.loopback import LoopbackServer, QuietHandler

_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
                413: "request_too_large", 429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}


def _count_tokens(text: str) -> int:
    # A rough stand-in for the tokenizer: ~4 characters per token for English text.
    return max(1, math.ceil(len(text) / 4))


def tool_use(name: str, input: dict[str, Any] | None = None, id: str | None = None) -> dict[str, Any]:
    """A ``tool_use`` content block for :meth:`FakeAnthropic.turn` or a responder."""
    return {"type": "tool_use", "id": id or f"toolu_{uuid.uuid4().hex[:20]}", "name": name, "input": input or {}}


def tool_results(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``tool_result`` blocks of the request's last user turn."""
    last = (body.get("messages") or [{}])[-1]
    content = last.get("content")
    return [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"] \
        if isinstance(content, list) else []


def prompt_text(body: dict[str, Any]) -> str:
    """All the text a request gives the model: the system prompt and every message's text (tool results too)."""
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
            for b in content:
                if not isinstance(b, dict):
                    continue
                if b.get("type") == "tool_result":
                    inner = b.get("content")
                    parts.append(inner if isinstance(inner, str) else
                                 " ".join(str(x.get("text", "")) for x in inner or [] if isinstance(x, dict)))
                else:
                    parts.append(str(b.get("text", "")))
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
        self._cached: set[str] = set()  # hashes of prefixes written to the simulated prompt cache

    # -- test controls ---------------------------------------------------------------------------
    def reply(self, text: str, *, input_tokens: int | None = None, output_tokens: int | None = None,
              stop_reason: str = "end_turn") -> None:
        """Queue a text answer (token counts default to ~chars/4 of the prompt and the answer)."""
        with self._lock:
            self._script.append(("reply", (text, input_tokens, output_tokens, stop_reason)))

    def turn(self, content: list[dict[str, Any]], *, stop_reason: str | None = None,
             usage: dict[str, int] | None = None) -> None:
        """Queue an answer made of content blocks (``stop_reason`` defaults to ``tool_use`` when one is)."""
        stop = stop_reason or ("tool_use" if any(b.get("type") == "tool_use" for b in content) else "end_turn")
        with self._lock:
            self._script.append(("turn", (content, stop, usage)))

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
        usage: dict[str, int] | None = None
        if scripted is not None and scripted[0] == "turn":
            content, stop, usage = scripted[1]
        elif scripted is not None:
            text, tin, tout, stop = scripted[1]
            content = [{"type": "text", "text": text}]
            if tin is not None or tout is not None:
                usage = {"input_tokens": tin if tin is not None else _count_tokens(prompt_text(body)),
                         "output_tokens": tout if tout is not None else _count_tokens(text)}
        elif self.responder is not None:
            answer = self.responder(body)
            if isinstance(answer, dict):
                content = answer["content"]
                stop = answer.get("stop_reason") or (
                    "tool_use" if any(b.get("type") == "tool_use" for b in content) else "end_turn")
                usage = answer.get("usage")
            else:
                content, stop = [{"type": "text", "text": answer}], "end_turn"
        else:
            return _error(500, "fake Anthropic: no reply scripted for this request")
        cap = int(body["max_tokens"]) * 4
        for block in content:
            if block.get("type") == "text" and len(block["text"]) > cap:
                block["text"], stop = block["text"][:cap], "max_tokens"
        if usage is None:
            usage = self._usage(body, content)
        usage = {"cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, **usage}
        message = {
            "id": f"msg_{uuid.uuid4().hex[:24]}", "type": "message", "role": "assistant", "model": body["model"],
            "content": content, "stop_reason": stop, "stop_sequence": None, "usage": usage,
        }
        return 200, message, {}

    def _usage(self, body: dict[str, Any], content: list[dict[str, Any]]) -> dict[str, int]:
        """Token counts with the prompt cache simulated over the request's breakpoints (tools, system, messages)."""
        pieces: list[tuple[str, bool]] = []  # (serialised piece, ends a cache breakpoint)
        for tool in body.get("tools") or []:
            pieces.append((json.dumps(tool, sort_keys=True), "cache_control" in tool))
        system = body.get("system")
        for block in ([{"type": "text", "text": system}] if isinstance(system, str) else system or []):
            pieces.append((json.dumps(block, sort_keys=True), "cache_control" in block))
        for m in body["messages"]:
            blocks = m["content"] if isinstance(m["content"], list) else [{"type": "text", "text": m["content"]}]
            for block in blocks:
                plain = {k: v for k, v in block.items() if k != "cache_control"}
                pieces.append((m["role"] + json.dumps(plain, sort_keys=True), "cache_control" in block))
        total = sum(_count_tokens(p) for p, _ in pieces)
        read = write = 0
        running, size = hashlib.sha256(), 0
        for piece, breakpoint in pieces:
            running.update(piece.encode())
            size += _count_tokens(piece)
            if not breakpoint:
                continue
            key = running.hexdigest()
            with self._lock:
                if key in self._cached:
                    read, write = size, 0
                else:
                    self._cached.add(key)
                    write = size - read
        out_text = " ".join(b.get("text", "") if b.get("type") == "text" else json.dumps(b.get("input"))
                            for b in content)
        return {"input_tokens": total - read - write, "output_tokens": _count_tokens(out_text),
                "cache_read_input_tokens": read, "cache_creation_input_tokens": write}


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
    return _validate_tools(body)


_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def _blocks(m: dict[str, Any]) -> list[dict[str, Any]]:
    return [b for b in m["content"] if isinstance(b, dict)] if isinstance(m["content"], list) else []


def _validate_tools(body: dict[str, Any]) -> str | None:
    tools = body.get("tools")
    names: set[str] = set()
    if tools is not None:
        if not isinstance(tools, list):
            return "tools: Input should be a valid list"
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict) or not _TOOL_NAME.match(str(tool.get("name", ""))):
                return f"tools.{i}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
            if not isinstance(tool.get("input_schema"), dict) or tool["input_schema"].get("type") != "object":
                return f"tools.{i}.input_schema: input_schema must be a JSON schema of type object"
            if tool["name"] in names:
                return f"tools: Tool names must be unique ({tool['name']})"
            names.add(tool["name"])
    choice = body.get("tool_choice")
    if choice is not None:
        if not tools:
            return "tool_choice: may only be specified while providing tools"
        if choice.get("type") == "tool" and choice.get("name") not in names:
            return f"tool_choice.name: tool {choice.get('name')!r} is not in tools"
    breakpoints = sum(1 for t in tools or [] if isinstance(t, dict) and "cache_control" in t)
    system = body.get("system")
    breakpoints += sum(1 for b in system if isinstance(b, dict) and "cache_control" in b) if isinstance(system, list) else 0
    messages = body["messages"]
    pending: set[str] = set()
    for i, m in enumerate(messages):
        blocks = _blocks(m)
        breakpoints += sum(1 for b in blocks if "cache_control" in b)
        uses = {b.get("id") for b in blocks if b.get("type") == "tool_use"}
        results = {b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"}
        if (uses or results) and not tools:
            return "Requests which include `tool_use` or `tool_result` blocks must define tools."
        if m["role"] == "assistant" and results:
            return f"messages.{i}: tool_result blocks belong in user messages"
        if m["role"] == "user":
            if results - pending:
                return (f"messages.{i}.content: unexpected `tool_use_id` found in `tool_result` blocks: "
                        f"{sorted(str(r) for r in results - pending)[0]}. Each `tool_result` block must have a "
                        "corresponding `tool_use` block in the previous message.")
            if pending - results:
                return (f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                        f"{sorted(str(p) for p in pending - results)[0]}")
            pending = set()
        else:
            if pending:
                return f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after"
            pending = {str(u) for u in uses}
    if breakpoints > 4:
        return f"A maximum of 4 blocks with cache_control may be provided. Found {breakpoints}."
    return None


def _error(status: int, message: str, headers: dict[str, str] | None = None
           ) -> tuple[int, dict[str, Any], dict[str, str]]:
    body = {"type": "error", "error": {"type": _ERROR_TYPES.get(status, "api_error"), "message": message},
            "request_id": f"req_{uuid.uuid4().hex[:24]}"}
    return status, body, headers or {}


class _Handler(QuietHandler):
    state: FakeAnthropic
    protocol_version = "HTTP/1.1"

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
        request_id = str(payload.get("request_id") or payload.get("id"))
        self.reply(status, {"Content-Type": "application/json", "request-id": request_id, **headers},
                   json.dumps(payload).encode())

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        path, headers, body = self.read_request()
        self.state.requests.append({"path": path, "headers": headers, "body": body})
        if path != "/v1/messages":
            self._send(*_error(404, f"no route POST {path}"))
            return
        delay = self.state._delay()
        if delay:
            time.sleep(delay)
        self._send(*self.state.handle(headers, body))


FakeAnthropic.handler = _Handler  # the handler class is defined after the fake it serves
