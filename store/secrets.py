"""Secrets: by name from the environment, or from HashiCorp Vault (KV version 2).

Values are never logged; errors name the secret and the Vault path, never the value.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
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

    Authentication is a token (``VAULT_TOKEN``) or an AppRole login (``VAULT_ROLE_ID`` +
    ``VAULT_SECRET_ID``). The secret is read once and cached for ``ttl_s`` seconds, so a hot path
    does not hit Vault and a rotated value is seen within ``ttl_s``. A token with a TTL is renewed
    once half of it has passed; an AppRole token that cannot be renewed (batch tokens, or the
    role's max TTL reached) is replaced by a fresh login. A read refused with 403 (the token
    expired or was revoked) is retried once after a fresh AppRole login.

    Thread-safe: one refresh at a time, other threads wait for it.
    """

    def __init__(
        self,
        addr: str,
        token: str | None = None,
        *,
        role_id: str | None = None,
        secret_id: str | None = None,
        approle_mount: str = "approle",
        mount: str = "secret",
        path: str = "production-master",
        ttl_s: float = 60.0,
        verify: str | bool = True,
        timeout_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        client: Any = None,
    ) -> None:
        """Args:
            addr: VAULT_ADDR.
            token: a Vault token (None when ``role_id`` is given).
            role_id / secret_id: AppRole credentials, logged in with on first use and when the token expires.
            approle_mount: where the AppRole auth method is mounted.
            mount / path: the KV v2 mount and the secret's path under it.
            ttl_s: how long one read of the secret is reused.
            verify: TLS verification: True, False or a CA bundle path (VAULT_CACERT).
            timeout_s: per request to Vault.
            clock: monotonic seconds; tests pass a fake one to step over TTLs without sleeping.
            client: an ``hvac.Client`` (built from ``addr`` when None).

        Raises:
            ConfigError: neither a token nor an AppRole role id.
        """
        if token is None and role_id is None:
            raise ConfigError("VAULT_ADDR is set but neither VAULT_TOKEN nor VAULT_ROLE_ID/VAULT_SECRET_ID is; "
                              "set one or unset VAULT_ADDR")
        if client is None:
            import hvac

            client = hvac.Client(url=addr, token=token, verify=verify, timeout=timeout_s)
        self._client = client
        self._addr = addr
        self._role_id = role_id
        self._secret_id = secret_id
        self.approle_mount = approle_mount
        self.mount = mount
        self.path = path
        self.ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, Any] | None = None
        self._fetched_at = 0.0
        # the token's lease as we last learnt it: obtained-at (clock), duration (s, 0 = never expires), renewable
        self._token_at = 0.0
        self._token_lease = 0.0
        self._token_renewable = False
        self._logged_in = token is not None
        self._token_known = False  # a given token's TTL is looked up once, on first use
        #: how many AppRole logins and token renewals happened (for operators' logs and the tests)
        self.logins = 0
        self.renewals = 0

    @property
    def _where(self) -> str:
        return f"{self.mount}/data/{self.path} in Vault at VAULT_ADDR={self._addr}"

    # -- authentication -----------------------------------------------------------------------
    def _login(self) -> None:
        import hvac.exceptions

        if self._role_id is None:
            return
        try:
            resp = self._client.auth.approle.login(
                role_id=self._role_id, secret_id=self._secret_id, mount_point=self.approle_mount)
        except (hvac.exceptions.InvalidRequest, hvac.exceptions.Forbidden, hvac.exceptions.Unauthorized) as exc:
            raise ConfigError(
                f"Vault at VAULT_ADDR={self._addr} refused the AppRole login at auth/{self.approle_mount} "
                f"({_vault_reason(exc)}); check VAULT_ROLE_ID, VAULT_SECRET_ID (a secret id may expire) and that "
                f"AppRole is enabled there (PM_VAULT_APPROLE_MOUNT)"
            ) from None
        except hvac.exceptions.InvalidPath:
            raise ConfigError(
                f"Vault at VAULT_ADDR={self._addr} has no AppRole auth method at auth/{self.approle_mount}; "
                "enable it (bao auth enable approle) or set PM_VAULT_APPROLE_MOUNT"
            ) from None
        except Exception as exc:
            raise self._transport_error(exc) from None
        auth = resp["auth"]
        self._client.token = auth["client_token"]
        self._token_at = self._clock()
        self._token_lease = float(auth.get("lease_duration") or 0)
        self._token_renewable = bool(auth.get("renewable"))
        self._logged_in = self._token_known = True
        self.logins += 1

    def _keep_token_fresh(self) -> None:
        """Log in on first use; renew (or re-login) once half of the token's TTL has passed."""
        if not self._logged_in:
            self._login()
            return
        if not self._token_known:
            self._token_known = True
            if self._role_id is None:
                try:
                    info = self._client.auth.token.lookup_self()["data"]
                except Exception:  # noqa: BLE001 - a refused token is reported by the read that follows
                    return
                self._token_at = self._clock()
                self._token_lease = float(info.get("ttl") or 0)  # 0: a token that never expires (root)
                self._token_renewable = bool(info.get("renewable"))
                return
        if self._token_lease <= 0 or self._clock() - self._token_at < self._token_lease / 2:
            return
        if self._token_renewable:
            try:
                resp = self._client.auth.token.renew_self()
                lease = float(resp["auth"].get("lease_duration") or 0)
            except Exception:  # noqa: BLE001 - a failed renewal falls back to a login, or the read says why
                lease = 0.0
            # a renewal capped by the max TTL gives less than half the lease back: log in afresh instead
            if lease >= self._token_lease / 2 or self._role_id is None:
                self._token_at, self._token_lease = self._clock(), lease or self._token_lease
                self.renewals += 1
                return
        if self._role_id is not None:
            self._login()

    # -- reading ------------------------------------------------------------------------------
    def _read_once(self) -> dict[str, Any]:
        resp = self._client.secrets.kv.v2.read_secret_version(
            path=self.path, mount_point=self.mount, raise_on_deleted_version=True)
        return dict(resp.get("data", {}).get("data") or {})

    def _read(self) -> dict[str, Any]:
        import hvac.exceptions

        with self._lock:
            now = self._clock()
            if self._cache is not None and now - self._fetched_at < self.ttl_s:
                return self._cache
            self._keep_token_fresh()
            try:
                try:
                    data = self._read_once()
                except hvac.exceptions.Forbidden:
                    if self._role_id is None:
                        raise
                    # the token may have expired or been revoked since: one fresh login, one more try
                    self._login()
                    data = self._read_once()
            except hvac.exceptions.Forbidden:
                raise ConfigError(self._forbidden_message()) from None
            except hvac.exceptions.InvalidPath as exc:
                raise ConfigError(
                    f"no secret at {self._where} ({_vault_reason(exc) or 'not found'}); write it "
                    f"(bao kv put -mount={self.mount} {self.path} KEY=value) or set PM_VAULT_MOUNT / PM_VAULT_PATH"
                ) from None
            except ConfigError:
                raise
            except Exception as exc:  # hvac raises requests' errors for transport failures
                raise self._transport_error(exc) from None
            self._cache, self._fetched_at = data, self._clock()
            return data

    def _forbidden_message(self) -> str:
        """Why a read was refused: a dead token, or a live one whose policies do not cover the path."""
        who = "the AppRole token" if self._role_id is not None else "VAULT_TOKEN"
        rule = f'path "{self.mount}/data/{self.path}" {{ capabilities = ["read"] }}'
        try:
            info = self._client.auth.token.lookup_self()["data"]
        except Exception:  # noqa: BLE001 - the token itself is refused: expired, revoked or wrong
            return (f"Vault at VAULT_ADDR={self._addr} refused {who} (expired, revoked or wrong); "
                    + ("check VAULT_ROLE_ID and VAULT_SECRET_ID" if self._role_id is not None
                       else "set a valid VAULT_TOKEN or use AppRole (VAULT_ROLE_ID, VAULT_SECRET_ID)"))
        policies = ", ".join(sorted(set(info.get("policies") or []) | set(info.get("identity_policies") or [])))
        return (f"Vault refused to read {self._where}: {who}'s policies [{policies or 'none'}] do not allow it; "
                f"add a policy with {rule} to the token's role")

    def _transport_error(self, exc: Exception) -> ConfigError:
        import hvac.exceptions

        if isinstance(exc, hvac.exceptions.VaultDown):
            return ConfigError(f"Vault at VAULT_ADDR={self._addr} is sealed or down ({_vault_reason(exc)}); "
                               "unseal it (bao operator unseal) or wait for it to come back")
        if isinstance(exc, hvac.exceptions.VaultError):
            return ConfigError(f"Vault at VAULT_ADDR={self._addr} failed reading {self.mount}/data/{self.path} "
                               f"({type(exc).__name__}: {_vault_reason(exc)}); check the Vault server's log")
        return ConfigError(f"cannot reach Vault at VAULT_ADDR={self._addr} ({type(exc).__name__}); "
                           "check VAULT_ADDR, the network path to it and VAULT_CACERT for https")

    def get(self, name: str) -> str | None:
        """The secret ``name`` from the Vault secret, or None when it has no such key.

        Raises:
            ConfigError: Vault unreachable, sealed, the login or the read refused, or no secret at the path.
        """
        value = self._read().get(name)
        return None if value is None else str(value)


def _vault_reason(exc: Exception) -> str:
    """Vault's own error text (never a secret value), on one line and short."""
    errors = getattr(exc, "errors", None)
    text = "; ".join(str(e) for e in errors) if isinstance(errors, list | tuple) and errors else str(exc)
    text = " ".join(text.split())
    return text[:200]


def make_secret_provider(settings: Any, *, path: str | None = None) -> SecretProvider:
    """Vault when VAULT_ADDR is set (VAULT_TOKEN, or VAULT_ROLE_ID + VAULT_SECRET_ID), else the environment.

    Args:
        settings: ``store.config.Settings``.
        path: the KV v2 secret's path (default PM_VAULT_PATH).

    Raises:
        ConfigError: VAULT_ADDR without credentials.
    """
    if not settings.vault_addr:
        return EnvSecretProvider()
    token = settings.vault_token.get_secret_value() if settings.vault_token is not None else None
    role_id = settings.vault_role_id
    secret_id = settings.vault_secret_id.get_secret_value() if settings.vault_secret_id is not None else None
    if token is None and role_id is None:
        raise ConfigError("VAULT_ADDR is set but neither VAULT_TOKEN nor VAULT_ROLE_ID (+ VAULT_SECRET_ID) is; "
                          "set VAULT_TOKEN or unset VAULT_ADDR")
    return VaultSecretProvider(
        settings.vault_addr,
        None if role_id else token,
        role_id=role_id,
        secret_id=secret_id,
        approle_mount=settings.vault_approle_mount,
        mount=settings.vault_mount,
        path=path or settings.vault_path,
        ttl_s=settings.vault_cache_ttl_s,
        verify=str(settings.vault_cacert) if settings.vault_cacert else True,
    )
