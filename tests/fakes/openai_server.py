"""A stand-in OpenAI chat-completions API on loopback (the wire format vLLM and Ollama also serve).

Serves ``POST /v1/chat/completions``: the request must carry ``Authorization: Bearer <key>``
(401 ``invalid_api_key`` otherwise) and a body with ``model`` and a non-empty ``messages`` list
(roles system/user/assistant/tool; a ``tool`` message must answer a ``tool_calls`` id of the
assistant message before it, and every such id must be answered; ``tools`` entries are
``{"type": "function", "function": {name, parameters}}``; ``tool_choice`` naming a function must
name an offered one) — 400 ``invalid_request_error`` otherwise. The answer is a
``chat.completion`` with ``choices[0].message.{content, tool_calls}``, ``finish_reason`` and
``usage{prompt_tokens, completion_tokens, total_tokens, prompt_tokens_details.cached_tokens}``.

Scripted like :class:`tests.fakes.anthropic_server.FakeAnthropic`: :meth:`FakeOpenAI.reply`
queues an answer (text and/or tool calls), :meth:`FakeOpenAI.fail` an error (429 with
``retry-after``, 500, 503), ``responder(body)`` answers when the queue is empty, else 500.
"""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from tests.fakes.loopback import LoopbackServer, QuietHandler


def call(name: str, arguments: dict[str, Any] | str | None = None) -> dict[str, Any]:
    """A tool call for :meth:`FakeOpenAI.reply` (arguments as a dict, or a raw string)."""
    args = arguments if isinstance(arguments, str) else json.dumps(arguments or {})
    return {"id": f"call_{uuid.uuid4().hex[:16]}", "type": "function", "function": {"name": name, "arguments": args}}


class FakeOpenAI(LoopbackServer):
    """The server's state: scripted replies, failures and the request log."""

    thread_name = "fake-openai"

    def __init__(self, api_key: str = "sk-openai-test-0123456789") -> None:
        super().__init__()
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []
        self.responder: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        self._script: list[tuple[str, Any]] = []
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def reply(self, content: str | None = None, *, tool_calls: list[dict[str, Any]] | None = None,
              finish_reason: str | None = None, usage: dict[str, Any] | None = None,
              refusal: str | None = None) -> None:
        """Queue an answer (finish_reason defaults to ``tool_calls`` when there are any, else ``stop``)."""
        with self._lock:
            self._script.append(("reply", {"content": content, "tool_calls": tool_calls, "refusal": refusal,
                                           "finish_reason": finish_reason, "usage": usage}))

    def fail(self, status: int, *, retry_after: float | None = None, count: int = 1) -> None:
        """Queue ``count`` error answers (with ``retry-after`` if given)."""
        with self._lock:
            self._script.extend([("fail", (status, retry_after))] * count)

    def _next(self) -> tuple[str, Any] | None:
        with self._lock:
            return self._script.pop(0) if self._script else None

    def handle(self, headers: dict[str, str], body: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
        if headers.get("authorization") != f"Bearer {self.api_key}":
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        problem = _validate(body)
        if problem:
            return _error(400, problem, "invalid_request_error")
        scripted = self._next()
        if scripted is not None and scripted[0] == "fail":
            status, retry_after = scripted[1]
            extra = {"retry-after": str(retry_after)} if retry_after is not None else {}
            code = {429: "rate_limit_exceeded", 503: "overloaded"}.get(status, "server_error")
            return _error(status, "Rate limit reached" if status == 429 else "The server is overloaded", code, extra)
        if scripted is not None:
            spec = scripted[1]
        elif self.responder is not None:
            spec = self.responder(body)
        else:
            return _error(500, "fake OpenAI: no reply scripted for this request", "server_error")
        calls = spec.get("tool_calls") or None
        finish = spec.get("finish_reason") or ("tool_calls" if calls else "stop")
        prompt = sum(math.ceil(len(json.dumps(m)) / 4) for m in body["messages"]) + \
            sum(math.ceil(len(json.dumps(t)) / 4) for t in body.get("tools") or [])
        completion = math.ceil(len(json.dumps([spec.get("content"), calls])) / 4)
        usage = spec.get("usage") or {"prompt_tokens": prompt, "completion_tokens": completion,
                                      "total_tokens": prompt + completion,
                                      "prompt_tokens_details": {"cached_tokens": 0}}
        message: dict[str, Any] = {"role": "assistant", "content": spec.get("content"), "refusal": spec.get("refusal")}
        if calls:
            message["tool_calls"] = calls
        return 200, {"id": f"chatcmpl-{uuid.uuid4().hex[:20]}", "object": "chat.completion", "created": int(time.time()),
                     "model": body["model"], "choices": [{"index": 0, "message": message, "finish_reason": finish,
                                                          "logprobs": None}], "usage": usage}, {}


def _validate(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "We could not parse the JSON body of your request."
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "you must provide a model parameter"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "[] is too short - 'messages'"
    names: set[str] = set()
    for i, tool in enumerate(body.get("tools") or []):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if tool.get("type") != "function" or not isinstance(fn, dict) or not fn.get("name"):
            return f"Invalid value for 'tools[{i}]': expected a function tool"
        if not isinstance(fn.get("parameters", {}), dict):
            return f"Invalid 'tools[{i}].function.parameters': expected an object"
        names.add(fn["name"])
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and (choice.get("function") or {}).get("name") not in names:
        return "Invalid 'tool_choice': the named function is not in 'tools'"
    pending: set[str] = set()
    for i, m in enumerate(messages):
        role = m.get("role") if isinstance(m, dict) else None
        if role not in ("system", "user", "assistant", "tool", "developer"):
            return f"Invalid value for 'messages[{i}].role'"
        if role == "tool":
            if m.get("tool_call_id") not in pending:
                return (f"Invalid parameter: messages with role 'tool' must be a response to a preceeding message "
                        f"with 'tool_calls' (messages[{i}])")
            pending.discard(m["tool_call_id"])
            continue
        if pending:
            return ("An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                    f"'tool_call_id'. The following tool_call_ids did not have response messages: {sorted(pending)[0]}")
        if role == "assistant":
            calls = m.get("tool_calls") or []
            for c in calls:
                try:
                    json.loads(c["function"]["arguments"])
                except (KeyError, TypeError, ValueError):
                    return f"Invalid 'messages[{i}].tool_calls': arguments must be a JSON string"
            pending = {c["id"] for c in calls}
            if m.get("content") is None and not calls:
                return f"Invalid 'messages[{i}]': an assistant message needs content or tool_calls"
        elif not isinstance(m.get("content"), str | list):
            return f"Invalid 'messages[{i}].content': expected a string"
    return None


def _error(status: int, message: str, code: str, headers: dict[str, str] | None = None
           ) -> tuple[int, dict[str, Any], dict[str, str]]:
    kind = "invalid_request_error" if status < 500 and status != 429 else ("requests" if status == 429 else "server_error")
    return status, {"error": {"message": message, "type": kind, "param": None, "code": code}}, headers or {}


class _Handler(QuietHandler):
    state: FakeOpenAI
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        path, headers, body = self.read_request()
        self.state.requests.append({"path": path, "headers": headers, "body": body})
        if path != "/v1/chat/completions":
            status, payload, extra = _error(404, f"Invalid URL (POST {path})", "unknown_url")
        else:
            status, payload, extra = self.state.handle(headers, body)
        self.reply(status, {"Content-Type": "application/json", **extra}, json.dumps(payload).encode())


FakeOpenAI.handler = _Handler
