"""Who is calling the admin API and what they may do: API keys with roles, JWT bearers, rate limits.

Roles are ordered ``viewer < operator < admin``: a viewer reads, an operator also starts and
cancels investigations and runs direct queries, an admin also changes domain configuration.

``API_KEYS`` is a comma-separated list of ``key`` or ``key:role`` items. A plain key (the form
the webhooks have always taken) is an ``operator``: it may already start investigations through a
webhook. A JWT bearer (HS256 signed with ``JWT_SECRET``) carries its role in the ``role`` claim
and must carry ``exp``.
"""

from __future__ import annotations

import hmac
import threading
import time
from dataclasses import dataclass

import jwt

ROLES = ("viewer", "operator", "admin")
PLAIN_KEY_ROLE = "operator"


class AuthError(Exception):
    """No or bad credentials (answer 401); the message says what to send."""


class Forbidden(Exception):
    """Valid credentials whose role is too low for the route (answer 403)."""


@dataclass(frozen=True)
class Principal:
    """An authenticated caller.

    Attributes:
        subject: ``key:<first 4 chars>…`` for an API key, the JWT ``sub`` otherwise; never the secret.
        role: one of :data:`ROLES`.
        bucket: the rate-limit bucket key (one per API key / JWT subject).
    """

    subject: str
    role: str
    bucket: str
    scope: str | None = None


LINK_TTL_S = 90 * 24 * 3600


def link_token(secret: str, investigation_id: str, *, ttl_s: int = LINK_TTL_S, now: float | None = None) -> str:
    """A JWT that opens one investigation's report page only (the links in Slack and Jira reports).

    Returns:
        HS256 token with ``role=viewer``, ``inv=<id>`` and ``exp`` ``ttl_s`` from now.
    """
    issued = int(now if now is not None else time.time())
    return jwt.encode({"sub": "report-link", "role": "viewer", "inv": investigation_id, "iat": issued,
                       "exp": issued + ttl_s}, secret, algorithm="HS256")


def report_url(public_url: str, investigation_id: str, secret: str | None) -> str:
    """The report page's address under PM_PUBLIC_URL, with a link token when JWT_SECRET is set."""
    from urllib.parse import quote

    url = f"{public_url.rstrip('/')}/investigations/{quote(investigation_id, safe='')}"
    return f"{url}?token={link_token(secret, investigation_id)}" if secret else url


def require_unscoped(principal: Principal) -> None:
    """Raise :class:`Forbidden` for a report-link token (it opens its report page and nothing else)."""
    if principal.scope is not None:
        raise Forbidden("a report link's token opens that report page only; use an API key or a JWT")


def parse_keyed_roles(raw: str | None) -> dict[str, str]:
    """``API_KEYS`` as ``{key: role}``.

    Raises:
        ValueError: an item names a role that is not one of :data:`ROLES`.
    """
    out: dict[str, str] = {}
    for item in (x.strip() for x in (raw or "").split(",")):
        if not item:
            continue
        key, sep, role = item.rpartition(":")
        if sep and role in ROLES and key:
            out[key] = role
        elif sep and key and role.isalpha():  # a misspelt role would otherwise become part of a key
            raise ValueError(f"API_KEYS: role {role!r} is unknown; use one of {', '.join(ROLES)}")
        else:
            out[item] = PLAIN_KEY_ROLE
    return out


def require(principal: Principal, role: str) -> None:
    """Raise :class:`Forbidden` unless ``principal`` holds ``role`` or a higher one."""
    if ROLES.index(principal.role) < ROLES.index(role):
        raise Forbidden(f"this needs the {role} role; {principal.subject} is a {principal.role}")


def authenticate(
    *, api_key: str | None, authorization: str | None, keys: dict[str, str], jwt_secret: str | None
) -> Principal:
    """Resolve the caller from the ``x-api-key`` header or an ``Authorization: Bearer`` value.

    A bearer value is tried as an API key first, then as a JWT when ``JWT_SECRET`` is set.

    Raises:
        AuthError: nothing usable was sent, the key is unknown, or the JWT is invalid/expired.
    """
    if not keys and not jwt_secret:
        raise AuthError("the admin API is closed: set API_KEYS (key:role,...) or JWT_SECRET on the server")
    if api_key:
        return _by_key(api_key.strip(), keys)
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthError("send 'x-api-key: <key>' or 'Authorization: Bearer <key or JWT>'")
    if token.count(".") != 2 or not jwt_secret:
        return _by_key(token, keys)
    try:
        claims = jwt.decode(token, jwt_secret, algorithms=["HS256"], options={"require": ["exp"]})
    except jwt.ExpiredSignatureError:
        raise AuthError("the JWT has expired; get a new token") from None
    except jwt.InvalidTokenError as exc:
        raise AuthError(f"the JWT is not valid ({exc}); sign HS256 with JWT_SECRET and include exp") from None
    role = claims.get("role")
    if role not in ROLES:
        raise AuthError(f"the JWT's role claim must be one of {', '.join(ROLES)}")
    subject = str(claims.get("sub") or "jwt")
    scope = claims.get("inv")
    return Principal(subject=f"jwt:{subject}", role=str(role), bucket=f"jwt:{subject}",
                     scope=str(scope) if scope is not None else None)


def _by_key(token: str, keys: dict[str, str]) -> Principal:
    found: str | None = None
    for key in keys:  # compare against every key, so timing does not reveal a prefix
        if hmac.compare_digest(key.encode(), token.encode()):
            found = key
    if found is None:
        raise AuthError("unknown API key; use one of API_KEYS")
    return Principal(subject=f"key:{found[:4]}…", role=keys[found], bucket=f"key:{found}")


class RateLimiter:
    """A token bucket per caller, in this process's memory (each app process limits on its own).

    Args:
        rate_per_s: tokens added per second.
        burst: bucket size (requests allowed at once after a quiet spell).
        clock: seconds, monotonic (tests pass their own).
    """

    def __init__(self, rate_per_s: float, burst: int, clock: object = time.monotonic) -> None:
        self.rate = rate_per_s
        self.burst = float(burst)
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, bucket: str) -> float:
        """Take one token for ``bucket``.

        Returns:
            0.0 when allowed, else the seconds until a token is available (answer 429 Retry-After).
        """
        if self.rate <= 0:
            return 0.0
        now = self._clock()  # type: ignore[operator]
        with self._lock:
            tokens, last = self._buckets.get(bucket, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[bucket] = (tokens - 1.0, now)
                return 0.0
            self._buckets[bucket] = (tokens, now)
            return (1.0 - tokens) / self.rate
