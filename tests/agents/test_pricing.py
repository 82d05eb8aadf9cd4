"""agents.pricing: per-call cost from fresh, output, cache-read and cache-write tokens."""

from __future__ import annotations

import pytest

from agents.pricing import PriceTable, Usage, cost


def test_cache_writes_cost_125_percent_and_reads_10_percent_of_input():
    # Sonnet 4.6: $3 in / $15 out per MTok (Anthropic pricing page): a write is $3.75, a read $0.30
    assert cost("claude-sonnet-4-6", Usage(input=1_000_000)) == pytest.approx(3.0)
    assert cost("claude-sonnet-4-6", Usage(cache_write=1_000_000)) == pytest.approx(3.75)
    assert cost("claude-sonnet-4-6", Usage(cache_read=1_000_000)) == pytest.approx(0.30)
    assert cost("claude-sonnet-4-6", Usage(cache_write_1h=1_000_000)) == pytest.approx(6.0)
    assert cost("claude-sonnet-4-6", Usage(output=1_000_000)) == pytest.approx(15.0)
    mixed = Usage(input=2_000, output=1_500, cache_read=140_000, cache_write=8_000)
    assert cost("claude-sonnet-4-6", mixed) == pytest.approx(
        (2_000 * 3 + 1_500 * 15 + 140_000 * 0.3 + 8_000 * 3.75) / 1e6)


def test_a_dated_id_prices_like_its_alias_and_an_unknown_claude_at_the_dearest():
    assert cost("claude-haiku-4-5-20251001", Usage(input=1_000_000, output=1_000_000)) == pytest.approx(6.0)
    dearest = cost("claude-opus-4-1", Usage(input=1000, output=1000))
    assert cost("claude-mystery-9", Usage(input=1000, output=1000)) == dearest


def test_self_hosted_models_are_free_unless_configured():
    assert cost("llama3.1:70b", Usage(input=10**6, output=10**6)) == 0.0
    table = PriceTable.parse('{"llama3": [0.2, 0.6], "*": {"input": 1, "output": 2, "cache_read": 0.5}}')
    assert table.cost("llama3.1:70b", Usage(input=10**6, output=10**6)) == pytest.approx(0.8)
    assert table.cost("qwen2.5", Usage(cache_read=10**6)) == pytest.approx(0.5)  # the "*" price, its own read rate
    override = PriceTable.parse('{"claude-sonnet-4-6": {"input": 2, "output": 10}}')
    assert override.cost("claude-sonnet-4-6", Usage(cache_write=10**6)) == pytest.approx(2.5)


@pytest.mark.parametrize("bad", ["not json", "[1, 2]", '{"m": [1]}', '{"m": {"input": -1, "output": 2}}'])
def test_a_bad_price_table_says_what_to_write(bad):
    with pytest.raises(ValueError, match="PM_PRICES"):
        PriceTable.parse(bad)


def test_usage_from_the_anthropic_and_openai_wire_shapes():
    u = Usage.from_anthropic({"input_tokens": 50, "output_tokens": 20, "cache_read_input_tokens": 900,
                              "cache_creation_input_tokens": 300,
                              "cache_creation": {"ephemeral_5m_input_tokens": 200, "ephemeral_1h_input_tokens": 100}})
    assert u == Usage(input=50, output=20, cache_read=900, cache_write=200, cache_write_1h=100)
    assert u.input_total == 1250 and u.cached_share == pytest.approx(0.72)
    o = Usage.from_openai({"prompt_tokens": 1000, "completion_tokens": 40, "prompt_tokens_details": {"cached_tokens": 600}})
    assert o == Usage(input=400, output=40, cache_read=600)
    assert Usage(input=1) + Usage(cache_read=2) == Usage(input=1, cache_read=2)
    with pytest.raises(ValueError, match="whole number"):
        Usage(input=-1)
