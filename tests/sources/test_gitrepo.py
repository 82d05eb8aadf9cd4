"""The git changes provider over a real repository made in tmp_path (chosen commit and tag dates)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sandbox.errors import ToolArgumentError
from sources.errors import SourceError
from sources.gitrepo import GitProvider
from sources.registry import build_provider
from store.errors import ConfigError
from store.sources_file import parse_sources
from tests.fakes.git_repo import Repo

pytestmark = pytest.mark.integration

WINDOW = {"start": "2026-02-20T06:00:00Z", "end": "2026-02-20T10:00:00Z"}


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Repo, dict[str, str]]:
    r = Repo(tmp_path / "checkout")
    shas = {
        "init": r.commit({"app.py": "v0"}, "initial", "2026-02-19T09:00:00Z"),
    }
    r.tag("v1.0", "2026-02-19T09:30:00Z", "first release")
    shas["mig"] = r.commit({"db/migrations/0002_add_col.sql": "alter"}, "add coupon column", "2026-02-20T07:00:00Z",
                           who="bob")
    shas["cfg"] = r.commit({"config/pool.yaml": "size: 50"}, "raise pool size", "2026-02-20T07:30:00Z")
    shas["code"] = r.commit({"app.py": "v1"}, "fix rounding", "2026-02-20T08:00:00Z", who="carol")
    r.tag("v1.1", "2026-02-20T08:10:00Z", "rounding fix")  # annotated: the tagger's date counts
    shas["infra"] = r.commit({"deploy/main.tf": "x"}, "bigger nodes", "2026-02-20T09:00:00Z")
    r.tag("v1.2", "2026-02-20T09:00:00Z")  # lightweight: the commit's date counts
    return r, shas


def provider(path: Path, tmp_path: Path, **settings: Any) -> GitProvider:
    entry = {"kind": "git", "path": str(path), **settings}
    if "services" not in settings:
        entry.setdefault("service", "checkout")
    doc = parse_sources({"changes": [entry]}, base_dir=tmp_path)
    p = build_provider(doc.entries[0], doc)
    assert isinstance(p, GitProvider)
    return p


def test_tags_are_deploys_exactly(repo: tuple[Repo, dict[str, str]], tmp_path: Path) -> None:
    r, shas = repo
    out = provider(r.path, tmp_path).call("changes.list", **WINDOW)
    assert out == {"changes": [
        {"id": f"git-{shas['code'][:7]}-v1.1", "ts": "2026-02-20T08:10:00Z", "kind": "deploy", "service": "checkout",
         "author": "rel-bot", "summary": "tag v1.1: rounding fix",
         "details": {"version": "v1.1", "previous_version": "v1.0", "commit": shas["code"]}},
        {"id": f"git-{shas['infra'][:7]}-v1.2", "ts": "2026-02-20T09:00:00Z", "kind": "deploy", "service": "checkout",
         "author": "alice", "summary": "tag v1.2: bigger nodes",
         "details": {"version": "v1.2", "previous_version": "v1.1", "commit": shas["infra"]}},
    ]}


def test_commits_are_classified_by_what_they_touch(repo: tuple[Repo, dict[str, str]], tmp_path: Path) -> None:
    r, shas = repo
    p = provider(r.path, tmp_path, include=["commits"], infra_paths=["*.tf"])
    out = p.call("changes.list", **WINDOW)["changes"]
    assert out == [
        {"id": f"git-{shas['mig'][:7]}", "ts": "2026-02-20T07:00:00Z", "kind": "db_migration", "service": "checkout",
         "author": "bob", "summary": f"commit {shas['mig'][:7]}: add coupon column",
         "details": {"migration": "db/migrations/0002_add_col.sql", "table": None}},
        {"id": f"git-{shas['cfg'][:7]}", "ts": "2026-02-20T07:30:00Z", "kind": "config", "service": "checkout",
         "author": "alice", "summary": f"commit {shas['cfg'][:7]}: raise pool size",
         "details": {"key": "config/pool.yaml", "from": shas["mig"][:7], "to": shas["cfg"][:7]}},
        {"id": f"git-{shas['infra'][:7]}", "ts": "2026-02-20T09:00:00Z", "kind": "infra", "service": "checkout",
         "author": "alice", "summary": f"commit {shas['infra'][:7]}: bigger nodes",
         "details": {"resource": "deploy/main.tf", "action": f"changed in {shas['infra'][:7]}"}},
    ]  # the code-only commit is not a production change by itself
    assert [c["kind"] for c in p.call("changes.list", kind="config", **WINDOW)["changes"]] == ["config"]


def test_commits_are_deploys_when_configured(repo: tuple[Repo, dict[str, str]], tmp_path: Path) -> None:
    r, shas = repo
    out = provider(r.path, tmp_path, commits_are_deploys=True).call("changes.list", **WINDOW)["changes"]
    commits = [c for c in out if c["id"].count("-") == 1]
    assert [c["details"] for c in commits] == [
        {"version": shas[a][:7], "previous_version": shas[b][:7], "commit": shas[a]}
        for a, b in (("mig", "init"), ("cfg", "mig"), ("code", "cfg"), ("infra", "code"))]
    assert all(c["kind"] == "deploy" for c in out) and len(out) == 6  # 4 commits + 2 tags
    assert [c["ts"] for c in out] == sorted(c["ts"] for c in out)


def test_window_is_half_open(repo: tuple[Repo, dict[str, str]], tmp_path: Path) -> None:
    r, _ = repo
    p = provider(r.path, tmp_path, commits_are_deploys=True)
    out = p.call("changes.list", start="2026-02-20T07:30:00Z", end="2026-02-20T08:10:00Z")["changes"]
    assert [c["summary"].split(":")[1].strip() for c in out] == ["raise pool size", "fix rounding"]


def test_service_filter_and_monorepo_mapping(tmp_path: Path) -> None:
    r = Repo(tmp_path / "mono")
    r.commit({"services/checkout/app.py": "1", "services/payments/app.py": "1"}, "both", "2026-02-19T00:00:00Z")
    r.tag("checkout-v1", "2026-02-19T01:00:00Z", "c1")
    r.tag("payments-v1", "2026-02-19T01:00:00Z", "p1")
    a = r.commit({"services/payments/config/limits.yaml": "2"}, "payments limits", "2026-02-20T07:00:00Z")
    r.tag("payments-v2", "2026-02-20T07:10:00Z", "p2")
    b = r.commit({"services/checkout/app.py": "2"}, "checkout fix", "2026-02-20T08:00:00Z")
    r.tag("release-42", "2026-02-20T08:05:00Z", "weekly")  # named after no service: its files decide
    p = provider(r.path, tmp_path, services={"services/checkout/": "checkout", "services/payments/": "payments"},
                 include=["tags", "commits"])
    pay = p.call("changes.list", service="payments", **WINDOW)["changes"]
    assert [(c["id"], c["kind"]) for c in pay] == [(f"git-{a[:7]}-payments", "config"),
                                                  (f"git-{a[:7]}-payments-v2", "deploy")]
    assert pay[1]["details"]["previous_version"] == "payments-v1"
    chk = p.call("changes.list", service="checkout", **WINDOW)["changes"]
    assert [(c["id"], c["service"]) for c in chk] == [(f"git-{b[:7]}-release-42", "checkout")]
    assert p.call("changes.list", service="search", **WINDOW) == {"changes": []}


def test_commit_cap_says_truncated(repo: tuple[Repo, dict[str, str]], tmp_path: Path) -> None:
    r, _ = repo
    out = provider(r.path, tmp_path, commits_are_deploys=True, max_commits=2).call("changes.list", **WINDOW)
    assert len([c for c in out["changes"] if c["id"].count("-") == 1]) == 2
    assert "only the newest 2 commits of HEAD were read; raise max_commits" in out["truncated"]


def test_missing_clone_bad_branch_and_bad_args(repo: tuple[Repo, dict[str, str]], tmp_path: Path) -> None:
    r, _ = repo
    with pytest.raises(SourceError, match="no such directory; check changes\\[0\\].path"):
        provider(tmp_path / "nowhere", tmp_path).call("changes.list", **WINDOW)
    (tmp_path / "plain").mkdir()
    with pytest.raises(SourceError, match="not a git repository"):
        provider(tmp_path / "plain", tmp_path).call("changes.list", **WINDOW)
    with pytest.raises(SourceError, match="branch 'prod' not found; check changes\\[0\\].branch"):
        provider(r.path, tmp_path, branch="prod", include=["commits"]).call("changes.list", **WINDOW)
    with pytest.raises(ToolArgumentError, match="start"):
        provider(r.path, tmp_path).call("changes.list", start="2026-02-21T00:00:00Z", end="2026-02-20T00:00:00Z")
    assert provider(r.path, tmp_path).check() == f"HEAD at {r.git('rev-parse', 'HEAD')[:7]}, 3 tags"


def fake_git(tmp_path: Path, body: str) -> str:
    script = tmp_path / "git-standin"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(0o755)
    return str(script)


def test_slow_garbage_and_missing_git(repo: tuple[Repo, dict[str, str]], tmp_path: Path) -> None:
    r, _ = repo
    slow = fake_git(tmp_path, "exec sleep 5")
    with pytest.raises(SourceError, match="timed out after 0.5s; raise timeout_s"):
        provider(r.path, tmp_path, git=slow, timeout_s=0.5).call("changes.list", **WINDOW)
    garbage = fake_git(tmp_path, "echo '<html>not git</html>'")
    with pytest.raises(SourceError, match="answered something unexpected"):
        provider(r.path, tmp_path, git=garbage).call("changes.list", **WINDOW)
    with pytest.raises(SourceError, match="is not installed"):
        provider(r.path, tmp_path, git=str(tmp_path / "no-git")).call("changes.list", **WINDOW)


def test_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="service: required"):
        build_provider(*_one({"kind": "git", "path": str(tmp_path)}, tmp_path))
    with pytest.raises(ConfigError, match="include"):
        provider(tmp_path, tmp_path, include=["releases"])


def _one(entry: dict[str, Any], tmp_path: Path) -> tuple[Any, Any]:
    doc = parse_sources({"changes": [entry]}, base_dir=tmp_path)
    return doc.entries[0], doc
