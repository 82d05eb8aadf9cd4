"""POST an API caller's ``callback_url`` when its investigation ends (the outbox sink ``callback``).

The outbox gives this sink only the end of an investigation (``store.outbox.CALLBACK_KINDS``: the
report, a failure, a cancellation), one delivery per event, retried by the drain with exponential
backoff (2 s, 4 s, ... up to an hour; dead-lettered after PM_OUTBOX_DEAD_AFTER_S) until the
receiver answers 2xx. What goes out::

    POST <callback_url>
    Content-Type: application/json
    User-Agent: production-master-callback/1
    X-PM-Delivery: <investigation id>:<event seq>     (the same on every retry: receivers dedupe on it)
    X-PM-Event: report | failed | cancelled
    X-PM-Timestamp: <unix seconds>                    (with a secret)
    X-PM-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>   (with a secret)

    {"investigation_id", "event", "status", "verdict", "confidence", "root_cause", "error",
     "status_url", "report_url", "report"}

Exactly once: after a 2xx the publication row remembers the delivery, and no later event of the
same investigation is posted; the one window left (the process dies between the receiver's 2xx and
our commit) re-sends the same ``X-PM-Delivery``. The SSRF guard runs again right before each POST
(DNS may have changed since the request was accepted), and redirects are not followed (a 3xx to an
internal address would step around the guard). Outside text in the report is data: it travels as
JSON strings, never as headers.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import httpx

from publishers.errors import RetryLater

USER_AGENT = "production-master-callback/1"
#: A receiver that is rate limiting us without saying for how long is asked again after this.
DEFAULT_RETRY_AFTER_S = 30.0


class CallbackRefused(Exception):
    """The receiver did not answer 2xx, could not be reached, or the URL failed the SSRF guard."""


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-PM-Signature`` value: ``sha256=`` + hex HMAC-SHA256 of ``"<timestamp>.<body>"``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class CallbackPublisher:
    """The ``callback`` sink.

    Args:
        guard: ``guard(url)`` raises when the URL may not be called (the SSRF check of
            ``commands.callbacks``, bound to PM_CALLBACK_ALLOW_PRIVATE by the wiring).
        secret: PM_CALLBACK_SECRET; when set every POST is signed.
        timeout_s: connect + read timeout of one POST.
        status_url: investigation id -> its status path; report_link: -> its report page (or None).
        client: an ``httpx.Client`` (tests pass their own transport); default a new one.
    """

    lanes = 4  # the drain may POST several investigations' callbacks side by side

    def __init__(self, *, guard: Callable[[str], object], secret: str | None = None, timeout_s: float = 10.0,
                 status_url: Callable[[str], str] | None = None, report_link: Callable[[str], str] | None = None,
                 client: httpx.Client | None = None) -> None:
        self.guard = guard
        self.secret = secret or None
        self.status_url = status_url
        self.report_link = report_link
        self.client = client or httpx.Client(timeout=timeout_s, follow_redirects=False,
                                             headers={"User-Agent": USER_AGENT})

    def target(self, investigation: dict[str, Any]) -> str:
        return str((investigation.get("origin") or {}).get("callback_url") or "default")

    def body(self, event: dict[str, Any], investigation: dict[str, Any]) -> dict[str, Any]:
        """The JSON document posted for ``event``."""
        payload = event.get("payload") or {}
        report = payload.get("report") if event["kind"] == "report" else None
        inv_id = investigation["id"]
        error = None if event["kind"] == "report" else (
            payload.get("error") or payload.get("reason") or investigation.get("error"))
        status = {"report": "COMPLETE", "failed": "FAILED", "cancelled": "CANCELLED"}.get(event["kind"], "")
        return {
            "investigation_id": inv_id,
            "event": event["kind"],
            "status": status,
            "verdict": (report or {}).get("verdict"),
            "confidence": (report or {}).get("confidence"),
            "root_cause": (report or {}).get("root_cause"),
            "error": error,
            "status_url": self.status_url(inv_id) if self.status_url else None,
            "report_url": self.report_link(inv_id) if self.report_link else None,
            "report": report,
        }

    def deliver(self, event: dict[str, Any], investigation: dict[str, Any], publication: dict[str, Any] | None
                ) -> dict[str, Any]:
        """POST the end of the investigation once; returns what the publication row keeps.

        Raises:
            RetryLater: the receiver answered 429 or 503 (with its Retry-After).
            CallbackRefused: any other non-2xx, a transport error, or the SSRF guard said no
                (the drain backs off and tries again; dead-letters after hours).
        """
        url = (investigation.get("origin") or {}).get("callback_url")
        if not url:
            return {}
        done = (publication or {}).get("delivered")
        if done:  # the caller has heard how it ended: never a second POST
            return {"delivered": done}
        try:
            self.guard(url)
        except Exception as exc:  # noqa: BLE001 - the guard's own error (BadRequest) says why
            raise CallbackRefused(f"callback_url refused at send time: {exc}") from None
        raw = json.dumps(self.body(event, investigation), separators=(",", ":"), default=str).encode()
        delivery = f"{investigation['id']}:{event['seq']}"
        headers = {"Content-Type": "application/json", "X-PM-Delivery": delivery, "X-PM-Event": str(event["kind"])}
        if self.secret:
            stamp = str(int(time.time()))
            headers["X-PM-Timestamp"] = stamp
            headers["X-PM-Signature"] = sign(self.secret, stamp, raw)
        try:
            resp = self.client.post(url, content=raw, headers=headers)
        except httpx.HTTPError as exc:
            raise CallbackRefused(f"POST {_safe(url)} failed: {type(exc).__name__}: {exc}") from None
        if resp.status_code in (429, 503):
            raise RetryLater(_retry_after(resp.headers.get("retry-after")), f"callback answered {resp.status_code}")
        if not 200 <= resp.status_code < 300:
            raise CallbackRefused(f"POST {_safe(url)} answered {resp.status_code}")
        return {"delivered": delivery, "status": resp.status_code}


def _retry_after(value: str | None) -> float:
    try:
        return min(max(float(value or ""), 1.0), 3600.0)
    except ValueError:
        return DEFAULT_RETRY_AFTER_S


def _safe(url: str) -> str:
    """The URL without its query (which may carry the receiver's own token), for logs and errors."""
    return url.split("?", 1)[0][:200]
