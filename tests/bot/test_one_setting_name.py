"""One name for each setting across docs and code (issue #12 item 9): the domain → channel map is
PM_DOMAIN_CHANNELS for the webhooks and the Slack bot alike, in either spelling."""

from __future__ import annotations

import pytest

from bot.http.settings import load_http_settings
from bot.slack.settings import SlackSettings
from store.errors import ConfigError


@pytest.mark.parametrize("value", ['{"payments": "C0PAY", "bookings": "C0BOOK"}', "payments=C0PAY, bookings=C0BOOK"])
def test_the_webhooks_and_the_bot_read_one_variable_in_either_spelling(monkeypatch, value):
    monkeypatch.setenv("PM_DOMAIN_CHANNELS", value)
    monkeypatch.delenv("PM_SLACK_DOMAIN_CHANNELS", raising=False)
    want = {"payments": "C0PAY", "bookings": "C0BOOK"}
    assert load_http_settings().mapping("domain_channels") == want
    assert SlackSettings().domain_channels == want


def test_the_old_slack_name_is_still_read_and_a_bad_pair_is_named(monkeypatch):
    monkeypatch.delenv("PM_DOMAIN_CHANNELS", raising=False)
    monkeypatch.setenv("PM_SLACK_DOMAIN_CHANNELS", "x=C9")
    assert load_http_settings().mapping("domain_channels") == {"x": "C9"} == SlackSettings().domain_channels
    monkeypatch.setenv("PM_DOMAIN_CHANNELS", "payments")
    with pytest.raises(ConfigError, match="PM_DOMAIN_CHANNELS.*domain=channel"):
        load_http_settings()


def test_the_docs_name_one_variable():
    from tests.paths import ROOT

    for doc in ("docs/slack.md", "docs/webhooks.md"):
        text = (ROOT / doc).read_text()
        assert "PM_DOMAIN_CHANNELS" in text
        assert "`PM_SLACK_DOMAIN_CHANNELS` |" not in text  # no longer documented as a setting of its own
