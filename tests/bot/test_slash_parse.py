"""Reading `/investigate <text>`: an unknown mode after a key or id is a usage error (issue #12 item 4),
not free text to investigate."""

from __future__ import annotations

import pytest

from bot.slack.normalise import parse_slash
from commands.errors import BadRequest


@pytest.mark.parametrize("text, trigger, mode", [
    ("SCHED-45895 deep", {"ticket": "SCHED-45895"}, "deep"),
    ("pd-7053", {"alert": "pd-7053"}, "balanced"),
    ("pd-7053 FAST", {"alert": "pd-7053"}, "fast"),
    ("checkout is slow", {"text": "checkout is slow"}, "balanced"),
    ("checkout slow deep", {"text": "checkout slow"}, "deep"),
    ("payments down", {"text": "payments down"}, "balanced"),
])
def test_starts(text, trigger, mode):
    cmd = parse_slash(text)
    assert (cmd.kind, cmd.trigger, cmd.mode) == ("start", trigger, mode)


@pytest.mark.parametrize("text", ["pd-7053 turbo", "SCHED-45895 quick", "am-2d06975d slowly"])
def test_an_unknown_mode_after_a_key_is_a_usage_error(text):
    with pytest.raises(BadRequest, match="unknown mode .*; use fast, balanced or deep"):
        parse_slash(text)
