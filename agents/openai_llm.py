"""The OpenAI-compatible adapter of the agents' :class:`~agents.llm.ChatModel` port, and the fallback.

:class:`OpenAILLM` speaks the chat-completions wire format (``POST {base}/chat/completions`` with
``tools`` / ``tool_choice``; answers with ``choices[0].message.{content, tool_calls}``,
``finish_reason`` and ``usage.{prompt_tokens, completion_tokens, prompt_tokens_details.cached_tokens}``)
over httpx, so it serves OpenAI as well as self-hosted models behind vLLM or Ollama
(``OPENAI_BASE_URL``). It translates the Messages-API-shaped conversation the agents keep
(text / tool_use / tool_result blocks) to and from that format, so the tool loop never knows
which provider answered.

:class:`FallbackLLM` calls one provider and, when it keeps answering 429 / 529 after its own
retries, the other; it stays on the other for ``stick_s`` before trying the first again.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from agents.llm import ChatModel, LLMError, Turn, Usage, _retry_after, turn_cost

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_RETRY_STATUSES = {429, 500, 502, 503, 504, 529}
#: Statuses that mean "this provider is overloaded right now": worth trying the other one.
OVERLOAD_STATUSES = {429, 529, 503}
_FINISH = {"stop": "end_turn", "tool_calls": "tool_use", "function_call": "tool_use", "length": "max_tokens",
           "content_filter": "refusal"}


class OpenAILLM:
    """:class:`~agents.llm.ChatModel` on an OpenAI-compatible chat-completions endpoint.

    Args:
        api_key: OPENAI_API_KEY (keep it out of logs).
        base_url: OPENAI_BASE_URL (``.../v1``), default OpenAI's.
        model: the model id sent with every request.
        timeout_s: per-request timeout.
        attempts: tries per call on 429/5xx (1 = no retry).
        max_wait_s: the longest Retry-After we wait; a longer one fails the call at once.
        sleep: how to wait (tests pass a recorder).
        transport: an httpx transport to use instead of the network (tests).
    """

    provider = "openai"

    def __init__(self, *, api_key: str, base_url: str | None = None, model: str = "gpt-4.1",
                 timeout_s: float = 60.0, attempts: int = 3, max_wait_s: float = 10.0,
                 sleep: Callable[[float], None] = time.sleep, transport: httpx.BaseTransport | None = None) -> None:
        self.model = model
        self._url = (base_url or DEFAULT_BASE_URL).rstrip("/") + "/chat/completions"
        self._client = httpx.Client(timeout=timeout_s, transport=transport,
                                    headers={"Authorization": f"Bearer {api_key}"})
        self._attempts = max(1, attempts)
        self._max_wait_s = max_wait_s
        self._sleep = sleep

    def chat(self, *, system: str | list[dict[str, Any]], messages: list[dict[str, Any]],
             tools: list[dict[str, Any]] | None = None, tool_choice: dict[str, Any] | None = None,
             max_tokens: int = 2048) -> Turn:
        """One chat-completions call; see :meth:`agents.llm.AnthropicLLM.chat` for the arguments.

        Raises:
            LLMError: the endpoint refused, failed, timed out or kept rate-limiting.
        """
        body: dict[str, Any] = {"model": self.model, "max_tokens": max_tokens,
                                "messages": to_openai_messages(system, messages)}
        if tools:
            body["tools"] = [{"type": "function", "function": {
                "name": t["name"], "description": t.get("description", ""), "parameters": t["input_schema"]}}
                for t in tools]
            choice = (tool_choice or {}).get("type")
            if choice == "any":
                body["tool_choice"] = "required"
            elif choice == "tool":
                body["tool_choice"] = {"type": "function", "function": {"name": tool_choice["name"]}}  # type: ignore[index]
            elif choice == "none":
                body["tool_choice"] = "none"
        data = self._post(body)
        return from_openai(data, self.model)

    def complete(self, *, system: str, messages: list[dict[str, Any]], max_tokens: int) -> Any:
        """The :class:`~agents.llm.LLM` call (no tools), for follow-up answers."""
        from agents.llm import Completion

        turn = self.chat(system=system, messages=messages, max_tokens=max_tokens)
        return Completion(text=turn.text, model=turn.model, tokens_in=turn.usage.total_input,
                          tokens_out=turn.usage.output_tokens, cost_usd=turn.cost_usd,
                          stop_reason=turn.stop_reason, message_id=turn.message_id)

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        for attempt in range(1, self._attempts + 1):
            try:
                resp = self._client.post(self._url, json=body)
            except httpx.TimeoutException:
                raise LLMError("the OpenAI-compatible API timed out; retry later or raise the timeout") from None
            except httpx.HTTPError:
                raise LLMError("cannot reach the OpenAI-compatible API; check OPENAI_BASE_URL and the network") from None
            if resp.status_code == 200:
                try:
                    data = resp.json()
                except ValueError:
                    raise LLMError("the OpenAI-compatible API answered something that is not JSON; "
                                   "check OPENAI_BASE_URL points at a /v1 endpoint") from None
                if not isinstance(data, dict) or not data.get("choices"):
                    raise LLMError("the OpenAI-compatible API answered without choices; check OPENAI_BASE_URL")
                return data
            wait = _retry_after(resp.headers)
            if resp.status_code in _RETRY_STATUSES and attempt < self._attempts and (
                    wait is None or wait <= self._max_wait_s):
                delay = wait if wait is not None else min(0.5 * 2 ** (attempt - 1), self._max_wait_s)
                log.info("OpenAI-compatible API answered %s; retrying in %.1f s", resp.status_code, delay)
                self._sleep(delay)
                continue
            raise LLMError(f"OpenAI-compatible API error {resp.status_code} ({_error_code(resp)}); "
                           "check OPENAI_API_KEY / OPENAI_BASE_URL or retry later", status=resp.status_code)
        raise LLMError("the OpenAI-compatible API kept rate-limiting; retry later")  # pragma: no cover

    def close(self) -> None:
        self._client.close()


def _error_code(resp: httpx.Response) -> str:
    try:
        err = resp.json().get("error") or {}
    except ValueError:
        return "no JSON body"
    return str(err.get("code") or err.get("type") or "error") if isinstance(err, dict) else "error"


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(b.get("text", "")) for b in content if isinstance(b, dict) and b.get("type") == "text")
    return ""


def to_openai_messages(system: str | list[dict[str, Any]], messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Messages-API-shaped conversation as chat-completions messages.

    ``tool_use`` blocks become the assistant's ``tool_calls``; each ``tool_result`` becomes a
    ``tool`` message (an error result is prefixed ``ERROR:``, the format has no flag for it).
    """
    out: list[dict[str, Any]] = [{"role": "system", "content": _text_of(system)}]
    for m in messages:
        content = m.get("content")
        if m.get("role") == "assistant":
            msg: dict[str, Any] = {"role": "assistant", "content": _text_of(content) or None}
            calls = [b for b in content or [] if isinstance(b, dict) and b.get("type") == "tool_use"] \
                if isinstance(content, list) else []
            if calls:
                msg["tool_calls"] = [{"id": b["id"], "type": "function", "function": {
                    "name": b["name"], "arguments": json.dumps(b.get("input") or {})}} for b in calls]
            out.append(msg)
            continue
        if isinstance(content, list):
            for b in content:
                if isinstance(b, dict) and b.get("type") == "tool_result":
                    text = _text_of(b.get("content"))
                    out.append({"role": "tool", "tool_call_id": b["tool_use_id"],
                                "content": f"ERROR: {text}" if b.get("is_error") else text})
        text = _text_of(content)
        if text:
            out.append({"role": "user", "content": text})
    return out


def from_openai(data: dict[str, Any], requested_model: str) -> Turn:
    """A chat-completions answer as a :class:`~agents.llm.Turn` with Messages-API-shaped blocks."""
    choice = (data.get("choices") or [{}])[0]
    msg = choice.get("message") or {}
    blocks: list[dict[str, Any]] = []
    if msg.get("content"):
        blocks.append({"type": "text", "text": str(msg["content"])})
    stop = _FINISH.get(str(choice.get("finish_reason")), str(choice.get("finish_reason")))
    if msg.get("refusal"):
        blocks.append({"type": "text", "text": str(msg["refusal"])})
        stop = "refusal"
    for call in msg.get("tool_calls") or []:
        fn = call.get("function") or {}
        try:
            args = json.loads(fn.get("arguments") or "{}")
        except ValueError:
            args = {"_raw": fn.get("arguments")}
        blocks.append({"type": "tool_use", "id": str(call.get("id") or f"call_{uuid.uuid4().hex[:12]}"),
                       "name": str(fn.get("name")), "input": args if isinstance(args, dict) else {"_raw": args}})
    u = data.get("usage") or {}
    cached = int(((u.get("prompt_tokens_details") or {}).get("cached_tokens")) or 0)
    usage = Usage(input_tokens=max(0, int(u.get("prompt_tokens") or 0) - cached),
                  output_tokens=int(u.get("completion_tokens") or 0), cache_read_tokens=cached)
    model = str(data.get("model") or requested_model)
    return Turn(content=blocks, stop_reason=stop, usage=usage, model=model, provider="openai",
                cost_usd=turn_cost(model, usage), message_id=data.get("id"))


class FallbackLLM:
    """A :class:`~agents.llm.ChatModel` over a primary and a secondary provider.

    A call the primary fails with an overload status (429 / 503 / 529, after the adapter's own
    retries) goes to the secondary, which then serves every call for ``stick_s`` seconds. Other
    errors are raised as they are (a bad key is not fixed by another provider).

    Attributes:
        switches: every fallback taken, ``{from, to, status, at}`` (for the agent run's record).
    """

    def __init__(self, primary: ChatModel, secondary: ChatModel, *, stick_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._models = [primary, secondary]
        self._stick_s = stick_s
        self._clock = clock
        self._until = 0.0
        self.switches: list[dict[str, Any]] = []

    @property
    def model(self) -> str:
        return self._active()[0].model

    def _active(self) -> list[ChatModel]:
        return self._models[::-1] if self._clock() < self._until else self._models

    def chat(self, **kwargs: Any) -> Turn:
        first, second = self._active()
        try:
            return first.chat(**kwargs)
        except LLMError as exc:
            if exc.status not in OVERLOAD_STATUSES:
                raise
            log.warning("%s stays overloaded (%s); falling back to %s", first.model, exc.status, second.model)
            self.switches.append({"from": first.model, "to": second.model, "status": exc.status})
            self._until = self._clock() + self._stick_s if first is self._models[0] else 0.0
            return second.chat(**kwargs)
