"""app_manifest.yaml is the source of truth: every command/event in it has a listener, and back."""

from __future__ import annotations

import importlib
from pathlib import Path

import yaml
from slack_bolt import App, BoltRequest, BoltResponse
from slack_sdk import WebClient

from bot.slack.app import LISTENERS

ROOT = Path(__file__).resolve().parents[2]


def _manifest() -> dict:
    return yaml.safe_load((ROOT / "app_manifest.yaml").read_text())


def _app() -> App:
    app = App(client=WebClient(token="xoxb-x", base_url="http://127.0.0.1:9/api/"), token_verification_enabled=False)
    for name in LISTENERS:
        importlib.import_module(name).register(app)
    return app


def _matched(app: App, body: dict) -> list[str]:
    # Ask Bolt's own matchers which listeners would run for this body.
    req = BoltRequest(body=body, mode="socket_mode")
    return [lst.ack_function.__module__ for lst in app._listeners
            if lst.matches(req=req, resp=BoltResponse(status=200))]


def test_every_manifest_command_and_event_reaches_a_listener() -> None:
    manifest, app = _manifest(), _app()
    for cmd in manifest["features"]["slash_commands"]:
        body = {"command": cmd["command"], "text": "", "trigger_id": "t", "user_id": "U1", "channel_id": "C1"}
        assert _matched(app, body), f"no listener for {cmd['command']}"
    for event in manifest["settings"]["event_subscriptions"]["bot_events"]:
        kind = event.split(".")[0]  # message.channels / message.groups arrive as "message"
        body = {"type": "event_callback", "event_id": "Ev1", "team_id": "T1",
                "event": {"type": kind, "channel": "C1", "ts": "1.0", "user": "U1", "text": "x"}}
        assert _matched(app, body), f"no listener for event {event}"


def test_every_listener_is_declared_in_the_manifest() -> None:
    manifest = _manifest()
    commands = {c["command"] for c in manifest["features"]["slash_commands"]}
    events = {e.split(".")[0] for e in manifest["settings"]["event_subscriptions"]["bot_events"]}
    for name in LISTENERS:
        kind, *what = importlib.import_module(name).HANDLES
        if kind == "command":
            assert set(what) <= commands, f"{name} handles {what} but the manifest lacks it"
        elif kind == "event":
            assert set(what) <= events, f"{name} handles {what} but the manifest does not subscribe to it"
        else:  # buttons and the modal need interactivity
            assert kind in ("action", "view")
            assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert manifest["settings"]["socket_mode_enabled"] is True


def test_manifest_asks_for_the_scopes_the_bot_uses() -> None:
    scopes = set(_manifest()["oauth_config"]["scopes"]["bot"])
    assert {"commands", "chat:write", "reactions:read", "channels:history", "groups:history", "files:write",
            "app_mentions:read"} <= scopes
