"""Model ids per tier and the chat model of a tier (a small seam the model router replaces).

Tiers: ``fast`` (parsing, summaries, compaction), ``balanced`` (reasoning), ``deep`` (the
strongest). Defaults follow the design (seed 000, "LLM API Integration"): Haiku for structured
parsing agents, Sonnet for reasoning agents; deep takes an Opus-class model. Settings override
them (PM_MODEL_FAST / PM_MODEL_BALANCED / PM_MODEL_DEEP, and PM_OPENAI_MODEL_* for the
OpenAI-compatible provider).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agents.llm import AnthropicLLM, ChatModel

TIERS = ("fast", "balanced", "deep")
DEFAULT_MODELS = {"fast": "claude-haiku-4-5-20251001", "balanced": "claude-sonnet-4-6", "deep": "claude-opus-4-5"}
DEFAULT_OPENAI_MODELS = {"fast": "gpt-4.1-mini", "balanced": "gpt-4.1", "deep": "gpt-4.1"}


def model_id(settings: Any, tier: str, provider: str = "anthropic") -> str:
    """The model id of ``tier`` for ``provider`` (settings first, then the design's defaults).

    Raises:
        ValueError: unknown tier.
    """
    if tier not in TIERS:
        raise ValueError(f"unknown model tier {tier!r}; use one of {', '.join(TIERS)}")
    if provider == "openai":
        return str(getattr(settings, f"openai_model_{tier}", None) or DEFAULT_OPENAI_MODELS[tier])
    return str(getattr(settings, f"model_{tier}", None) or DEFAULT_MODELS[tier])


def _secret(value: Any) -> str | None:
    if value is None:
        return None
    return value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)


def chat_models(settings: Any, **options: Any) -> Callable[[str], ChatModel] | None:
    """A function tier → :class:`~agents.llm.ChatModel`, or None when no model is configured.

    With both ANTHROPIC_API_KEY and OPENAI_API_KEY, Anthropic answers and the OpenAI-compatible
    endpoint takes over on repeated overload (:class:`agents.openai_llm.FallbackLLM`); with one
    key, that provider alone.

    Args:
        settings: ``store.config.Settings``.
        options: passed to both adapters (attempts, max_wait_s, sleep, timeout_s).
    """
    from agents.openai_llm import FallbackLLM, OpenAILLM

    a_key, o_key = _secret(getattr(settings, "anthropic_api_key", None)), _secret(getattr(settings, "openai_api_key", None))
    if not a_key and not o_key:
        return None
    cache: dict[str, ChatModel] = {}

    def build(tier: str) -> ChatModel:
        if tier in cache:
            return cache[tier]
        anthropic = AnthropicLLM(api_key=a_key, base_url=getattr(settings, "anthropic_base_url", None),
                                 model=model_id(settings, tier), **options) if a_key else None
        openai = OpenAILLM(api_key=o_key, base_url=getattr(settings, "openai_base_url", None),
                           model=model_id(settings, tier, "openai"), **options) if o_key else None
        model: ChatModel
        if anthropic is not None and openai is not None:
            model = FallbackLLM(anthropic, openai)
        else:
            model = anthropic or openai  # type: ignore[assignment]
        cache[tier] = model
        return model

    return build
