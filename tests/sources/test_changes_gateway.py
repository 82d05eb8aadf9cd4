"""End to end: github + git + kubernetes in one sources.yaml, asked through MCP and the gateway."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pytest
import yaml

from agents.gateway import open_gateway
from agents.sources_gateway import gateway_config
from sources.registry import build_provider
from sources.server import provider_server
from store.sources_file import load_sources
from tests.fakes.git_repo import Repo
from tests.fakes.github_server import FakeGitHub
from tests.fakes.kube_server import FakeKube

pytestmark = pytest.mark.integration

WINDOW = {"start": "2026-02-20T06:00:00Z", "end": "2026-02-20T10:00:00Z"}


def test_changes_from_three_kinds_merged_sorted_and_deduplicated(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_GITHUB_TOKEN", "gh-token")
    gh, kube = FakeGitHub().start(), FakeKube().start()
    try:
        gh.add_repo("org/checkout")
        gh.add_deployment("org/checkout", 5, sha="5" * 40, ref="v2.1", created_at="2026-02-20T08:58:00Z",
                          statuses=[("success", "2026-02-20T09:00:00Z")])
        repo = Repo(tmp_path / "repo")
        sha = repo.commit({"app.py": "1"}, "fix", "2026-02-20T07:00:00Z")
        repo.tag("v2.0", "2026-02-20T07:05:00Z", "two")
        kube.add_deployment("shop", "payments-api", image="reg/pay:3.1")
        kube.add_replicaset("shop", "payments-api", "payments-api-1a2b3c", revision=7, created="2026-02-20T08:00:00Z",
                            images={"pay": "reg/pay:3.1"})
        kube.kubeconfig(tmp_path / "kubeconfig")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            dead = f"http://127.0.0.1:{s.getsockname()[1]}"
        doc = {"changes": [
            {"kind": "github", "url": gh.url, "repos": {"checkout": "org/checkout"}, "token": {"env": "TEST_GITHUB_TOKEN"}},
            {"kind": "git", "path": "repo", "service": "checkout"},
            {"kind": "kubernetes", "namespace": "shop", "kubeconfig": "kubeconfig",
             "services": {"payments-api": "payments"}},
            {"kind": "git", "name": "same-clone-again", "path": "repo", "service": "checkout"},
            {"kind": "github", "name": "ghe", "url": dead, "repos": {"search": "org/search"}, "timeout_s": 2},
        ]}
        path = tmp_path / "sources.yaml"
        path.write_text(yaml.safe_dump(doc))
        sources = load_sources(path)

        # the provider's own MCP server offers the contract's tool
        server = provider_server(build_provider(sources.entries[0], sources))
        tools = asyncio.run(server.list_tools())
        assert [t.name for t in tools] == ["changes_list"]

        with open_gateway(gateway_config(sources)) as gw:
            out = gw.call("changes.list", **WINDOW)
            assert [(c["id"], c["ts"], c["service"]) for c in out["changes"]] == [
                (f"git-{sha[:7]}-v2.0", "2026-02-20T07:05:00Z", "checkout"),
                ("k8s-shop-payments-api-7", "2026-02-20T08:00:00Z", "payments"),
                ("gh-org-checkout-deploy-5", "2026-02-20T09:00:00Z", "checkout"),
            ]  # the second git entry's identical change appears once
            assert out["changes"][1]["details"] == {"version": "3.1", "previous_version": None, "commit": None}
            assert len(out["missing_sources"]) == 1
            assert "ghe" in out["missing_sources"][0] and "cannot connect" in out["missing_sources"][0]
            only = gw.call("changes.list", service="payments", **WINDOW)["changes"]
            assert [c["id"] for c in only] == ["k8s-shop-payments-api-7"]
        assert json.dumps(out)  # plain JSON all the way
    finally:
        gh.stop()
        kube.stop()
