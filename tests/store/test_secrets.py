"""Secret providers: environment, and Vault KV v2 through a local stand-in speaking its HTTP API."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from store.config import Settings
from store.errors import ConfigError
from store.secrets import EnvSecretProvider, VaultSecretProvider, make_secret_provider

TOKEN = "s.test-token"
SECRET = {"SLACK_BOT_TOKEN": "xoxb-123", "JIRA_API_TOKEN": "jira-456"}


class _Vault(BaseHTTPRequestHandler):
    """GET /v1/<mount>/data/<path> as Vault's KV v2 answers it; counts reads."""

    reads = 0

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        if self.headers.get("X-Vault-Token") != TOKEN:
            return self._send(403, {"errors": ["permission denied"]})
        if self.path.split("?")[0] != "/v1/secret/data/production-master":
            return self._send(404, {"errors": []})
        type(self).reads += 1
        self._send(200, {"data": {"data": SECRET, "metadata": {"version": 3, "deletion_time": ""}}})

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def vault_addr():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Vault)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Vault.reads = 0
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_env_provider_reads_at_lookup_time():
    env = {"A": "1", "EMPTY": ""}
    provider = EnvSecretProvider(env)
    env["B"] = "2"
    assert (provider.get("A"), provider.get("B"), provider.get("EMPTY"), provider.get("C")) == ("1", "2", None, None)


def test_vault_provider_reads_kv2_and_caches(vault_addr, caplog):
    caplog.set_level(logging.DEBUG)
    provider = make_secret_provider(Settings(VAULT_ADDR=vault_addr, VAULT_TOKEN=TOKEN))
    assert isinstance(provider, VaultSecretProvider)
    assert provider.get("SLACK_BOT_TOKEN") == "xoxb-123"
    assert provider.get("JIRA_API_TOKEN") == "jira-456"
    assert provider.get("MISSING") is None
    assert _Vault.reads == 1  # one read served all three lookups
    assert "xoxb-123" not in caplog.text  # values are never logged


def test_vault_provider_errors_say_what_to_do(vault_addr):
    with pytest.raises(ConfigError, match="refused VAULT_TOKEN .expired, revoked or wrong.; set a valid VAULT_TOKEN"):
        VaultSecretProvider(vault_addr, "wrong-token").get("X")
    with pytest.raises(ConfigError, match="check VAULT_ADDR"):
        VaultSecretProvider("http://127.0.0.1:1", TOKEN).get("X")
    with pytest.raises(ConfigError, match="no secret at secret/data/elsewhere .* set PM_VAULT_MOUNT / PM_VAULT_PATH"):
        VaultSecretProvider(vault_addr, TOKEN, path="elsewhere").get("X")
    with pytest.raises(ConfigError, match="set VAULT_TOKEN or unset VAULT_ADDR"):
        make_secret_provider(Settings(VAULT_ADDR=vault_addr))
    assert isinstance(make_secret_provider(Settings()), EnvSecretProvider)
