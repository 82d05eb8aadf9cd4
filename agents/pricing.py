"""What one model call cost: tokens by kind × a configurable price table (USD per million tokens).

A call is billed in four parts (Anthropic's usage object names them): fresh input tokens, output
tokens, tokens read from the prompt cache and tokens written to it. Anthropic prices a cache write
at 1.25× the model's input rate (5-minute entries; 2× for 1-hour entries) and a cache read at 0.1×
(https://platform.claude.com/docs/en/about-claude/pricing, "Model pricing" and "Feature-specific
pricing → Prompt caching"). The table below holds the published input/output rates of the models
the router names by default; everything is overridable with PM_PRICES (docs/budgets.md).

Models that are not Claude models (an OpenAI-compatible endpoint, a self-hosted model behind vLLM or
Ollama) cost what PM_PRICES says, and nothing when it says nothing: we cannot know a self-hosted
model's price. An unknown *Claude* model is priced at the dearest known Claude rate instead, so a
budget check errs on the safe side.

Nothing here reads the environment: :func:`PriceTable.parse` takes the PM_PRICES text a composition
root read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: Multipliers of the input rate (Anthropic pricing page, "Prompt caching").
CACHE_WRITE_5M = 1.25
CACHE_WRITE_1H = 2.0
CACHE_READ = 0.1


@dataclass(frozen=True)
class Price:
    """USD per million tokens of one model.

    ``cache_write`` / ``cache_read`` default to 1.25× / 0.1× of ``input`` when None.
    """

    input: float
    output: float
    cache_write: float | None = None
    cache_read: float | None = None
    cache_write_1h: float | None = None

    @property
    def write_rate(self) -> float:
        return self.input * CACHE_WRITE_5M if self.cache_write is None else self.cache_write

    @property
    def write_1h_rate(self) -> float:
        return self.input * CACHE_WRITE_1H if self.cache_write_1h is None else self.cache_write_1h

    @property
    def read_rate(self) -> float:
        return self.input * CACHE_READ if self.cache_read is None else self.cache_read


#: Published input/output prices (USD / MTok) of Claude models, matched by the longest prefix so a
#: dated id ("claude-haiku-4-5-20251001") prices like its alias. Source: the pricing page above.
ANTHROPIC_PRICES: dict[str, Price] = {
    "claude-haiku-4-5": Price(1.0, 5.0),
    "claude-3-5-haiku": Price(0.8, 4.0),
    "claude-3-haiku": Price(0.25, 1.25),
    "claude-sonnet-4-6": Price(3.0, 15.0),
    "claude-sonnet-4-5": Price(3.0, 15.0),
    "claude-sonnet-4": Price(3.0, 15.0),
    "claude-3-7-sonnet": Price(3.0, 15.0),
    "claude-opus-4-6": Price(5.0, 25.0),
    "claude-opus-4-5": Price(5.0, 25.0),
    "claude-opus-4-1": Price(15.0, 75.0),
    "claude-opus-4": Price(15.0, 75.0),
}
FREE = Price(0.0, 0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Usage:
    """Tokens of one call (or a sum of calls), by how they are billed.

    Attributes:
        input: fresh input tokens (not read from or written to the cache).
        output: output tokens.
        cache_read: input tokens read from the prompt cache.
        cache_write: input tokens written to the cache with the default 5-minute lifetime.
        cache_write_1h: input tokens written to the cache with a 1-hour lifetime.
    """

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    cache_write_1h: int = 0

    def __post_init__(self) -> None:
        for name in ("input", "output", "cache_read", "cache_write", "cache_write_1h"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"usage {name} must be a whole number ≥ 0, got {value!r}")

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.input + other.input, self.output + other.output, self.cache_read + other.cache_read,
                     self.cache_write + other.cache_write, self.cache_write_1h + other.cache_write_1h)

    @property
    def input_total(self) -> int:
        """Every input token the model read: fresh, from the cache and written to it."""
        return self.input + self.cache_read + self.cache_write + self.cache_write_1h

    @property
    def cached_share(self) -> float:
        """The share of input tokens read from the cache (0 when there was no input)."""
        total = self.input_total
        return self.cache_read / total if total else 0.0

    @classmethod
    def from_anthropic(cls, usage: Any) -> Usage:
        """From a Messages API ``usage`` (the SDK's object or its dict).

        ``input_tokens`` there already excludes the cache's tokens; ``cache_creation`` (when the
        API sends it) splits the writes by lifetime.
        """
        get = usage.get if isinstance(usage, Mapping) else (lambda k, d=None: getattr(usage, k, d))
        write = int(get("cache_creation_input_tokens", 0) or 0)
        split = get("cache_creation", None)
        write_1h = 0
        if split is not None:
            sget = split.get if isinstance(split, Mapping) else (lambda k, d=None: getattr(split, k, d))
            write_1h = int(sget("ephemeral_1h_input_tokens", 0) or 0)
            write_1h = min(write_1h, write)
        return cls(input=int(get("input_tokens", 0) or 0), output=int(get("output_tokens", 0) or 0),
                   cache_read=int(get("cache_read_input_tokens", 0) or 0), cache_write=write - write_1h,
                   cache_write_1h=write_1h)

    @classmethod
    def from_openai(cls, usage: Any) -> Usage:
        """From a chat-completions ``usage``: ``prompt_tokens`` includes the cached ones
        (``prompt_tokens_details.cached_tokens``), which are split out here as cache reads."""
        get = usage.get if isinstance(usage, Mapping) else (lambda k, d=None: getattr(usage, k, d))
        prompt = int(get("prompt_tokens", 0) or 0)
        details = get("prompt_tokens_details", None)
        cached = 0
        if details is not None:
            dget = details.get if isinstance(details, Mapping) else (lambda k, d=None: getattr(details, k, d))
            cached = min(prompt, int(dget("cached_tokens", 0) or 0))
        return cls(input=prompt - cached, output=int(get("completion_tokens", 0) or 0), cache_read=cached)


@dataclass(frozen=True)
class PriceTable:
    """Model id → :class:`Price`, by longest prefix; Claude models fall back to the dearest Claude rate,
    any other model to ``default`` (free unless configured).

    Args:
        prices: model id or prefix → price.
        default: the price of a non-Claude model the table does not name.
    """

    prices: Mapping[str, Price] = field(default_factory=lambda: dict(ANTHROPIC_PRICES))
    default: Price = FREE

    def price(self, model: str) -> Price:
        """The price of ``model`` (see the class doc for unknown models)."""
        best = ""
        for name in self.prices:
            if model.startswith(name) and len(name) > len(best):
                best = name
        if best:
            return self.prices[best]
        if model.startswith("claude"):
            claude = [p for n, p in self.prices.items() if n.startswith("claude")] or list(ANTHROPIC_PRICES.values())
            return max(claude, key=lambda p: (p.input, p.output))
        return self.default

    def cost(self, model: str, usage: Usage) -> float:
        """USD of ``usage`` on ``model``, rounded to 1e-8 (hundred-millionths of a dollar)."""
        p = self.price(model)
        micro = (usage.input * p.input + usage.output * p.output + usage.cache_read * p.read_rate
                 + usage.cache_write * p.write_rate + usage.cache_write_1h * p.write_1h_rate)
        return round(micro / 1_000_000, 8)

    @classmethod
    def parse(cls, text: str | None) -> PriceTable:
        """The default table overridden by PM_PRICES.

        PM_PRICES is a JSON object: model id or prefix → ``[input, output]`` or
        ``{"input": .., "output": .., "cache_write": .., "cache_read": ..}`` (USD per million tokens);
        the key ``"*"`` prices every other non-Claude model (default 0).

        Raises:
            ValueError: the text is not such an object; the message says what to write.
        """
        table = dict(ANTHROPIC_PRICES)
        default = FREE
        if not text or not text.strip():
            return cls(table, default)
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"PM_PRICES is not JSON ({exc}); write e.g. "
                             '{"claude-sonnet-4-6": [3, 15], "llama3": [0, 0]}') from None
        if not isinstance(raw, dict):
            raise ValueError('PM_PRICES must be a JSON object, e.g. {"claude-sonnet-4-6": [3, 15]}')
        for model, spec in raw.items():
            price = _price_of(str(model), spec)
            if model == "*":
                default = price
            else:
                table[str(model)] = price
        return cls(table, default)


def _price_of(model: str, spec: Any) -> Price:
    if isinstance(spec, list | tuple) and len(spec) == 2 and all(_number(v) for v in spec):
        return Price(float(spec[0]), float(spec[1]))
    if isinstance(spec, dict) and _number(spec.get("input")) and _number(spec.get("output")):
        extra = {k: float(spec[k]) for k in ("cache_write", "cache_read", "cache_write_1h") if _number(spec.get(k))}
        return Price(float(spec["input"]), float(spec["output"]), **extra)
    raise ValueError(f"PM_PRICES[{model!r}] must be [input, output] or {{\"input\": .., \"output\": ..}} "
                     "in USD per million tokens, each ≥ 0")


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and v >= 0


DEFAULT_TABLE = PriceTable()


def cost(model: str, usage: Usage, table: PriceTable | None = None) -> float:
    """USD of one call: ``usage`` on ``model`` priced by ``table`` (default: the published prices)."""
    return (table or DEFAULT_TABLE).cost(model, usage)
