"""The agents' ChatModel port: tool use on both adapters (real `anthropic` client; httpx on the
chat-completions wire format) against the loopback stand-ins, retries and provider fallback."""

from __future__ import annotations

import pytest

from agents.llm import AnthropicLLM, LLMError, turn_cost
from agents.openai_llm import FallbackLLM, OpenAILLM
from agents.tiers import chat_models, model_id
from store.config import Settings
from tests.fakes.anthropic_server import FakeAnthropic, tool_use
from tests.fakes.openai_server import FakeOpenAI, call

TOOLS = [{"name": "logs_search", "description": "logs", "input_schema": {"type": "object", "properties": {
    "service": {"type": "string"}}}, "cache_control": {"type": "ephemeral"}}]
SYSTEM = [{"type": "text", "text": "rules", "cache_control": {"type": "ephemeral"}}]


@pytest.fixture()
def claude():
    fake = FakeAnthropic().start()
    yield fake
    fake.stop()


@pytest.fixture()
def gpt():
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


def _claude(fake, **kw):
    return AnthropicLLM(api_key=fake.api_key, base_url=fake.url, sleep=lambda s: None, **kw)


def _gpt(fake, sleeps=None, **kw):
    return OpenAILLM(api_key=fake.api_key, base_url=fake.base_url, sleep=(sleeps.append if sleeps is not None
                                                                        else lambda s: None), **kw)


def test_anthropic_tool_use_round_trip_with_cache_usage(claude):
    claude.turn([{"type": "text", "text": "checking"}, tool_use("logs_search", {"service": "pricing"}, id="toolu_1")],
                usage={"input_tokens": 50, "output_tokens": 20, "cache_creation_input_tokens": 1000,
                       "cache_read_input_tokens": 4000})
    llm = _claude(claude, model="claude-sonnet-4-6")
    msgs = [{"role": "user", "content": [{"type": "text", "text": "pack", "cache_control": {"type": "ephemeral"}}]}]
    turn = llm.chat(system=SYSTEM, messages=msgs, tools=TOOLS, tool_choice={"type": "auto"}, max_tokens=300)
    assert turn.stop_reason == "tool_use" and turn.text == "checking"
    assert turn.tool_calls == [{"type": "tool_use", "id": "toolu_1", "name": "logs_search",
                                "input": {"service": "pricing"}}]
    u = turn.usage
    assert (u.input_tokens, u.output_tokens, u.cache_write_tokens, u.cache_read_tokens) == (50, 20, 1000, 4000)
    assert u.total_input == 5050
    # Sonnet $3/$15 per MTok; cache writes 1.25x, reads 0.1x the input price
    assert turn.cost_usd == pytest.approx((50 + 1250 + 400) * 3e-6 + 20 * 15e-6)
    body = claude.requests[0]["body"]
    assert body["tools"] == TOOLS and body["system"] == SYSTEM and body["tool_choice"] == {"type": "auto"}
    # the answer goes back as a tool_result; the stand-in checks the pairing as the API does
    claude.turn([{"type": "text", "text": "done"}])
    msgs += [{"role": "assistant", "content": turn.content},
             {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "no rows",
                                           "is_error": True}]}]
    assert llm.chat(system=SYSTEM, messages=msgs, tools=TOOLS, max_tokens=100).text == "done"


def test_the_stand_in_refuses_an_unanswered_tool_use(claude):
    claude.turn([{"type": "text", "text": "never sent"}])
    msgs = [{"role": "user", "content": "hi"},
            {"role": "assistant", "content": [tool_use("logs_search", {}, id="toolu_9")]},
            {"role": "user", "content": "and?"}]
    with pytest.raises(LLMError, match="400"):
        _claude(claude).chat(system="s", messages=msgs, tools=TOOLS, max_tokens=10)


def test_the_stand_in_caches_a_repeated_prefix(claude):
    claude.responder = lambda body: "ok"
    llm = _claude(claude)
    msgs = [{"role": "user", "content": [{"type": "text", "text": "pack " * 400, "cache_control": {"type": "ephemeral"}}]}]
    first = llm.chat(system=SYSTEM, messages=msgs, tools=TOOLS, max_tokens=10)
    second = llm.chat(system=SYSTEM, messages=msgs, tools=TOOLS, max_tokens=10)
    assert first.usage.cache_write_tokens > 400 and first.usage.cache_read_tokens == 0
    assert second.usage.cache_read_tokens == first.usage.cache_write_tokens and second.usage.cache_write_tokens == 0


def test_openai_adapter_translates_tools_both_ways(gpt):
    gpt.reply("looking", tool_calls=[call("logs_search", {"service": "pricing"})],
              usage={"prompt_tokens": 900, "completion_tokens": 30, "total_tokens": 930,
                     "prompt_tokens_details": {"cached_tokens": 600}})
    llm = _gpt(gpt, model="gpt-4.1")
    msgs = [{"role": "user", "content": [{"type": "text", "text": "pack"}]}]
    turn = llm.chat(system=SYSTEM, messages=msgs, tools=TOOLS, tool_choice={"type": "tool", "name": "logs_search"},
                    max_tokens=200)
    assert turn.provider == "openai" and turn.stop_reason == "tool_use" and turn.text == "looking"
    (use,) = turn.tool_calls
    assert use["name"] == "logs_search" and use["input"] == {"service": "pricing"}
    assert (turn.usage.input_tokens, turn.usage.cache_read_tokens, turn.usage.output_tokens) == (300, 600, 30)
    body = gpt.requests[0]["body"]
    assert body["messages"][0] == {"role": "system", "content": "rules"}
    assert body["tools"][0] == {"type": "function", "function": {"name": "logs_search", "description": "logs",
                                                                 "parameters": TOOLS[0]["input_schema"]}}
    assert body["tool_choice"] == {"type": "function", "function": {"name": "logs_search"}}
    assert gpt.requests[0]["headers"]["authorization"] == f"Bearer {gpt.api_key}"
    # the tool result goes back as a role=tool message answering the call id (the stand-in checks the pairing)
    gpt.reply("done")
    msgs += [{"role": "assistant", "content": turn.content},
             {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use["id"], "content": "boom",
                                           "is_error": True}]}]
    assert llm.chat(system="rules", messages=msgs, tools=TOOLS, max_tokens=50).stop_reason == "end_turn"
    tool_msg = gpt.requests[1]["body"]["messages"][-1]
    assert tool_msg == {"role": "tool", "tool_call_id": use["id"], "content": "ERROR: boom"}


def test_openai_refusal_and_429_retry(gpt):
    gpt.fail(429, retry_after=2)
    gpt.reply(None, refusal="I can't help with that.")
    sleeps: list[float] = []
    turn = _gpt(gpt, sleeps).chat(system="s", messages=[{"role": "user", "content": "x"}], max_tokens=10)
    assert turn.stop_reason == "refusal" and sleeps == [2.0] and len(gpt.requests) == 2


def test_openai_bad_key_is_one_clear_error_without_the_key(gpt):
    llm = OpenAILLM(api_key="sk-wrong-key-123456", base_url=gpt.base_url)
    with pytest.raises(LLMError) as err:
        llm.chat(system="s", messages=[{"role": "user", "content": "x"}], max_tokens=10)
    assert err.value.status == 401 and "invalid_api_key" in str(err.value) and "sk-wrong" not in str(err.value)


def test_repeated_overload_falls_back_to_the_other_provider_and_sticks(claude, gpt):
    claude.fail(529, retry_after=0, count=3)
    gpt.reply("from gpt")
    gpt.reply("gpt again")
    now = [0.0]
    both = FallbackLLM(_claude(claude, attempts=3), _gpt(gpt), stick_s=60, clock=lambda: now[0])
    msgs = [{"role": "user", "content": "x"}]
    first = both.chat(system="s", messages=msgs, max_tokens=10)
    assert (first.provider, first.text) == ("openai", "from gpt")
    assert len(claude.requests) == 3 and both.switches[0]["status"] == 529
    assert both.chat(system="s", messages=msgs, max_tokens=10).text == "gpt again"
    assert len(claude.requests) == 3  # stuck to the fallback for stick_s
    now[0] = 61.0
    claude.reply("claude is back")
    assert both.chat(system="s", messages=msgs, max_tokens=10).provider == "anthropic"


def test_a_bad_request_does_not_fall_back(claude, gpt):
    claude.fail(400, message="bad")
    both = FallbackLLM(_claude(claude), _gpt(gpt))
    with pytest.raises(LLMError, match="400"):
        both.chat(system="s", messages=[{"role": "user", "content": "x"}], max_tokens=10)
    assert gpt.requests == []


def test_tiers_follow_settings_and_the_design_defaults():
    s = Settings(ANTHROPIC_API_KEY="k", PM_MODEL_DEEP="claude-opus-4-1")
    assert model_id(s, "fast") == "claude-haiku-4-5-20251001"
    assert model_id(s, "balanced") == "claude-sonnet-4-6"
    assert model_id(s, "deep") == "claude-opus-4-1"
    with pytest.raises(ValueError, match="unknown model tier"):
        model_id(s, "turbo")
    assert chat_models(Settings()) is None
    only_openai = chat_models(Settings(OPENAI_API_KEY="o", PM_OPENAI_MODEL_BALANCED="llama3.1"))
    assert only_openai is not None and only_openai("balanced").model == "llama3.1"
    both = chat_models(Settings(ANTHROPIC_API_KEY="a", OPENAI_API_KEY="o"))
    assert isinstance(both("fast"), FallbackLLM) and both("fast").model == "claude-haiku-4-5-20251001"


def test_turn_cost_prices_cache_reads_and_writes():
    from agents.llm import Usage

    assert turn_cost("claude-haiku-4-5", Usage(1_000_000, 0, 0, 0)) == pytest.approx(1.0)
    assert turn_cost("claude-haiku-4-5", Usage(0, 0, 1_000_000, 0)) == pytest.approx(0.1)
    assert turn_cost("claude-haiku-4-5", Usage(0, 0, 0, 1_000_000)) == pytest.approx(1.25)
