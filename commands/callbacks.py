"""The SSRF guard for ``callback_url``: a caller may not make us POST into our own network.

A callback URL must be ``http`` or ``https`` and every address its host resolves to must be a
global unicast address: loopback (127/8, ::1), link-local (169.254/16 — cloud metadata — and
fe80::/10), private (10/8, 172.16/12, 192.168/16, fc00::/7), shared (100.64/10), multicast,
reserved and unspecified addresses are refused unless ``PM_CALLBACK_ALLOW_PRIVATE=1``.

The check runs when the request is accepted; a deliverer must check again at send time (DNS may
change between the two) — :func:`check_callback_url` is the function to call then too.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

from commands.errors import BadRequest

Resolver = Callable[[str], list[str]]


def _resolve(host: str) -> list[str]:
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    return sorted({str(info[4][0]) for info in infos})


def check_callback_url(url: str, *, allow_private: bool = False, resolve: Resolver = _resolve) -> str:
    """Accept ``url`` as a callback target or say why not.

    Args:
        url: the caller's ``callback_url``.
        allow_private: also accept loopback / private / link-local targets (PM_CALLBACK_ALLOW_PRIVATE).
        resolve: host -> addresses (the system resolver by default).

    Raises:
        BadRequest: not http(s), no host, credentials in the URL, unresolvable, or a refused address.

    Returns:
        The URL unchanged.
    """
    if not isinstance(url, str) or len(url) > 2000:
        raise BadRequest("callback_url must be an http(s) URL of at most 2000 characters")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadRequest("callback_url must be an absolute http:// or https:// URL")
    if parts.username or parts.password:
        raise BadRequest("callback_url must not carry credentials; use a signed callback instead")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise BadRequest("callback_url has an invalid port") from None
    host = parts.hostname
    try:
        addresses = [host] if _is_ip(host) else resolve(host)
    except OSError:
        raise BadRequest(f"callback_url host {host!r} does not resolve; use a public DNS name") from None
    if not addresses:
        raise BadRequest(f"callback_url host {host!r} does not resolve; use a public DNS name")
    if allow_private:
        return url
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        mapped = getattr(ip, "ipv4_mapped", None)
        if mapped is not None:
            ip = mapped
        if not ip.is_global or ip.is_multicast:
            raise BadRequest(
                f"callback_url resolves to {ip}, a loopback, private, link-local or reserved address; "
                "use a public endpoint (or set PM_CALLBACK_ALLOW_PRIVATE=1 on the server for internal ones)"
            )
    return url


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True
