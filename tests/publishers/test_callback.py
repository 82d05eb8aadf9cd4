"""The callback publisher against a local HTTP receiver: body, signature, retries, the guard, once only."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from commands.callbacks import check_callback_url
from commands.errors import BadRequest
from publishers.callback import CallbackPublisher, CallbackRefused, sign
from publishers.errors import RetryLater
from tests.fakes.callback_receiver import CallbackReceiver

INV = {"id": "inv-1", "status": "COMPLETE", "error": None}
REPORT = {"verdict": "CONFIRMED", "confidence": 91, "root_cause": {"service": "payments", "summary": "<b>x</b>"}}


def _inv(url: str) -> dict:
    return {**INV, "origin": {"kind": "api", "callback_url": url}}


def _event(kind: str = "report", seq: int = 9) -> dict:
    payload = {"report": REPORT} if kind == "report" else {"error": "EVIDENCE failed: boom"}
    return {"id": 1, "seq": seq, "kind": kind, "payload": payload, "attempts": 1}


def _publisher(**kw) -> CallbackPublisher:
    return CallbackPublisher(guard=lambda url: check_callback_url(url, allow_private=True), **kw)


def test_the_report_is_posted_signed_with_the_delivery_id():
    with CallbackReceiver() as rx:
        pub = _publisher(secret="s3cret", status_url=lambda i: f"/api/v1/investigations/{i}",
                         report_link=lambda i: f"https://pm.example/investigations/{i}")
        ref = pub.deliver(_event(), _inv(rx.url), None)
        (got,) = rx.received
    assert ref == {"delivered": "inv-1:9", "status": 200}
    assert got["path"] == "/hooks/pm?token=abc"
    h = got["headers"]
    assert h["content-type"] == "application/json" and h["x-pm-delivery"] == "inv-1:9" and h["x-pm-event"] == "report"
    # the receiver's check: HMAC-SHA256(secret, "<timestamp>.<raw body>")
    expected = hmac.new(b"s3cret", h["x-pm-timestamp"].encode() + b"." + got["raw"], hashlib.sha256).hexdigest()
    assert h["x-pm-signature"] == f"sha256={expected}" == sign("s3cret", h["x-pm-timestamp"], got["raw"])
    body = got["json"]
    assert body["investigation_id"] == "inv-1" and body["status"] == "COMPLETE" and body["verdict"] == "CONFIRMED"
    assert body["report"] == REPORT and body["error"] is None
    assert body["status_url"] == "/api/v1/investigations/inv-1"
    assert body["report_url"] == "https://pm.example/investigations/inv-1"


def test_without_a_secret_nothing_is_signed_and_a_failure_says_why():
    with CallbackReceiver() as rx:
        _publisher().deliver(_event("failed"), _inv(rx.url), None)
        (got,) = rx.received
    assert "x-pm-signature" not in got["headers"] and "x-pm-timestamp" not in got["headers"]
    assert got["json"]["status"] == "FAILED" and got["json"]["error"] == "EVIDENCE failed: boom"
    assert got["json"]["report"] is None


def test_a_delivered_investigation_is_never_posted_again():
    with CallbackReceiver() as rx:
        ref = _publisher().deliver(_event("cancelled", seq=12), _inv(rx.url), {"delivered": "inv-1:9"})
        assert rx.received == []
    assert ref == {"delivered": "inv-1:9"}


@pytest.mark.parametrize(("status", "raised"), [(500, CallbackRefused), (404, CallbackRefused),
                                                (302, CallbackRefused), (429, RetryLater), (503, RetryLater)])
def test_a_receiver_that_does_not_answer_2xx_is_tried_again(status, raised):
    with CallbackReceiver([status], headers={"Retry-After": "7", "Location": "http://169.254.169.254/"}) as rx:
        with pytest.raises(raised) as err:
            _publisher().deliver(_event(), _inv(rx.url), None)
        assert len(rx.received) == 1  # a 302 is not followed
    if raised is RetryLater:
        assert err.value.retry_after_s == 7.0
    assert "token=abc" not in str(err.value)  # the receiver's own token stays out of logs


def test_the_guard_runs_again_at_send_time():
    calls = []

    def guard(url: str) -> None:
        calls.append(url)
        raise BadRequest("callback_url resolves to 10.0.0.7, a private address")

    with CallbackReceiver() as rx:
        with pytest.raises(CallbackRefused, match="10.0.0.7"):
            CallbackPublisher(guard=guard).deliver(_event(), _inv(rx.url), None)
        assert rx.received == [] and calls == [rx.url]


def test_an_unreachable_receiver_is_a_retryable_refusal():
    with CallbackReceiver() as rx:
        url = rx.url
    with pytest.raises(CallbackRefused, match="failed"):
        _publisher(timeout_s=2).deliver(_event(), _inv(url), None)


def test_outside_text_travels_as_json_data():
    evil = {"verdict": "LIKELY", "root_cause": {"summary": 'x"}\r\nX-Injected: 1'}}
    with CallbackReceiver() as rx:
        _publisher().deliver({**_event(), "payload": {"report": evil}}, _inv(rx.url), None)
        (got,) = rx.received
    assert "x-injected" not in got["headers"]
    assert json.loads(got["raw"])["report"] == evil
