"""Verify that a webhook delivery really comes from its sender.

Three schemes, each checked in constant time (``hmac.compare_digest``):

* Jira Cloud: ``X-Hub-Signature: sha256=<hex>``, HMAC-SHA256 of the raw body
  keyed with the webhook secret (Atlassian, "Webhooks: secure admin webhooks").
* PagerDuty v3: ``X-PagerDuty-Signature: v1=<hex>[,v1=<hex>...]``, HMAC-SHA256
  of the raw body keyed with the subscription secret; several signatures are
  sent while a secret is being rotated and any one may match (PagerDuty,
  "Verifying Signatures").
* Bearer tokens (Grafana, Alertmanager, deploy hooks): ``Authorization:
  Bearer <token>`` where the token is one of ``API_KEYS`` (comma-separated).
"""

from __future__ import annotations

import hashlib
import hmac


class SignatureError(Exception):
    """A delivery is unsigned or its signature/token does not match (answer 401)."""


def sign(body: bytes, secret: str) -> str:
    """Return the lowercase hex HMAC-SHA256 of ``body`` keyed with ``secret``."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_jira(body: bytes, header: str | None, secret: str) -> None:
    """Check a Jira Cloud ``X-Hub-Signature`` header.

    Args:
        body: the raw request body, exactly as received.
        header: the ``X-Hub-Signature`` value (``sha256=<hex>``), or None when absent.
        secret: JIRA_WEBHOOK_SECRET.

    Raises:
        SignatureError: header missing, not ``sha256=``, or not matching.
    """
    if not header:
        raise SignatureError("missing X-Hub-Signature; set the webhook secret in Jira to JIRA_WEBHOOK_SECRET")
    method, _, given = header.strip().partition("=")
    if method.lower() != "sha256" or not given:
        raise SignatureError("X-Hub-Signature must be 'sha256=<hex>'; configure an HMAC-SHA256 secret in Jira")
    if not hmac.compare_digest(sign(body, secret), given.strip().lower()):
        raise SignatureError("X-Hub-Signature does not match; check JIRA_WEBHOOK_SECRET equals Jira's secret")


def verify_pagerduty(body: bytes, header: str | None, secret: str) -> None:
    """Check a PagerDuty v3 ``X-PagerDuty-Signature`` header (any listed v1 signature may match).

    Args:
        body: the raw request body.
        header: the header value, e.g. ``v1=abc,v1=def``; None when absent.
        secret: PAGERDUTY_WEBHOOK_SECRET.

    Raises:
        SignatureError: header missing, no v1 signature, or none matching.
    """
    if not header:
        raise SignatureError(
            "missing X-PagerDuty-Signature; use a v3 webhook subscription and set PAGERDUTY_WEBHOOK_SECRET"
        )
    expected = sign(body, secret)
    candidates = [part.strip() for part in header.split(",")]
    v1 = [c[3:].lower() for c in candidates if c.startswith("v1=")]
    if not v1:
        raise SignatureError("X-PagerDuty-Signature has no 'v1=<hex>' signature; use a v3 webhook subscription")
    # Compare against every candidate (no early exit) so timing does not reveal which one matched.
    matched = False
    for given in v1:
        matched |= hmac.compare_digest(expected, given)
    if not matched:
        raise SignatureError("X-PagerDuty-Signature does not match; check PAGERDUTY_WEBHOOK_SECRET")


def parse_api_keys(raw: str | None) -> tuple[str, ...]:
    """Split the API_KEYS setting (comma-separated ``key`` or ``key:role``) into its keys.

    Raises:
        ValueError: an item names an unknown role (see :func:`commands.access.parse_keyed_roles`).
    """
    from commands.access import parse_keyed_roles

    return tuple(parse_keyed_roles(raw))


def verify_bearer(header: str | None, api_keys: tuple[str, ...]) -> None:
    """Check an ``Authorization: Bearer <token>`` header against the configured API keys.

    Args:
        header: the ``Authorization`` value, None when absent.
        api_keys: accepted tokens (see :func:`parse_api_keys`).

    Raises:
        SignatureError: no keys configured, header missing/malformed, or unknown token.
    """
    if not api_keys:
        raise SignatureError("no API_KEYS configured; set API_KEYS and send 'Authorization: Bearer <key>'")
    scheme, _, token = (header or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise SignatureError("send 'Authorization: Bearer <key>' with one of API_KEYS")
    token = token.strip()
    matched = False
    for key in api_keys:
        matched |= hmac.compare_digest(key.encode(), token.encode())
    if not matched:
        raise SignatureError("unknown bearer token; use one of API_KEYS")
