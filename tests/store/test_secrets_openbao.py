"""VaultSecretProvider against a real OpenBao dev server (Vault's API; `bao` from scripts/ensure-openbao.sh).

One server per module, on a free loopback port with a random root token. Each test writes its own KV v2
secret and AppRole roles through hvac with the root token, then reads through the provider as the product
does. Time is a fake clock handed to the provider, so TTLs are stepped over without sleeping; the server's
own clock is real. An audit device counts the reads the server actually served.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import hvac
import pytest

from store.config import Settings
from store.errors import ConfigError
from store.secrets import VaultSecretProvider, make_secret_provider
from store.sources_file import parse_sources, resolve_secret

ROOT = Path(__file__).resolve().parents[2]


def _bao_binary() -> str:
    """The pinned bao (installed on first use by scripts/ensure-openbao.sh, which the test command runs)."""
    if os.environ.get("PM_BAO"):
        return os.environ["PM_BAO"]
    done = subprocess.run(["bash", str(ROOT / "scripts" / "ensure-openbao.sh")], capture_output=True, text=True,
                          env={**os.environ, "PM_PYTHON": sys.executable}, timeout=600)
    assert done.returncode == 0, f"scripts/ensure-openbao.sh failed: {done.stderr[-2000:]}"
    return done.stdout.strip().splitlines()[-1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Bao:
    """A running dev server: its address, root client, unseal key and audit log."""

    def __init__(self, addr: str, root_token: str, unseal_key: str, audit: Path) -> None:
        self.addr, self.root_token, self.unseal_key, self.audit = addr, root_token, unseal_key, audit
        self.root = hvac.Client(url=addr, token=root_token)

    def reads_of(self, path: str) -> int:
        """Read requests the server logged for ``path`` (an API path such as secret/data/x)."""
        lines = self.audit.read_text().splitlines() if self.audit.exists() else []
        entries = [json.loads(line) for line in lines if line.strip()]
        return sum(1 for e in entries if e.get("type") == "request" and e["request"].get("path") == path
                   and e["request"].get("operation") == "read")

    def approle(self, name: str, policy_rules: str, **role: object) -> tuple[str, str]:
        """A role with one policy of ``policy_rules``; returns (role_id, secret_id)."""
        self.root.sys.create_or_update_policy(name=name, policy=policy_rules)
        self.root.auth.approle.create_or_update_approle(role_name=name, token_policies=[name], **role)
        role_id = self.root.auth.approle.read_role_id(role_name=name)["data"]["role_id"]
        secret_id = self.root.auth.approle.generate_secret_id(role_name=name)["data"]["secret_id"]
        return role_id, secret_id


@pytest.fixture(scope="module")
def bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bao]:
    binary = _bao_binary()
    home = tmp_path_factory.mktemp("bao")
    addr = f"http://127.0.0.1:{_free_port()}"
    root_token = secrets.token_hex(16)
    log = home / "server.log"
    audit = home / "audit.log"
    # OpenBao takes audit devices from its configuration file only, not through the API
    config = home / "audit.hcl"
    config.write_text(f'audit "file" "pm" {{\n  options {{\n    file_path = "{audit}"\n  }}\n}}\n')
    with log.open("w") as out:
        proc = subprocess.Popen(
            [binary, "server", "-dev", f"-config={config}", f"-dev-listen-address={addr.removeprefix('http://')}",
             f"-dev-root-token-id={root_token}", "-dev-no-store-token", "-log-level=warn"],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "HOME": str(home)}, start_new_session=True)
    try:
        client = hvac.Client(url=addr, token=root_token)
        deadline = time.monotonic() + 30
        while True:
            # the banner with the unseal key is printed once the server is up
            found = re.search(r"Unseal Key: (\S+)", log.read_text())
            try:
                if found and client.sys.is_initialized() and not client.sys.is_sealed():
                    break
            except Exception:  # noqa: BLE001 - not listening yet
                pass
            assert proc.poll() is None, f"bao exited: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"bao did not come up: {log.read_text()[-2000:]}"
            time.sleep(0.1)
        client.sys.enable_auth_method(method_type="approle")
        yield Bao(addr, root_token, found.group(1), audit)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _secret(bao: Bao, **values: str) -> str:
    """A fresh KV v2 secret under the dev server's ``secret/`` mount; returns its path."""
    path = f"pm-{uuid.uuid4().hex[:8]}"
    bao.root.secrets.kv.v2.create_or_update_secret(path=path, secret=values, mount_point="secret")
    return path


def _read_policy(path: str) -> str:
    return f'path "secret/data/{path}" {{ capabilities = ["read"] }}'


def test_token_auth_reads_once_per_ttl_and_sees_a_rotation_after_it(bao: Bao):
    path = _secret(bao, SLACK_BOT_TOKEN="xoxb-1", JIRA_API_TOKEN="jira-1")
    clock = Clock()
    provider = make_secret_provider(Settings(VAULT_ADDR=bao.addr, VAULT_TOKEN=bao.root_token, PM_VAULT_PATH=path))
    assert isinstance(provider, VaultSecretProvider)
    provider._clock = clock  # the settings path builds it; the test steps its time
    for _ in range(50):
        assert provider.get("SLACK_BOT_TOKEN") == "xoxb-1"
        assert provider.get("JIRA_API_TOKEN") == "jira-1"
    assert provider.get("MISSING") is None
    assert bao.reads_of(f"secret/data/{path}") == 1  # 101 lookups, one read served them

    bao.root.secrets.kv.v2.create_or_update_secret(path=path, secret={"SLACK_BOT_TOKEN": "xoxb-2"},
                                                   mount_point="secret")
    clock.now += 59
    assert provider.get("SLACK_BOT_TOKEN") == "xoxb-1"  # still within the 60 s cache
    clock.now += 2
    assert provider.get("SLACK_BOT_TOKEN") == "xoxb-2"  # rotated value after the TTL
    assert provider.get("JIRA_API_TOKEN") is None  # the new version replaced the whole secret
    assert bao.reads_of(f"secret/data/{path}") == 2


def test_approle_login_reads_with_a_least_privilege_token(bao: Bao):
    path = _secret(bao, API="v1")
    role_id, secret_id = bao.approle("pm-reader", _read_policy(path), token_ttl="1h")
    provider = make_secret_provider(Settings(
        VAULT_ADDR=bao.addr, VAULT_ROLE_ID=role_id, VAULT_SECRET_ID=secret_id, PM_VAULT_PATH=path))
    assert isinstance(provider, VaultSecretProvider)
    assert provider.get("API") == "v1"
    assert provider.logins == 1
    token = provider._client.token
    assert token != bao.root_token
    info = bao.root.auth.token.lookup(token)["data"]
    assert "pm-reader" in info["policies"] and "root" not in info["policies"]


def test_a_revoked_token_is_replaced_by_a_fresh_approle_login(bao: Bao):
    path = _secret(bao, API="v1")
    role_id, secret_id = bao.approle("pm-revoked", _read_policy(path), token_ttl="1h")
    clock = Clock()
    provider = VaultSecretProvider(bao.addr, role_id=role_id, secret_id=secret_id, path=path, clock=clock)
    assert provider.get("API") == "v1"
    first = provider._client.token
    bao.root.auth.token.revoke(first)
    bao.root.secrets.kv.v2.create_or_update_secret(path=path, secret={"API": "v2"}, mount_point="secret")
    clock.now += 61
    assert provider.get("API") == "v2"  # 403 with the revoked token, one login, the read again
    assert provider.logins == 2 and provider._client.token != first


def test_token_renewed_at_half_ttl_and_batch_token_replaced_by_login(bao: Bao):
    path = _secret(bao, API="v1")
    role_id, secret_id = bao.approle("pm-renew", _read_policy(path), token_ttl="10m", token_max_ttl="1h")
    clock = Clock()
    provider = VaultSecretProvider(bao.addr, role_id=role_id, secret_id=secret_id, path=path, clock=clock)
    assert provider.get("API") == "v1"
    token = provider._client.token
    assert not bao.root.auth.token.lookup(token)["data"].get("last_renewal_time")
    clock.now += 301  # past half of the 10 min TTL (and the cache)
    assert provider.get("API") == "v1"
    assert (provider.renewals, provider.logins) == (1, 1)
    assert provider._client.token == token
    assert bao.root.auth.token.lookup(token)["data"].get("last_renewal_time")  # the server saw the renewal

    # batch tokens cannot be renewed: past half their TTL the provider logs in again
    role_id, secret_id = bao.approle("pm-batch", _read_policy(path), token_ttl="10m", token_type="batch")
    provider = VaultSecretProvider(bao.addr, role_id=role_id, secret_id=secret_id, path=path, clock=clock)
    assert provider.get("API") == "v1"
    clock.now += 301
    assert provider.get("API") == "v1"
    assert (provider.renewals, provider.logins) == (0, 2)


def test_a_given_token_with_a_ttl_is_renewed_and_a_root_token_is_left_alone(bao: Bao):
    path = _secret(bao, API="v1")
    bao.root.sys.create_or_update_policy(name="pm-token", policy=_read_policy(path))
    token = bao.root.auth.token.create(policies=["pm-token"], ttl="10m", renewable=True)["auth"]["client_token"]
    clock = Clock()
    provider = VaultSecretProvider(bao.addr, token, path=path, clock=clock)
    assert provider.get("API") == "v1"
    clock.now += 301
    assert provider.get("API") == "v1"
    assert provider.renewals == 1
    assert bao.root.auth.token.lookup(token)["data"].get("last_renewal_time")
    root = VaultSecretProvider(bao.addr, bao.root_token, path=path, clock=clock)
    assert root.get("API") == "v1"
    clock.now += 10**6
    assert root.get("API") == "v1"
    assert root.renewals == 0  # ttl 0: nothing to renew


def test_concurrent_lookups_share_one_read(bao: Bao):
    path = _secret(bao, API="v1")
    provider = VaultSecretProvider(bao.addr, bao.root_token, path=path)
    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(lambda _: provider.get("API"), range(64))) == {"v1"}
    assert bao.reads_of(f"secret/data/{path}") == 1


def test_forbidden_names_the_policies_and_the_rule_to_add(bao: Bao):
    path = _secret(bao, API="v1")
    role_id, secret_id = bao.approle("pm-elsewhere", _read_policy("somewhere-else"), token_ttl="1h")
    provider = VaultSecretProvider(bao.addr, role_id=role_id, secret_id=secret_id, path=path)
    with pytest.raises(ConfigError) as err:
        provider.get("API")
    msg = str(err.value)
    assert "\n" not in msg
    assert "policies [default, pm-elsewhere] do not allow it" in msg
    assert f'path "secret/data/{path}" {{ capabilities = ["read"] }}' in msg
    assert provider.logins == 2  # the refused read was retried once with a fresh login


def test_wrong_credentials_path_and_address_each_say_what_to_fix(bao: Bao):
    path = _secret(bao, API="v1")
    with pytest.raises(ConfigError, match=r"refused VAULT_TOKEN \(expired, revoked or wrong\)"):
        VaultSecretProvider(bao.addr, "not-a-token", path=path).get("API")
    role_id, _secret_id = bao.approle("pm-badlogin", _read_policy(path))
    with pytest.raises(ConfigError, match=r"refused the AppRole login at auth/approle \(invalid role or secret ID\); "
                                          "check VAULT_ROLE_ID, VAULT_SECRET_ID"):
        VaultSecretProvider(bao.addr, role_id=role_id, secret_id="wrong", path=path).get("API")
    with pytest.raises(ConfigError, match=r"refused the AppRole login at auth/nowhere \(permission denied\); .*"
                                          "AppRole is enabled there"):
        VaultSecretProvider(bao.addr, role_id=role_id, secret_id="x", approle_mount="nowhere").get("API")
    with pytest.raises(ConfigError, match=f"no secret at secret/data/{path}-missing in Vault at VAULT_ADDR="):
        VaultSecretProvider(bao.addr, bao.root_token, path=f"{path}-missing").get("API")
    closed = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(ConfigError, match=f"cannot reach Vault at VAULT_ADDR={closed} .*check VAULT_ADDR"):
        VaultSecretProvider(closed, bao.root_token, path=path).get("API")
    with pytest.raises(ConfigError, match="neither VAULT_TOKEN nor VAULT_ROLE_ID"):
        make_secret_provider(Settings(VAULT_ADDR=bao.addr))


def test_sources_yaml_vault_reference_resolves_through_the_provider(bao: Bao, monkeypatch):
    path = _secret(bao, prom_token="prom-secret")
    role_id, secret_id = bao.approle("pm-sources", _read_policy(path))
    doc = parse_sources({"metrics": [{"kind": "prometheus", "url": "http://127.0.0.1:9/",
                                      "token": {"vault": "prom_token"}}]}, path=Path("sources.yaml"))
    entry = doc.entry("metrics.0")
    provider = make_secret_provider(Settings(
        VAULT_ADDR=bao.addr, VAULT_ROLE_ID=role_id, VAULT_SECRET_ID=secret_id, PM_VAULT_PATH=path))
    assert resolve_secret(entry.settings["token"], secrets=provider, where="metrics[0].token") == "prom-secret"
    with pytest.raises(ConfigError, match="Vault holds no key 'other'"):
        resolve_secret({"vault": "other"}, secrets=provider, where="metrics[0].token")


def test_sealed_server_says_unseal(bao: Bao):
    path = _secret(bao, API="v1")
    bao.root.sys.seal()
    try:
        with pytest.raises(ConfigError, match=r"is sealed or down .*unseal it \(bao operator unseal\)"):
            VaultSecretProvider(bao.addr, bao.root_token, path=path).get("API")
    finally:
        bao.root.sys.submit_unseal_key(bao.unseal_key)
    assert VaultSecretProvider(bao.addr, bao.root_token, path=path).get("API") == "v1"
