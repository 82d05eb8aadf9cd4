"""The Claude adapter (agents.llm) through the real `anthropic` client against the stand-in Messages API."""

from __future__ import annotations

import pytest

from agents.llm import AnthropicLLM, LLMError, cost_usd, make_llm, price
from store.config import Settings
from tests.fakes.anthropic_server import FakeAnthropic

MSGS = [{"role": "user", "content": "what changed?"}]


@pytest.fixture()
def claude():
    fake = FakeAnthropic().start()
    yield fake
    fake.stop()


def _llm(fake: FakeAnthropic, sleeps: list[float] | None = None, **kw) -> AnthropicLLM:
    record = sleeps.append if sleeps is not None else (lambda s: None)
    return AnthropicLLM(api_key=fake.api_key, base_url=fake.url, sleep=record, **kw)


def test_answer_carries_text_tokens_and_cost(claude):
    claude.reply("chg-1 on pricing", input_tokens=1200, output_tokens=80)
    done = _llm(claude, model="claude-sonnet-4-6").complete(system="be brief", messages=MSGS, max_tokens=300)
    assert (done.text, done.tokens_in, done.tokens_out, done.stop_reason) == ("chg-1 on pricing", 1200, 80, "end_turn")
    # $3 / $15 per million tokens for Sonnet 4.6
    assert done.cost_usd == pytest.approx(1200 * 3e-6 + 80 * 15e-6)
    assert done.message_id.startswith("msg_")
    (req,) = claude.requests
    assert req["body"] == {"model": "claude-sonnet-4-6", "max_tokens": 300, "system": "be brief", "messages": MSGS}
    assert claude.api_key in (req["headers"].get("x-api-key"), req["headers"].get("authorization", "")[7:])
    assert req["headers"]["anthropic-version"]


def test_429_with_retry_after_is_waited_out_then_answered(claude):
    claude.fail(429, retry_after=2)
    claude.reply("ok")
    sleeps: list[float] = []
    assert _llm(claude, sleeps).complete(system="s", messages=MSGS, max_tokens=10).text == "ok"
    assert sleeps == [2.0] and len(claude.requests) == 2


def test_overload_that_persists_fails_after_the_attempts(claude):
    claude.fail(529, retry_after=1, count=5)
    sleeps: list[float] = []
    with pytest.raises(LLMError, match="529 \\(overloaded_error\\)") as err:
        _llm(claude, sleeps, attempts=3).complete(system="s", messages=MSGS, max_tokens=10)
    assert err.value.status == 529 and sleeps == [1.0, 1.0] and len(claude.requests) == 3


def test_a_retry_after_longer_than_we_wait_fails_at_once(claude):
    claude.fail(429, retry_after=120)
    sleeps: list[float] = []
    with pytest.raises(LLMError, match="429"):
        _llm(claude, sleeps, max_wait_s=10).complete(system="s", messages=MSGS, max_tokens=10)
    assert sleeps == [] and len(claude.requests) == 1


def test_bad_request_is_not_retried_and_the_key_is_not_in_the_message(claude):
    claude.fail(400, message="messages: text content blocks must be non-empty")
    with pytest.raises(LLMError) as err:
        _llm(claude).complete(system="s", messages=MSGS, max_tokens=10)
    assert "400 (invalid_request_error)" in str(err.value) and claude.api_key not in str(err.value)
    assert len(claude.requests) == 1


def test_wrong_key_and_real_request_validation(claude):
    with pytest.raises(LLMError, match="401 \\(authentication_error\\)"):
        AnthropicLLM(api_key="sk-wrong", base_url=claude.url).complete(system="s", messages=MSGS, max_tokens=10)
    # The stand-in validates like the API: a conversation must start with a user turn.
    with pytest.raises(LLMError, match="400"):
        _llm(claude).complete(system="s", messages=[{"role": "assistant", "content": "hi"}], max_tokens=10)


def test_timeout_is_an_llm_error(claude):
    claude.delay_next(1.5)
    claude.reply("too late")
    with pytest.raises(LLMError, match="timed out"):
        _llm(claude, timeout_s=0.3).complete(system="s", messages=MSGS, max_tokens=10)


def test_prices_by_prefix_and_unknown_models_at_the_dearest_rate():
    assert price("claude-sonnet-4-5-20250929") == (3.0, 15.0)
    assert price("claude-haiku-4-5") == (1.0, 5.0)
    assert price("claude-opus-4-1-20250805") == (15.0, 75.0)
    assert price("some-future-model") == (15.0, 75.0)
    assert cost_usd("claude-haiku-4-5", 1_000_000, 1_000_000) == pytest.approx(6.0)


def test_make_llm_needs_the_key(claude):
    assert make_llm(Settings()) is None
    llm = make_llm(Settings(ANTHROPIC_API_KEY=claude.api_key, ANTHROPIC_BASE_URL=claude.url), model="claude-haiku-4-5")
    claude.reply("hi", input_tokens=10, output_tokens=2)
    done = llm.complete(system="s", messages=MSGS, max_tokens=5)
    assert done.model == "claude-haiku-4-5" and done.cost_usd == pytest.approx(10e-6 + 2 * 5e-6)
