"""The slack provider through slack_sdk's WebClient against the stand-in Slack Web API (tests/fakes)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.http.server import free_port
from sandbox.errors import ToolArgumentError
from sandbox.world import parse_ts
from sources.base import iso
from sources.errors import SourceError
from sources.registry import build_provider
from sources.slack import SlackProvider
from store.errors import ConfigError
from store.sources_file import parse_sources
from tests.fakes.slack_server import FakeSlack
from tests.sources.canned_http import CannedServer

T = parse_ts("2026-02-15T11:00:00Z")
BOT_TOKEN = "xoxb-test"


def ts(offset_s: float, n: int = 0) -> str:
    return f"{T + offset_s:.0f}.{n:06d}"


def at(offset_s: float) -> str:
    return iso(T + offset_s)


@pytest.fixture()
def slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSlack]:
    fake = FakeSlack()
    fake.start()
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_API_URL", fake.api_url)
    fake.add_channel("C0INCIDNT", "incidents")
    fake.add_channel("C0PAYMNTS", "payments", is_private=True)
    fake.add_channel("C0RANDOM1", "random")
    fake.users["U1"] = {"id": "U1", "name": "alice", "real_name": "Alice Doe", "profile": {"display_name": "alice"}}
    fake.users["U2"] = {"id": "U2", "name": "bob", "real_name": "Bob Roe", "profile": {"display_name": ""}}
    fake.add_message("C0INCIDNT", "", ts=ts(30), user="U2", subtype="channel_join")
    fake.add_message("C0INCIDNT", "Checkout 502s since 11:00?", ts=ts(60), user="U1", thread_ts=ts(60), reply_count=2)
    fake.add_message("C0INCIDNT", "", ts=ts(90), user=None, bot_id="B1", username="alertbot",
                     attachments=[{"fallback": "[FIRING:1] CheckoutErrors checkout critical"}])
    fake.add_message("C0INCIDNT", "payments v2.3 went out at 10:58, rolling back", ts=ts(120), user="U2",
                     thread_ts=ts(60))
    fake.add_message("C0INCIDNT", "rollback done, 502s gone", ts=ts(900), user="U1", thread_ts=ts(60))
    fake.add_message("C0PAYMNTS", "deploying payments v2.3", ts=ts(-120), user="U2")
    fake.add_message("C0PAYMNTS", "502 from card processor?", ts=ts(100), user="U9")
    fake.add_message("C0RANDOM1", "502 lunch", ts=ts(70), user="U1")
    try:
        yield fake
    finally:
        fake.stop()


def provider(**settings: Any) -> SlackProvider:
    settings.setdefault("channels", ["#incidents", "C0PAYMNTS"])
    doc = parse_sources({"chat": [{"kind": "slack", **settings}]}, base_dir=Path.cwd())
    built = build_provider(doc.entries[0], doc)
    assert isinstance(built, SlackProvider)
    return built


WINDOW = {"start": at(-3600), "end": at(3600)}
ALL = [
    {"ts": at(-120), "channel": "#payments", "user": "Bob Roe", "text": "deploying payments v2.3"},
    {"ts": at(60), "channel": "#incidents", "user": "alice", "text": "Checkout 502s since 11:00?"},
    {"ts": at(90), "channel": "#incidents", "user": "alertbot", "text": "[FIRING:1] CheckoutErrors checkout critical"},
    {"ts": at(100), "channel": "#payments", "user": "U9", "text": "502 from card processor?"},
    {"ts": at(120), "channel": "#incidents", "user": "Bob Roe", "text": "payments v2.3 went out at 10:58, rolling back",
     "thread_ts": at(60)},
    {"ts": at(900), "channel": "#incidents", "user": "alice", "text": "rollback done, 502s gone", "thread_ts": at(60)},
]


def test_reads_history_and_threads_of_the_configured_channels(slack: FakeSlack) -> None:
    assert provider().call("chat.search", **WINDOW) == {"messages": ALL}
    assert slack.count_calls("conversations.list") == 1
    history = [a for m, a in slack.calls if m == "conversations.history"]
    assert [a["channel"] for a in history] == ["C0INCIDNT", "C0PAYMNTS"]
    assert history[0]["oldest"] == f"{T - 3600:.6f}" and history[0]["latest"] == f"{T + 3600:.6f}"


def test_window_text_and_channel_filters(slack: FakeSlack) -> None:
    p = provider()
    assert p.call("chat.search", start=at(60), end=at(120))["messages"] == ALL[1:4]
    assert p.call("chat.search", text="502", **WINDOW)["messages"] == [ALL[1], ALL[3], ALL[5]]
    assert p.call("chat.search", text="ROLLING BACK", **WINDOW)["messages"] == [ALL[4]]
    for name in ("#payments", "payments", "C0PAYMNTS"):
        assert p.call("chat.search", channel=name, **WINDOW)["messages"] == [ALL[0], ALL[3]]
    assert p.call("chat.search", channel="#random", **WINDOW) == {"messages": []}
    assert p.call("chat.search", start=at(10), end=at(10)) == {"messages": []}
    with pytest.raises(ToolArgumentError, match="not an ISO-8601 time"):
        p.call("chat.search", start="an hour ago")


def test_default_window_is_the_lookback_up_to_now(slack: FakeSlack) -> None:
    now = time.time()
    slack.add_message("C0INCIDNT", "fresh", ts=f"{now - 60:.6f}", user="U1")
    slack.add_message("C0INCIDNT", "stale", ts=f"{now - 4 * 3600:.6f}", user="U1")
    assert [m["text"] for m in provider(replies=False).call("chat.search")["messages"]] == ["fresh"]


def test_pages_by_cursor_and_caps_with_a_truncated_note(slack: FakeSlack) -> None:
    for n in range(450):
        slack.add_message("C0RANDOM1", f"noise {n}", ts=ts(1000 + n), user="U1")
    got = provider(channels=["#random"]).call("chat.search", **WINDOW)
    assert len(got["messages"]) == 451 and "truncated" not in got
    assert slack.count_calls("conversations.history") == 3
    got = provider(channels=["#random"], max_messages=100).call("chat.search", **WINDOW)
    assert [m["text"] for m in got["messages"]] == [f"noise {n}" for n in range(350, 450)]
    assert got["truncated"] == ("#random: read the newest 100 messages of the window (raise chat[0].max_messages "
                                "or narrow the window)")
    # The cap holds for thread replies too.
    got = provider(channels=["#incidents"], max_messages=4).call("chat.search", **WINDOW)
    assert [m["ts"] for m in got["messages"]] == [at(60), at(90), at(120)] and "truncated" in got


def test_one_time_budget_per_call(slack: FakeSlack) -> None:
    for n in range(450):
        slack.add_message("C0RANDOM1", f"noise {n}", ts=ts(1000 + n), user="U1")
    slack.delays["conversations.history"] = 0.6
    started = time.monotonic()
    got = provider(channels=["#random", "#incidents"], timeout_s=1.0).call("chat.search", **WINDOW)
    assert time.monotonic() - started < 3.0
    # Pages of 200, newest first: one or two of the three fit in the budget (two unless the machine is busy).
    assert len(got["messages"]) in (200, 400)
    assert [m["text"] for m in got["messages"]][-1] == "noise 449"
    assert got["truncated"] == (
        "#random: stopped reading after 1 s (the call's time budget); raise chat[0].timeout_s or narrow the "
        "window; #incidents: not read: stopped reading after 1 s (the call's time budget); raise "
        "chat[0].timeout_s or narrow the window")


def test_a_channel_the_bot_is_not_in_is_named_while_others_answer(slack: FakeSlack) -> None:
    slack.add_channel("C0SECRET1", "secret", is_member=False)
    got = provider(channels=["#incidents", "#secret", "#nope"]).call("chat.search", text="502", **WINDOW)
    assert got["messages"] == [ALL[1], ALL[5]]
    assert got["missing_sources"] == [
        f"slack {slack.api_url} (chat.search failed: cannot read #nope: no such channel visible to the bot; check "
        "chat[0].channels (invite the bot to private channels))",
        f"slack {slack.api_url} (chat.search failed: cannot read #secret: the bot is not in it; invite the bot to "
        "#secret (/invite @bot))",
    ]
    with pytest.raises(SourceError, match="invite the bot to #secret"):
        provider(channels=["#secret"]).call("chat.search", **WINDOW)
    with pytest.raises(SourceError, match="invite the bot to #secret"):
        provider(channels=["#incidents", "#secret"]).check()


def test_a_bot_without_private_channel_scopes_still_reads_public_ones(slack: FakeSlack) -> None:
    slack.scopes = {"channels:read", "channels:history", "users:read"}
    got = provider().call("chat.search", text="502", **WINDOW)
    assert got["messages"] == [ALL[1], ALL[5]]
    assert got["missing_sources"] == [f"slack {slack.api_url} (chat.search failed: cannot read C0PAYMNTS: the token "
                                      "lacks groups:read (needed for private channels); add it to the app)"]
    slack.scopes = {"users:read"}
    with pytest.raises(SourceError, match="conversations.list: the token lacks the scope channels:read; add it"):
        provider().call("chat.search", **WINDOW)


def test_rate_limits_are_waited_out_once_when_short(slack: FakeSlack) -> None:
    slack.rate_limit("conversations.history", 1, retry_after=1)
    started = time.monotonic()
    assert provider().call("chat.search", **WINDOW) == {"messages": ALL}
    assert time.monotonic() - started >= 1.0
    slack.rate_limit("conversations.history", 1, retry_after=30)
    got = provider().call("chat.search", **WINDOW)
    assert got["messages"] == [ALL[0], ALL[3]]
    assert got["missing_sources"] == [f"slack {slack.api_url} (chat.search failed: cannot read #incidents: rate "
                                      "limited by Slack; retry after 30 s)"]


def test_refused_token_says_which_to_check(slack: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> None:
    slack.valid_tokens = {"xoxb-good"}
    with pytest.raises(SourceError, match="Slack refused the token \\(invalid_auth\\); check SLACK_BOT_TOKEN$"):
        provider().call("chat.search", **WINDOW)
    monkeypatch.setenv("OTHER", "xoxb-good")
    assert provider(token={"env": "OTHER"}).call("chat.search", **WINDOW) == {"messages": ALL}
    monkeypatch.setenv("OTHER", "xoxb-bad")
    with pytest.raises(SourceError, match="check the token of chat\\[0\\].token$"):
        provider(token={"env": "OTHER"}).check()


def test_search_messages_needs_a_user_token(slack: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SourceError, match="search.messages needs a user token \\(xoxp-\\), not a bot token"):
        provider(use_search=True).call("chat.search", text="502", **WINDOW)
    monkeypatch.setenv("SLACK_USER_TOKEN", "xoxp-user")
    p = provider(use_search=True, token={"env": "SLACK_USER_TOKEN"})
    assert p.call("chat.search", text="502", **WINDOW) == {"messages": [ALL[1], ALL[3], ALL[5]]}
    (query,) = [a["query"] for m, a in slack.calls if m == "search.messages"][-1:]
    assert query == '"502" after:2026-02-14 before:2026-02-16'
    assert p.call("chat.search", channel="#payments", **WINDOW) == {"messages": [ALL[0], ALL[3]]}
    wide = provider(use_search=True, token={"env": "SLACK_USER_TOKEN"}, channels=[])
    assert [m["channel"] for m in wide.call("chat.search", text="502", **WINDOW)["messages"]] == [
        "#incidents", "#random", "#payments", "#incidents"]
    capped = provider(use_search=True, token={"env": "SLACK_USER_TOKEN"}, channels=[], max_messages=1)
    for n in range(150):
        slack.add_message("C0RANDOM1", f"502 again {n}", ts=ts(2000 + n), user="U1")
    got = capped.call("chat.search", text="502", **WINDOW)
    assert len(got["messages"]) == 100 and got["truncated"].startswith("search.messages: read the newest 100")


def test_settings_are_checked(slack: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="chat\\[0\\].channels: required"):
        provider(channels=[])
    with pytest.raises(ConfigError, match="chat\\[0\\].use_search: expected true or false"):
        provider(use_search="yes")
    monkeypatch.delenv("SLACK_BOT_TOKEN")
    with pytest.raises(ConfigError, match="no Slack token; export SLACK_BOT_TOKEN"):
        provider()


def test_check_names_the_team_and_channels(slack: FakeSlack) -> None:
    assert provider().check() == "Slack team Fake as pm; reads #incidents, #payments"


def test_unreachable_garbage_500_and_slow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    url = f"http://127.0.0.1:{free_port()}/api/"
    with pytest.raises(SourceError, match=f"^slack {url}: cannot connect \\(.*\\); check SLACK_API_URL / chat\\[0\\].url$"):
        provider(url=url).call("chat.search", **WINDOW)
    with CannedServer(200, b"<html>proxy login</html>", "text/html") as srv:
        with pytest.raises(SourceError, match="conversations.list answered something that is not JSON \\(HTTP 200\\)"):
            provider(url=srv.url + "/api/").call("chat.search", **WINDOW)
    with CannedServer(500, b'{"ok": false, "error": "fatal_error"}') as srv:
        with pytest.raises(SourceError, match="conversations.list: Slack answered HTTP 500 \\(fatal_error\\); try "
                                              "again later"):
            provider(url=srv.url + "/api/").call("chat.search", **WINDOW)
    with CannedServer(200, b'{"ok": true, "channels": []}', delay_s=2.0) as srv:
        started = time.monotonic()
        with pytest.raises(SourceError, match="conversations.list timed out after 0.3 s; raise chat\\[0\\].timeout_s"):
            provider(url=srv.url + "/api/", timeout_s=0.3).call("chat.search", **WINDOW)
        assert time.monotonic() - started < 1.9  # the stand-in answers after 2 s
