"""Looking a typed ticket key / alert id up before anything is recorded (pipeline.tools.missing_trigger),
through the real MCP gateway on the sandbox servers of the shared world example-2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import TriggerNotFound
from pipeline.tools import missing_trigger, needs_lookup, open_tools
from store.config import load_settings
from tests.paths import SHARED

WORLD = SHARED / "worlds" / "example-2"


@pytest.mark.parametrize(("trigger", "origin", "looked_up"), [
    ({"ticket": "PAY-1"}, {"kind": "slack"}, True),
    ({"ticket": "PAY-1"}, {"kind": "api"}, True),
    ({"ticket": "PAY-1"}, {"kind": "jira"}, False),            # Jira's own webhook: Jira just sent it
    ({"alert": "pd-1"}, {"kind": "slack"}, True),
    ({"alert": "pd-1", "ts": "not a time"}, {"kind": "webhook"}, True),
    ({"alert": "pd-1", "ts": "2026-10-02T16:15:00Z"}, {"kind": "webhook"}, False),  # the alert is its own record
    ({"text": "checkout is slow"}, {"kind": "slack"}, False),
])
def test_only_typed_keys_and_undated_alerts_are_looked_up(trigger: dict[str, Any], origin: dict[str, Any],
                                                          looked_up: bool) -> None:
    assert needs_lookup(trigger, origin) is looked_up


def _inv(trigger: dict[str, Any]) -> dict[str, Any]:
    return {"id": "(not recorded)", "trigger": trigger, "origin": {"kind": "slack"}, "sources": {"world": str(WORLD)}}


def test_an_unknown_key_is_found_missing_and_a_known_one_is_not(tmp_path: Path) -> None:
    settings = load_settings(PM_HOME=str(tmp_path))
    opened: list[Any] = []

    def factory(inv: dict[str, Any]) -> Any:
        opened.append(open_tools(inv, settings))
        return opened[-1]

    gone = missing_trigger(factory, _inv({"ticket": "NOPE-99999"}))
    assert isinstance(gone, TriggerNotFound)
    assert "no ticket NOPE-99999" in str(gone) and "nothing was investigated" in str(gone)
    assert isinstance(missing_trigger(factory, _inv({"alert": "pd-0000"})), TriggerNotFound)
    assert missing_trigger(factory, _inv({"ticket": "PAY-44706"})) is None
    assert missing_trigger(factory, _inv({"text": "NOPE-99999"})) is None
    assert len(opened) == 3  # free text opens no tools


def test_sources_that_cannot_answer_let_the_request_through() -> None:
    def broken(inv: dict[str, Any]) -> Any:
        raise RuntimeError("no sources configured")

    class Failing:
        closed = False

        def call(self, capability: str, **args: Any) -> dict[str, Any]:
            raise TimeoutError("the ticket source timed out")

        def close(self) -> None:
            Failing.closed = True

    assert missing_trigger(broken, _inv({"ticket": "NOPE-1"})) is None
    assert missing_trigger(lambda inv: Failing(), _inv({"ticket": "NOPE-1"})) is None
    assert Failing.closed
