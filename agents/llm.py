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
        import anthropic

        for attempt in range(1, self._attempts + 1):
            try:
                msg = self._client.messages.create(model=self.model, max_tokens=max_tokens, system=system,
                                                   messages=messages)
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
            return _completion(msg, self.model)
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
