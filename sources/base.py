"""The provider base: one ``sources.yaml`` entry answering its section's capabilities.

A provider subclass sets ``KIND`` and ``CAPABILITIES`` and implements, for each capability,
a method named like it with ``.`` -> ``_`` (``metrics_series(self, service=None, ...)``)
taking the contract's arguments (docs/contracts.md) and returning the contract's dict. It
raises :class:`sources.errors.SourceError` (the source failed: unreachable, refused,
garbage) or :class:`sandbox.errors.ToolArgumentError` (the caller passed a bad argument).
A result cut short by a bound carries ``truncated: "<why>"``, which the engine lists in the
report's ``missing_sources``.

Settings are read through :meth:`Provider.opt` and friends, so a wrong value fails when the
provider is built, with the key's address (``logs[0].path``) in the message.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, ClassVar

from sandbox.errors import NotFoundError, ToolArgumentError
from sources.errors import SourceError
from store.errors import ConfigError
from store.sources_file import SourceEntry, SourcesFile, resolve_secret

DEFAULT_TIMEOUT_S = 10.0


class Provider:
    """Base class of every real-source provider.

    Args:
        entry: the ``sources.yaml`` entry.
        sources: the whole file (for relative paths and the window defaults).
        secrets: a ``store.secrets.SecretProvider`` for ``{vault: KEY}`` references, or None.

    Raises:
        ConfigError: a setting is missing or malformed (the message names it).
    """

    KIND: ClassVar[str] = ""
    CAPABILITIES: ClassVar[tuple[str, ...]] = ()

    def __init__(self, entry: SourceEntry, sources: SourcesFile, *, secrets: Any = None) -> None:
        self.entry = entry
        self.sources = sources
        self.secrets = secrets
        self.settings = dict(entry.settings)
        self.timeout_s = self.opt_float("timeout_s", DEFAULT_TIMEOUT_S)

    # ------------------------------------------------------------ identity

    @property
    def where(self) -> str:
        """The entry's address in the file, for messages: ``logs[0]``."""
        return f"{self.entry.section}[{self.entry.index}]"

    @property
    def label(self) -> str:
        """How reports name this source: ``loki http://loki:3100`` or ``files /var/log/x``."""
        target = self.settings.get("url") or self.settings.get("path") or ""
        name = self.entry.name if self.entry.name != self.entry.kind else self.entry.kind
        return f"{name} {target}".strip()

    def capabilities(self) -> tuple[str, ...]:
        """The capabilities this entry answers: its section's that the provider implements."""
        return tuple(c for c in self.entry.capabilities if c in self.CAPABILITIES)

    # ------------------------------------------------------------ settings

    def opt(self, key: str, default: Any = None, *, required: bool = False, example: str = "") -> Any:
        """A raw setting; ``required`` ones missing raise ConfigError with an example."""
        value = self.settings.get(key, default)
        if required and value in (None, ""):
            hint = f", e.g. {key}: {example}" if example else ""
            raise ConfigError(f"{self.where}.{key}: required for a {self.KIND} source{hint}")
        return value

    def opt_str(self, key: str, default: str | None = None, *, required: bool = False, example: str = "") -> str | None:
        value = self.opt(key, default, required=required, example=example)
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{self.where}.{key}: expected a string, got {value!r}")
        return value

    def opt_float(self, key: str, default: float) -> float:
        value = self.settings.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ConfigError(f"{self.where}.{key}: expected a positive number, got {value!r}")
        return float(value)

    def opt_int(self, key: str, default: int) -> int:
        value = self.settings.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"{self.where}.{key}: expected a positive integer, got {value!r}")
        return value

    def opt_map(self, key: str) -> dict[str, Any]:
        value = self.settings.get(key) or {}
        if not isinstance(value, dict):
            raise ConfigError(f"{self.where}.{key}: expected a mapping")
        return dict(value)

    def secret(self, key: str) -> str | None:
        """The secret referenced by setting ``key`` (``{env: NAME}`` / ``{vault: KEY}``), or None."""
        return resolve_secret(self.settings.get(key), secrets=self.secrets, where=f"{self.where}.{key}")

    def url(self, *, required: bool = True, example: str = "http://127.0.0.1:9090") -> str:
        """The ``url`` setting without a trailing slash."""
        value = self.opt_str("url", required=required, example=example) or ""
        if value and not value.startswith(("http://", "https://")):
            raise ConfigError(f"{self.where}.url: {value!r} is not an http(s) URL; e.g. url: {example}")
        return value.rstrip("/")

    def auth_headers(self) -> dict[str, str]:
        """Headers from ``headers:``, a bearer ``token:`` and basic ``username:``/``password:``."""
        headers = {str(k): str(v) for k, v in self.opt_map("headers").items()}
        token = self.secret("token")
        if token:
            headers["Authorization"] = f"Bearer {token}"
        user = self.opt_str("username")
        if user:
            import base64

            password = self.secret("password") or ""
            headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        return headers

    # ------------------------------------------------------------ answering

    def call(self, capability: str, **args: Any) -> dict[str, Any]:
        """Answer one capability.

        Raises:
            ToolArgumentError: a capability this entry does not answer, or a bad argument.
            NotFoundError: ``*.get`` of an unknown key.
            SourceError: the source failed (its message names the source and what to check).
        """
        if capability not in self.capabilities():
            raise ToolArgumentError(
                f"{capability}: not answered by {self.label} ({self.where}); it answers {', '.join(self.capabilities())}"
            )
        method: Callable[..., dict[str, Any]] = getattr(self, capability.replace(".", "_"))
        try:
            return method(**{k: v for k, v in args.items() if v is not None})
        except TypeError as exc:
            if "unexpected keyword argument" in str(exc):
                raise ToolArgumentError(f"{capability}: {str(exc).split(') ', 1)[-1]}") from None
            raise

    def call_json(self, capability: str, args: dict[str, Any]) -> str:
        """:meth:`call` as compact JSON text (what the MCP tools send)."""
        return json.dumps(self.call(capability, **args), separators=(",", ":"), ensure_ascii=False, default=str)

    def check(self) -> str:
        """Reach the source and run a small query; return a one-line detail of what was seen.

        The default asks the first capability for the last ten minutes. Providers with a cheaper
        probe override it.

        Raises:
            SourceError: the source cannot answer (the message says what to change).
        """
        now = time.time()
        args: dict[str, Any] = {}
        cap = self.capabilities()[0]
        if cap in ("logs.search", "logs.counts", "metrics.series", "changes.list", "alerts.list", "chat.search"):
            args = {"start": iso(now - 600), "end": iso(now + 60)}
        if cap == "logs.search":
            args["limit"] = 1
        try:
            result = self.call(cap, **args)
        except NotFoundError:
            return "reached"
        sizes = [f"{len(v)} {k}" for k, v in result.items() if isinstance(v, list)]
        return f"{cap}: " + (", ".join(sizes) or "ok")

    def close(self) -> None:
        """Release connections (a no-op unless a provider holds some)."""


def iso(epoch: float) -> str:
    """Epoch seconds as ISO-8601 UTC with ``Z`` (whole seconds)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def http_error(label: str, exc: BaseException, *, hint: str = "check url: and that it runs") -> SourceError:
    """A SourceError for an httpx failure: connection refused, timeout, TLS, HTTP status."""
    import httpx

    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        body = exc.response.text.strip().replace("\n", " ")[:200]
        if status in (401, 403):
            return SourceError(f"{label}: HTTP {status} (refused our credentials); check token:/username: {body}")
        return SourceError(f"{label}: HTTP {status}: {body}")
    if isinstance(exc, httpx.TimeoutException):
        return SourceError(f"{label}: timed out; raise timeout_s: or check that it answers")
    if isinstance(exc, httpx.HTTPError):
        return SourceError(f"{label}: cannot connect ({type(exc).__name__}: {str(exc)[:120]}); {hint}")
    return SourceError(f"{label}: {type(exc).__name__}: {str(exc)[:160]}")
