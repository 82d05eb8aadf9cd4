"""Secrets: by name from the environment, or from HashiCorp Vault (KV version 2).

Values are never logged; errors name the secret and the Vault path, never the value.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any, Protocol

from store.errors import ConfigError


class SecretProvider(Protocol):
    """Looks up a secret by name; None when it is not set."""

    def get(self, name: str) -> str | None: ...


class EnvSecretProvider:
    """Secrets from environment variables (``name`` is the variable)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        # the mapping is read at lookup time, never at import time
        self._environ = environ if environ is not None else os.environ

    def get(self, name: str) -> str | None:
        """The variable's value, or None when unset or empty."""
        value = self._environ.get(name)
        return value or None


class VaultSecretProvider:
    """Secrets from one Vault KV v2 secret: ``<mount>/data/<path>``, one key per secret name.

    The secret is read once and cached for ``ttl_s`` seconds so a hot path does not hit Vault.
    """

    def __init__(
        self,
        addr: str,
        token: str,
        *,
        mount: str = "secret",
        path: str = "production-master",
        ttl_s: float = 60.0,
        client: Any = None,
    ) -> None:
        if client is None:
            import hvac

            client = hvac.Client(url=addr, token=token)
        self._client = client
        self._addr = addr
        self.mount = mount
        self.path = path
        self.ttl_s = ttl_s
        self._cache: dict[str, Any] | None = None
        self._fetched_at = 0.0

    def _read(self) -> dict[str, Any]:
        import hvac.exceptions

        now = time.monotonic()
        if self._cache is not None and now - self._fetched_at < self.ttl_s:
            return self._cache
        try:
            resp = self._client.secrets.kv.v2.read_secret_version(
                path=self.path, mount_point=self.mount, raise_on_deleted_version=True
            )
        except hvac.exceptions.InvalidPath:
            data: dict[str, Any] = {}
        except hvac.exceptions.Forbidden:
            raise ConfigError(
                f"Vault at VAULT_ADDR={self._addr} refused to read {self.mount}/{self.path}; "
                "give VAULT_TOKEN a policy that can read it"
            ) from None
        except Exception as exc:  # hvac raises requests' errors for transport failures
            raise ConfigError(
                f"cannot read {self.mount}/{self.path} from Vault at VAULT_ADDR={self._addr} "
                f"({type(exc).__name__}); check VAULT_ADDR and that Vault is unsealed"
            ) from None
        else:
            data = dict(resp.get("data", {}).get("data") or {})
        self._cache, self._fetched_at = data, now
        return data

    def get(self, name: str) -> str | None:
        """The secret ``name`` from the Vault secret, or None when it has no such key."""
        value = self._read().get(name)
        return None if value is None else str(value)


def make_secret_provider(settings: Any, *, path: str = "production-master") -> SecretProvider:
    """Vault when VAULT_ADDR is set (VAULT_TOKEN required), else the environment.

    Raises:
        ConfigError: VAULT_ADDR without VAULT_TOKEN.
    """
    if settings.vault_addr:
        if settings.vault_token is None:
            raise ConfigError("VAULT_ADDR is set but VAULT_TOKEN is not; set VAULT_TOKEN or unset VAULT_ADDR")
        return VaultSecretProvider(settings.vault_addr, settings.vault_token.get_secret_value(), path=path)
    return EnvSecretProvider()
