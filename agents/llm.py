"""The LLM port of the agents room and its real adapter on the `anthropic` SDK (Messages API).

:class:`LLM` is the small protocol agents call; :class:`AnthropicLLM` implements it with
``anthropic.Anthropic(...).messages.create``. Every call returns a :class:`Completion` that
carries the tokens used and their cost in USD, so the caller can store them on an AgentRun
and the investigation (``store.agent_runs.start/finish``).

Failures raise :class:`LLMError` (or its :class:`BudgetExceeded`), with messages that never
contain the API key. Rate limits (429) and overload (529, 5xx) are retried here, at most
``attempts`` times and only when the server's ``Retry-After`` fits in ``max_wait_s``: the SDK's
own retries are switched off because it would sleep for whatever Retry-After says.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from agents.errors import AgentError

log = logging.getLogger(__name__)

DEFAULT_MODEL = "claude-sonnet-4-6"
DEFAULT_TIMEOUT_S = 30.0

# USD per million tokens (input, output), from Anthropic's published price list
# (https://platform.claude.com/docs/en/about-claude/pricing and the per-model overview pages,
# e.g. https://platform.claude.com/docs/en/models/sonnet-4-6/overview: $3 / $15). Matched by the longest
# prefix, so dated ids ("claude-sonnet-4-5-20250929") price like their alias.
PRICES_PER_MTOK: dict[str, tuple[float, float]] = {
    "claude-opus-4-1": (15.0, 75.0),
    "claude-opus-4-5": (5.0, 25.0),
    "claude-opus-4": (15.0, 75.0),
    "claude-opus-5": (5.0, 25.0),
    "claude-sonnet-4-5": (3.0, 15.0),
    "claude-sonnet-4": (3.0, 15.0),
    "claude-sonnet-4-6": (3.0, 15.0),
    "claude-sonnet-5": (2.0, 10.0),
    "claude-sonnet-5-5": (2.0, 10.0),
    "claude-opus-5-5": (4.0, 20.0),
    "claude-haiku-4-5": (1.0, 5.0),
    "claude-3-5-haiku": (0.8, 4.0),
}
# An unknown model is priced at the dearest rate above, so a budget check errs on the safe side.
_FALLBACK_PRICE = max(PRICES_PER_MTOK.values())
_RETRY_STATUSES = {429, 500, 502, 503, 504, 529}


class LLMError(AgentError):
    """The model could not answer (API error, timeout, refused request); the message says why.

    Attributes:
        status: the HTTP status when the API answered with an error, else None.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class BudgetExceeded(LLMError):
    """A call would cost more than the budget the caller allows."""


@dataclass(frozen=True)
class Completion:
    """One model answer and what it cost.

    Attributes:
        text: the concatenated text blocks of the answer.
        model: the model that answered (as the API reports it).
        tokens_in: input tokens billed.
        tokens_out: output tokens billed.
        cost_usd: their price per :data:`PRICES_PER_MTOK`.
        stop_reason: ``end_turn``, ``max_tokens``, ...
        message_id: the API's message id (for tracing).
    """

    text: str
    model: str
    tokens_in: int
    tokens_out: int
    cost_usd: float
    stop_reason: str | None = None
    message_id: str | None = None


@dataclass(frozen=True)
class Usage:
    """Tokens of one call, split as the Messages API reports them.

    ``input_tokens`` excludes the cached prefix: the prompt's full size is
    ``input_tokens + cache_read_tokens + cache_write_tokens`` (:attr:`total_input`).
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def total_input(self) -> int:
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens


@dataclass(frozen=True)
class Turn:
    """One model answer in a tool conversation.

    Attributes:
        content: the answer's blocks in the Messages API's shape: ``{"type": "text", "text"}`` and
            ``{"type": "tool_use", "id", "name", "input"}`` (the OpenAI adapter translates to it).
        stop_reason: ``end_turn``, ``tool_use``, ``max_tokens``, ``refusal``, ...
        usage: the tokens billed.
        model: the model that answered.
        provider: ``anthropic`` or ``openai``.
        cost_usd: the call's price (:func:`turn_cost`).
        message_id: the API's id, for tracing.
    """

    content: list[dict[str, Any]]
    stop_reason: str | None
    usage: Usage
    model: str
    provider: str
    cost_usd: float
    message_id: str | None = None

    @property
    def text(self) -> str:
        return "".join(str(b.get("text", "")) for b in self.content if b.get("type") == "text")

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        return [b for b in self.content if b.get("type") == "tool_use"]


class ChatModel(Protocol):
    """A chat model that can call tools (the agents' port); both adapters implement it."""

    @property
    def model(self) -> str:
        """The model id it sends."""
        ...

    def chat(self, *, system: str | list[dict[str, Any]], messages: list[dict[str, Any]],
             tools: list[dict[str, Any]] | None = None, tool_choice: dict[str, Any] | None = None,
             max_tokens: int = 2048) -> Turn:
        """One model turn; raise :class:`LLMError` when it cannot answer."""
        ...


class LLM(Protocol):
    """A chat model that answers one prompt without tools."""

    model: str

    def complete(self, *, system: str, messages: list[dict[str, Any]], max_tokens: int) -> Completion:
        """Answer ``messages`` under ``system``; raise :class:`LLMError` when it cannot."""
        ...


def price(model: str) -> tuple[float, float]:
    """USD per million (input, output) tokens of ``model`` (longest known prefix, else the dearest)."""
    best = ""
    for name in PRICES_PER_MTOK:
        if model.startswith(name) and len(name) > len(best):
            best = name
    return PRICES_PER_MTOK[best] if best else _FALLBACK_PRICE


def cost_usd(model: str, tokens_in: int, tokens_out: int) -> float:
    """The price of a call: tokens × the model's per-million rates."""
    p_in, p_out = price(model)
    return round((tokens_in * p_in + tokens_out * p_out) / 1_000_000, 8)


# Prompt-cache multipliers on the input price, from Anthropic's prompt caching docs
# (https://platform.claude.com/docs/en/build-with-claude/prompt-caching#pricing): a 5-minute cache
# write costs 1.25x the base input price, a cache read 0.1x. agents/pricing.py (issue 14, item 6)
# replaces this with a configurable table.
CACHE_WRITE_FACTOR = 1.25
CACHE_READ_FACTOR = 0.1


def turn_cost(model: str, usage: Usage) -> float:
    """The price of one tool-conversation call, cache reads and writes included."""
    p_in, p_out = price(model)
    billed_in = (usage.input_tokens + CACHE_WRITE_FACTOR * usage.cache_write_tokens
                 + CACHE_READ_FACTOR * usage.cache_read_tokens)
    return round((billed_in * p_in + usage.output_tokens * p_out) / 1_000_000, 8)


class AnthropicLLM:
    """:class:`LLM` on the Messages API through the official `anthropic` client.

    Args:
        api_key: ANTHROPIC_API_KEY (plain string; keep it out of logs).
        base_url: ANTHROPIC_BASE_URL, or None for api.anthropic.com.
        model: the model id sent with every request.
        timeout_s: per-request timeout.
        attempts: tries per call on 429/529/5xx (1 = no retry).
        max_wait_s: the longest Retry-After we wait; a longer one fails the call at once.
        sleep: how to wait (tests pass a recorder).
        client: an ``anthropic.Anthropic`` to use instead of building one.
    """

    def __init__(self, *, api_key: str, base_url: str | None = None, model: str = DEFAULT_MODEL,
                 timeout_s: float = DEFAULT_TIMEOUT_S, attempts: int = 3, max_wait_s: float = 10.0,
                 sleep: Callable[[float], None] = time.sleep, client: Any = None) -> None:
        if client is None:
            from anthropic import Anthropic

            client = Anthropic(api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=0)
        self._client = client
        self.model = model
        self._attempts = max(1, attempts)
        self._max_wait_s = max_wait_s
        self._sleep = sleep

    def complete(self, *, system: str, messages: list[dict[str, Any]], max_tokens: int) -> Completion:
        """One Messages API call (no tools), retried on 429/529/5xx within the wait bound.

        Args:
            system: the system prompt.
            messages: ``[{"role": "user"|"assistant", "content": str}]``.
            max_tokens: the answer's token cap.

        Raises:
            LLMError: the API refused, failed, timed out, or kept rate-limiting.

        Returns:
            The :class:`Completion`.
        """
        msg = self._create(model=self.model, max_tokens=max_tokens, system=system, messages=messages)
        return _completion(msg, self.model)

    def chat(self, *, system: str | list[dict[str, Any]], messages: list[dict[str, Any]],
             tools: list[dict[str, Any]] | None = None, tool_choice: dict[str, Any] | None = None,
             max_tokens: int = 2048) -> Turn:
        """One Messages API call with tools, retried like :meth:`complete`.

        Args:
            system: the system prompt, or text blocks (a block may carry ``cache_control``).
            messages: the conversation in the Messages API's shape (content blocks ``text``,
                ``tool_use``, ``tool_result``); blocks may carry ``cache_control``.
            tools: tool definitions ``{name, description, input_schema}`` (the last may carry
                ``cache_control``), or None.
            tool_choice: ``{"type": "auto"|"any"|"tool", "name"?}`` or None.
            max_tokens: the answer's token cap.

        Raises:
            LLMError: as :meth:`complete`.

        Returns:
            The :class:`Turn` (content blocks, stop reason, usage with the cache fields, cost).
        """
        kwargs: dict[str, Any] = {"model": self.model, "max_tokens": max_tokens, "system": system,
                                  "messages": messages}
        if tools:
            kwargs["tools"] = tools
            if tool_choice:
                kwargs["tool_choice"] = tool_choice
        msg = self._create(**kwargs)
        blocks: list[dict[str, Any]] = []
        for b in msg.content or []:
            kind = getattr(b, "type", None)
            if kind == "text":
                blocks.append({"type": "text", "text": str(getattr(b, "text", ""))})
            elif kind == "tool_use":
                blocks.append({"type": "tool_use", "id": str(b.id), "name": str(b.name),
                               "input": dict(b.input) if isinstance(b.input, dict) else {"_raw": b.input}})
        u = msg.usage
        usage = Usage(input_tokens=int(getattr(u, "input_tokens", 0) or 0),
                      output_tokens=int(getattr(u, "output_tokens", 0) or 0),
                      cache_read_tokens=int(getattr(u, "cache_read_input_tokens", 0) or 0),
                      cache_write_tokens=int(getattr(u, "cache_creation_input_tokens", 0) or 0))
        model = str(getattr(msg, "model", None) or self.model)
        return Turn(content=blocks, stop_reason=msg.stop_reason, usage=usage, model=model, provider="anthropic",
                    cost_usd=turn_cost(model, usage), message_id=getattr(msg, "id", None))

    def _create(self, **kwargs: Any) -> Any:
        import anthropic

        for attempt in range(1, self._attempts + 1):
            try:
                return self._client.messages.create(**kwargs)
            except anthropic.APIStatusError as exc:
                wait = _retry_after(exc.response.headers)
                kind = _error_type(exc)
                if exc.status_code in _RETRY_STATUSES and attempt < self._attempts and (
                        wait is None or wait <= self._max_wait_s):
                    delay = wait if wait is not None else min(0.5 * 2 ** (attempt - 1), self._max_wait_s)
                    log.info("Claude answered %s (%s); retrying in %.1f s", exc.status_code, kind, delay)
                    self._sleep(delay)
                    continue
                raise LLMError(f"Claude API error {exc.status_code} ({kind}); "
                               "check ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL or retry later",
                               status=exc.status_code) from None
            except anthropic.APITimeoutError:
                raise LLMError("Claude API timed out; retry later or raise the timeout") from None
            except anthropic.APIConnectionError:
                raise LLMError("cannot reach the Claude API; check ANTHROPIC_BASE_URL and the network") from None
        raise LLMError("Claude API kept rate-limiting; retry later")  # pragma: no cover - loop always returns/raises


def _completion(msg: Any, requested_model: str) -> Completion:
    text = "".join(getattr(b, "text", "") for b in (msg.content or []) if getattr(b, "type", None) == "text")
    usage = msg.usage
    tokens_in = int(getattr(usage, "input_tokens", 0) or 0)
    tokens_out = int(getattr(usage, "output_tokens", 0) or 0)
    model = str(getattr(msg, "model", None) or requested_model)
    return Completion(text=text, model=model, tokens_in=tokens_in, tokens_out=tokens_out,
                      cost_usd=cost_usd(model, tokens_in, tokens_out), stop_reason=msg.stop_reason,
                      message_id=getattr(msg, "id", None))


def _retry_after(headers: Any) -> float | None:
    # retry-after-ms is Anthropic's more precise variant; retry-after is plain seconds.
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        raw = headers.get(name) if headers is not None else None
        if raw is not None:
            try:
                return max(0.0, float(raw) * scale)
            except ValueError:
                continue
    return None


def _error_type(exc: Any) -> str:
    body: dict[str, Any] = exc.body if isinstance(getattr(exc, "body", None), dict) else {}
    err: dict[str, Any] = body["error"] if isinstance(body.get("error"), dict) else body
    return str(err.get("type") or type(exc).__name__)


def make_llm(settings: Any, *, model: str | None = None, **options: Any) -> AnthropicLLM | None:
    """The Claude adapter from ``store.config.Settings``, or None when ANTHROPIC_API_KEY is unset.

    Args:
        settings: uses ``anthropic_api_key`` (SecretStr) and ``anthropic_base_url``.
        model: the model id (default :data:`DEFAULT_MODEL`).
        options: passed to :class:`AnthropicLLM` (timeout_s, attempts, max_wait_s, ...).
    """
    key = getattr(settings, "anthropic_api_key", None)
    if key is None:
        return None
    secret = key.get_secret_value() if hasattr(key, "get_secret_value") else str(key)
    return AnthropicLLM(api_key=secret, base_url=getattr(settings, "anthropic_base_url", None),
                        model=model or DEFAULT_MODEL, **options)
