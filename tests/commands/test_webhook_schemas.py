"""The gates of typed intake, as pure functions: depth scan, text walk, per-source schemas."""

from __future__ import annotations

import json

import pytest

from commands.errors import PayloadError, TooManyAlerts
from commands.webhook_schemas import MAX_DEPTH, check_depth, check_strings, validate
from commands.webhooks import parse_json
from tests.commands.test_webhooks import alert_group_payload


def _nest(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def test_depth_is_counted_without_parsing_and_brackets_in_strings_do_not_count():
    check_depth(_nest(MAX_DEPTH))
    with pytest.raises(PayloadError) as info:
        check_depth(_nest(MAX_DEPTH + 1))
    assert info.value.field == "body"
    check_depth(json.dumps({"a": "[" * 10_000, "b": "{\\\"[[[[" * 100}).encode())  # text, not nesting
    with pytest.raises(PayloadError):
        check_depth(b'{"a": "x\\"", "b": ' + _nest(MAX_DEPTH) + b"}")  # escaped quote does not end the string early
    with pytest.raises(PayloadError):
        parse_json(b'{"a":' + _nest(100_000) + b"}")  # no RecursionError


def test_nul_and_lone_surrogates_are_named_where_they_are():
    for body, field in ((b'{"a": {"b": ["ok", "x\\u0000"]}}', "a.b[1]"), (b'{"\\ud800": 1}', "body"),
                        (b'{"t": "\\udc00"}', "t")):
        with pytest.raises(PayloadError) as info:
            parse_json(body)
        assert info.value.field == field
    assert parse_json('{"emoji": "\\ud83d\\ude00", "text": "caf\u00e9"}'.encode())["emoji"] == "\U0001f600"
    check_strings({"a": "\x00"}, b'{"a": "no escapes here"}')  # no \\u in the body: the walk is skipped


def test_nan_and_infinity_are_refused():
    for body in (b'{"a": NaN}', b'{"a": -Infinity}', b'{"a": 1e400}'):
        with pytest.raises(PayloadError):
            parse_json(body)


def test_real_alertmanager_and_grafana_shapes_pass():
    am = alert_group_payload()
    am["alerts"][0]["startsAt"] = "2026-12-06T10:00:00.123456789Z"  # Alertmanager writes nanoseconds
    validate("alertmanager", am, max_alerts=200)
    grafana = alert_group_payload()
    grafana.update({"orgId": 1, "state": "alerting", "title": "[FIRING:1]", "message": "m"})
    grafana["alerts"][0].update({"values": {"B": 1.5}, "valueString": "[ var='B' value=1.5 ]", "silenceURL": "u",
                                 "dashboardURL": "", "panelURL": "", "imageURL": "", "annotations": None})
    validate("grafana", grafana, max_alerts=200)


def test_the_alert_cap_is_checked_before_the_schema():
    big = alert_group_payload(fingerprints=tuple(str(i) for i in range(201)))
    big["alerts"][200]["labels"] = "junk"  # never looked at: the count refuses it first
    with pytest.raises(TooManyAlerts) as info:
        validate("alertmanager", big, max_alerts=200)
    assert (info.value.count, info.value.cap, info.value.field) == (201, 200, "alerts")
