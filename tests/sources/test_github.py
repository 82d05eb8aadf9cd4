"""The github changes provider, driven through the real PyGithub client against a GitHub REST stand-in."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.errors import ToolArgumentError
from sources.errors import SourceError
from sources.github import GitHubProvider
from sources.registry import build_provider
from store.errors import ConfigError
from store.sources_file import parse_sources
from tests.fakes.github_server import FakeGitHub

pytestmark = pytest.mark.integration

WINDOW = {"start": "2026-02-20T06:00:00Z", "end": "2026-02-20T10:00:00Z"}
SHA1, SHA2, SHA3, SHA4 = ("1" * 40), ("2" * 40), ("3" * 40), ("4" * 40)


@pytest.fixture
def gh(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGitHub]:
    monkeypatch.setenv("TEST_GITHUB_TOKEN", "gh-token")
    fake = FakeGitHub().start()
    fake.add_repo("org/checkout")
    fake.add_repo("org/pay", default_branch="trunk")
    # checkout: v1.3 deployed yesterday (before the window), v1.4 in the window, v1.5 failed, v1.6 to staging.
    fake.add_deployment("org/checkout", 11, sha=SHA1, ref="v1.3", created_at="2026-02-19T12:00:00Z",
                        statuses=[("success", "2026-02-19T12:04:00Z")])
    fake.add_deployment("org/checkout", 12, sha=SHA2, ref="v1.4", created_at="2026-02-20T07:58:00Z",
                        creator="alice", description="canary ok",
                        statuses=[("queued", "2026-02-20T07:58:01Z"), ("in_progress", "2026-02-20T07:58:30Z"),
                                  ("success", "2026-02-20T08:02:00Z")])
    fake.add_deployment("org/checkout", 13, sha=SHA3, ref="v1.5", created_at="2026-02-20T09:00:00Z",
                        statuses=[("failure", "2026-02-20T09:03:00Z")])
    fake.add_deployment("org/checkout", 14, sha=SHA4, ref="v1.6", created_at="2026-02-20T09:10:00Z",
                        environment="staging", statuses=[("success", "2026-02-20T09:12:00Z")])
    fake.add_deployment("org/checkout", 15, sha=SHA3, ref="v1.5.1", created_at="2026-02-20T09:20:00Z",
                        statuses=[("success", "2026-02-20T09:25:00Z")])
    fake.add_release("org/checkout", 21, tag="v1.3", created_at="2026-02-19T11:00:00Z")
    fake.add_release("org/checkout", 22, tag="v1.4", name="Faster checkout", created_at="2026-02-20T07:30:00Z",
                     author="bob", target="main")
    fake.add_release("org/checkout", 23, tag="v1.5-rc1", created_at="2026-02-20T08:30:00Z", prerelease=True)
    fake.add_release("org/checkout", 24, tag="v1.5", created_at="2026-02-20T08:40:00Z", draft=True)
    fake.add_pull("org/checkout", 7, title="Retry card auth", updated_at="2026-02-20T07:21:00Z",
                  merged_at="2026-02-20T07:20:00Z", merge_commit_sha=SHA2, user="carol")
    fake.add_pull("org/checkout", 8, title="Abandoned", updated_at="2026-02-20T07:25:00Z", merged_at=None)
    fake.add_pull("org/checkout", 9, title="To a release branch", updated_at="2026-02-20T07:26:00Z",
                  merged_at="2026-02-20T07:26:00Z", merge_commit_sha=SHA3, base="release-1")
    fake.add_release("org/pay", 31, tag="pay-2.0", created_at="2026-02-20T06:30:00Z", author="dana")
    yield fake
    fake.stop()


def provider(url: str, tmp_path: Path, **settings: Any) -> GitHubProvider:
    entry = {"kind": "github", "url": url, "token": {"env": "TEST_GITHUB_TOKEN"},
             "repos": {"checkout": "org/checkout", "payments": "org/pay"}, **settings}
    doc = parse_sources({"changes": [entry]}, base_dir=tmp_path)
    p = build_provider(doc.entries[0], doc)
    assert isinstance(p, GitHubProvider)
    return p


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_deployments_and_releases_exactly(gh: FakeGitHub, tmp_path: Path) -> None:
    out = provider(gh.url, tmp_path).call("changes.list", **WINDOW)
    assert out == {"changes": [
        {"id": "gh-org-pay-release-pay-2.0", "ts": "2026-02-20T06:30:00Z", "kind": "deploy", "service": "payments",
         "author": "dana", "summary": "release pay-2.0",
         "details": {"version": "pay-2.0", "previous_version": None, "commit": "main"}},
        {"id": "gh-org-checkout-release-v1.4", "ts": "2026-02-20T07:30:00Z", "kind": "deploy",
         "service": "checkout", "author": "bob", "summary": "release v1.4: Faster checkout",
         "details": {"version": "v1.4", "previous_version": "v1.3", "commit": "main"}},
        # the time of a deployment is its success status, not its creation
        {"id": "gh-org-checkout-deploy-12", "ts": "2026-02-20T08:02:00Z", "kind": "deploy", "service": "checkout",
         "author": "alice", "summary": "deploy v1.4 of org/checkout to production: canary ok",
         "details": {"version": "v1.4", "previous_version": "v1.3", "commit": SHA2}},
        {"id": "gh-org-checkout-deploy-14", "ts": "2026-02-20T09:12:00Z", "kind": "deploy", "service": "checkout",
         "author": "deploy-bot", "summary": "deploy v1.6 of org/checkout to staging",
         "details": {"version": "v1.6", "previous_version": None, "commit": SHA4}},
        # the failed v1.5 never ran: v1.4 is what v1.5.1 replaced
        {"id": "gh-org-checkout-deploy-15", "ts": "2026-02-20T09:25:00Z", "kind": "deploy", "service": "checkout",
         "author": "deploy-bot", "summary": "deploy v1.5.1 of org/checkout to production",
         "details": {"version": "v1.5.1", "previous_version": "v1.4", "commit": SHA3}},
    ]}
    # PyGithub asked with GitHub's paging parameter and with the token
    assert "/repos/org/checkout/deployments?per_page=100" in gh.requests
    assert not any("/pulls" in r for r in gh.requests)  # merges are not read unless asked


def test_environment_and_merges(gh: FakeGitHub, tmp_path: Path) -> None:
    p = provider(gh.url, tmp_path, environment="production", include=["deployments", "merges"])
    out = p.call("changes.list", service="checkout", **WINDOW)["changes"]
    assert [c["id"] for c in out] == ["gh-org-checkout-pr-7", "gh-org-checkout-deploy-12",
                                      "gh-org-checkout-deploy-15"]
    assert out[0] == {"id": "gh-org-checkout-pr-7", "ts": "2026-02-20T07:20:00Z", "kind": "deploy",
                      "service": "checkout", "author": "carol", "summary": "merged #7 into main: Retry card auth",
                      "details": {"version": SHA2[:7], "previous_version": None, "commit": SHA2}}
    assert any("deployments?environment=production" in r for r in gh.requests)
    assert any("/pulls?base=main&direction=desc" in r and "sort=updated" in r and "state=closed" in r
               for r in gh.requests)


def test_window_is_half_open(gh: FakeGitHub, tmp_path: Path) -> None:
    p = provider(gh.url, tmp_path)
    ids = [c["id"] for c in p.call("changes.list", start="2026-02-20T07:30:00Z", end="2026-02-20T08:02:00Z")["changes"]]
    assert ids == ["gh-org-checkout-release-v1.4"]
    ids = [c["id"] for c in p.call("changes.list", start="2026-02-20T08:02:00Z", end="2026-02-20T09:12:01Z")["changes"]]
    assert ids == ["gh-org-checkout-deploy-12", "gh-org-checkout-deploy-14"]


def test_service_and_kind_filters(gh: FakeGitHub, tmp_path: Path) -> None:
    p = provider(gh.url, tmp_path)
    out = p.call("changes.list", service="payments", **WINDOW)["changes"]
    assert [c["id"] for c in out] == ["gh-org-pay-release-pay-2.0"]
    assert not any(r.startswith("/repos/org/checkout") for r in gh.requests)  # only the mapped repo is asked
    asked = len(gh.requests)
    assert p.call("changes.list", kind="config", **WINDOW) == {"changes": []}
    assert p.call("changes.list", service="nobody", **WINDOW) == {"changes": []}
    assert len(gh.requests) == asked  # nothing GitHub could answer, so nothing asked
    assert len(p.call("changes.list", kind="deploy", **WINDOW)["changes"]) == 5
    with pytest.raises(ToolArgumentError, match="kind"):
        p.call("changes.list", kind="rollout", **WINDOW)
    with pytest.raises(ToolArgumentError, match="ISO-8601"):
        p.call("changes.list", start="yesterday")


def test_pages_past_the_first_and_stops_before_old_items(gh: FakeGitHub, tmp_path: Path) -> None:
    for i in range(6):  # six more deployments in the window, an hour old history below them
        gh.add_deployment("org/pay", 100 + i, sha=f"{i}" * 40, ref=f"p{i}", created_at=f"2026-02-20T0{6 + i % 4}:1{i}:00Z",
                          statuses=[("success", f"2026-02-20T0{6 + i % 4}:1{i}:30Z")])
    for i in range(8):
        gh.add_deployment("org/pay", 50 + i, sha="9" * 40, ref=f"old{i}", created_at=f"2026-01-0{1 + i}T00:00:00Z",
                          statuses=[("success", f"2026-01-0{1 + i}T00:01:00Z")])
    p = provider(gh.url, tmp_path, per_page=2, lookback_s=3600)
    out = p.call("changes.list", service="payments", **WINDOW)
    deploys = [c for c in out["changes"] if "-deploy-" in c["id"]]
    assert sorted(c["details"]["version"] for c in deploys) == [f"p{i}" for i in range(6)]
    assert "truncated" not in out
    pages = [r for r in gh.requests if r.startswith("/repos/org/pay/deployments?")]
    assert "/repos/org/pay/deployments?page=2&per_page=2" in pages
    assert len(pages) == 4  # 6 new + the first old one (kept for previous_version), then no further pages
    oldest_in_window = min(deploys, key=lambda c: c["ts"])
    assert oldest_in_window["details"]["previous_version"] == "old7"


def test_page_cap_says_truncated(gh: FakeGitHub, tmp_path: Path) -> None:
    for i in range(5):
        gh.add_deployment("org/pay", 200 + i, sha="a" * 40, ref=f"r{i}", created_at=f"2026-02-20T08:0{i}:00Z",
                          statuses=[("success", f"2026-02-20T08:0{i}:30Z")])
    out = provider(gh.url, tmp_path, per_page=2, max_pages=1).call("changes.list", service="payments", **WINDOW)
    assert [c["details"]["version"] for c in out["changes"] if "-deploy-" in c["id"]] == ["r3", "r4"]
    assert "org/pay deployments: stopped after 1 pages of 2" in out["truncated"]


def test_one_failing_repository_is_named(gh: FakeGitHub, tmp_path: Path) -> None:
    gh.broken_repos["org/pay"] = 502
    out = provider(gh.url, tmp_path).call("changes.list", **WINDOW)
    assert {c["service"] for c in out["changes"]} == {"checkout"}
    assert len(out["missing_sources"]) == 1 and "org/pay" in out["missing_sources"][0]
    assert "HTTP 502" in out["missing_sources"][0]


@pytest.mark.parametrize(("mode", "expected"), [
    ("500", "HTTP 500"),
    ("garbage", "not GitHub's REST JSON"),
    ("rate_limit", "rate limited by GitHub .HTTP 403, the limit resets at"),
    ("secondary_limit", "rate limited by GitHub .HTTP 429, retry after 60s"),
])
def test_vendor_failures_say_what_to_do(gh: FakeGitHub, tmp_path: Path, mode: str, expected: str) -> None:
    gh.mode = mode
    with pytest.raises(SourceError, match=expected):
        provider(gh.url, tmp_path).call("changes.list", **WINDOW)


def test_bad_token(gh: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_GITHUB_TOKEN", "wrong")
    with pytest.raises(SourceError, match="HTTP 401 bad credentials; check token"):
        provider(gh.url, tmp_path).call("changes.list", **WINDOW)
    assert gh.requests == ["/repos/org/checkout"]  # the second repository is not asked in vain


def test_unreachable_and_slow(gh: FakeGitHub, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="cannot connect.*check url"):
        provider(closed_port_url(), tmp_path).call("changes.list", **WINDOW)
    gh.delay_s = 1.5
    with pytest.raises(SourceError, match="timed out after 1s; raise timeout_s"):
        provider(gh.url, tmp_path, timeout_s=1, repos={"checkout": "org/checkout"}).call("changes.list", **WINDOW)


def test_a_slow_api_is_cut_at_the_call_budget(gh: FakeGitHub, tmp_path: Path) -> None:
    gh.delay_s = 0.3  # each request answers in time, but the call makes many
    t0 = time.monotonic()
    out = provider(gh.url, tmp_path, timeout_s=1).call("changes.list", **WINDOW)
    assert time.monotonic() - t0 < 2.5
    assert "org/checkout deployments: statuses of the later ones not read, the call's time (timeout_s: 1) was " \
           "spent" in out["truncated"]
    assert "org/pay: not read" in out["truncated"]


def test_unknown_repository_and_check(gh: FakeGitHub, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="404 repository not found; check repos"):
        provider(gh.url, tmp_path, repos={"x": "org/nope"}).call("changes.list", **WINDOW)
    assert provider(gh.url, tmp_path).check() == "2 repositories reachable"


def test_settings_are_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_GITHUB_TOKEN", "gh-token")
    with pytest.raises(ConfigError, match="repos.checkout: expected owner/repo"):
        provider("http://127.0.0.1:1", tmp_path, repos={"checkout": "checkout"})
    with pytest.raises(ConfigError, match="include"):
        provider("http://127.0.0.1:1", tmp_path, include=["tags"])
    with pytest.raises(ConfigError, match="secrets are not written"):
        parse_sources({"changes": [{"kind": "github", "repos": {"a": "o/r"}, "token": "ghp_plain"}]})
