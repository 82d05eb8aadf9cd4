"""Changes from a local git clone: release tags and, when asked, the branch's commits.

``changes: [{kind: git, path: /srv/checkout-repo, service: checkout}]``, or for a monorepo
``services: {services/checkout/: checkout, services/payments/: payments}`` (path prefix -> service).

* Tags are deploys: version = the tag, previous_version = the tag before it (of the same service
  in a monorepo), commit = the tagged commit; the time is the tag's date (the tagger's date for an
  annotated tag, the commit's for a lightweight one).
* Commits of ``branch`` (default: the clone's HEAD), first parent only so a merge counts once:
  with ``commits_are_deploys: true`` (continuous deployment) every commit is a deploy; otherwise,
  with ``include: [tags, commits]``, only commits that change production without a deploy are
  reported — those touching migration files (db_migration), infrastructure files (infra) or
  configuration files (config); a code-only commit is not a production change until deployed.

Everything runs through the ``git`` CLI with a timeout (``timeout_s``); at most ``max_commits``
commits are read (a ``truncated`` note says when more were in the window).
"""

from __future__ import annotations

import fnmatch
import os
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

from sources.base import Provider, iso
from sources.changewindow import ChangeQuery, change_query, sort_changes
from sources.errors import SourceError
from store.errors import ConfigError

_FS, _RS = "\x1f", "\x1e"

#: What ``include:`` may name.
PARTS = ("tags", "commits")

#: File patterns that make a commit a production change by itself (``fnmatch`` on the repo path).
DEFAULT_MIGRATIONS = ["*migrations/*", "*migrate/*", "*.sql", "*alembic/versions/*"]
DEFAULT_INFRA = ["*.tf", "*.tfvars", "*helm/*", "*charts/*", "*k8s/*", "*kubernetes/*", "*Dockerfile"]
DEFAULT_CONFIG = ["*config/*", "*.env", "*.properties", "*settings.yaml", "*settings.yml", "*application.yml",
                  "*application.yaml"]


@dataclass
class _Commit:
    sha: str
    parents: list[str]
    author: str
    ts: float
    subject: str
    files: list[str] = field(default_factory=list)


class GitProvider(Provider):
    """A ``changes`` entry of kind ``git`` over a local clone.

    Settings: ``path`` (required), ``service`` or ``services`` (path prefix -> service), ``branch``
    (default HEAD), ``include`` (``[tags]``), ``commits_are_deploys`` (false), ``max_commits`` (500),
    ``migration_paths``/``infra_paths``/``config_paths`` (fnmatch patterns), ``git`` (the binary,
    default ``git``), ``timeout_s`` (10).

    Raises:
        ConfigError: a missing or malformed setting (named).
    """

    KIND = "git"
    CAPABILITIES = ("changes.list",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.path = self.sources.resolve_path(self.opt_str("path", required=True, example="/srv/checkout-repo") or "")
        self.service = self.opt_str("service")
        self.services = {str(k): str(v) for k, v in self.opt_map("services").items()}
        if self.service and self.services:
            raise ConfigError(f"{self.where}: give service: (the whole repo) or services: (path prefix -> "
                              "service), not both")
        if not self.service and not self.services:
            raise ConfigError(f"{self.where}.service: required for a git source (or services: {{path/prefix: "
                              "service}}), e.g. service: checkout")
        self.branch = self.opt_str("branch") or "HEAD"
        self.commits_are_deploys = self.opt("commits_are_deploys", False)
        if not isinstance(self.commits_are_deploys, bool):
            raise ConfigError(f"{self.where}.commits_are_deploys: expected true or false")
        include = self.opt("include", ["tags", "commits"] if self.commits_are_deploys else ["tags"])
        if isinstance(include, str):
            include = [include]
        if not isinstance(include, list) or not include or any(p not in PARTS for p in include):
            raise ConfigError(f"{self.where}.include: expected a list of {', '.join(PARTS)}, got {include!r}")
        self.include = tuple(include)
        if self.commits_are_deploys and "commits" not in self.include:
            self.include += ("commits",)
        self.max_commits = self.opt_int("max_commits", 500)
        self.patterns = {"db_migration": self._patterns("migration_paths", DEFAULT_MIGRATIONS),
                         "infra": self._patterns("infra_paths", DEFAULT_INFRA),
                         "config": self._patterns("config_paths", DEFAULT_CONFIG)}
        self.git = self.opt_str("git") or "git"
        self._deadline: float | None = None

    def _patterns(self, key: str, default: list[str]) -> list[str]:
        value = self.opt(key, default)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{self.where}.{key}: expected a list of file patterns like {default[0]!r}")
        return list(value)

    @property
    def label(self) -> str:
        return f"git {self.path}"

    # ------------------------------------------------------------ answering

    def changes_list(self, service: Any = None, kind: Any = None, start: Any = None,
                     end: Any = None) -> dict[str, Any]:
        """``changes.list``: tags and (when configured) commits in ``[start, end)``, sorted by time.

        Raises:
            ToolArgumentError: a bad argument.
            SourceError: the clone cannot be read (the message says what to change).
        """
        q = change_query(self.sources.lookback_s, service, kind, start, end)
        # the git commands of one call share its timeout_s
        self._deadline = time.monotonic() + self.timeout_s
        known = {self.service} if self.service else set(self.services.values())
        if q.service is not None and q.service not in known:
            return {"changes": []}
        changes: list[dict[str, Any]] = []
        result: dict[str, Any] = {}
        if "tags" in self.include and q.wants_kind("deploy"):
            changes += self._tags(q)
        commit_kinds = ("deploy",) if self.commits_are_deploys else ("db_migration", "infra", "config")
        if "commits" in self.include and any(q.wants_kind(k) for k in commit_kinds):
            found, truncated = self._commits(q)
            changes += found
            if truncated:
                result["truncated"] = truncated
        return {"changes": sort_changes(changes), **result}

    def check(self) -> str:
        """Resolve the branch and count the tags."""
        self._deadline = time.monotonic() + self.timeout_s
        head = self._run(["rev-parse", "--verify", "--quiet", f"{self.branch}^{{commit}}"]).strip()
        tags = [t for t in self._run(["tag", "--list"]).splitlines() if t]
        return f"{self.branch} at {head[:7]}, {len(tags)} tags"

    # ------------------------------------------------------------ git

    def _run(self, args: list[str]) -> str:
        """Run ``git -C path args``; returns stdout.

        Raises:
            SourceError: git is missing, timed out, or failed (its message, and what to check).
        """
        if not self.path.is_dir():
            raise SourceError(f"git {self.path}: no such directory; check {self.where}.path")
        command = [self.git, "-c", "core.quotepath=off", "-C", str(self.path), *args]
        budget = self.timeout_s if self._deadline is None else max(0.05, self._deadline - time.monotonic())
        try:
            done = subprocess.run(command, capture_output=True, timeout=budget, check=False,
                                  env=_git_env())
        except FileNotFoundError:
            raise SourceError(f"git {self.path}: the git program {self.git!r} is not installed; install git or "
                              "set git: to its path") from None
        except subprocess.TimeoutExpired:
            raise SourceError(f"git {self.path}: git {args[0]} timed out after {self.timeout_s:g}s; raise "
                              "timeout_s: or narrow the window") from None
        if done.returncode != 0:
            err = done.stderr.decode("utf-8", "replace").strip().splitlines()
            reason = err[-1] if err else f"exit status {done.returncode}"
            if "dubious ownership" in reason:
                raise SourceError(f"git {self.path}: git refuses a clone owned by another user; run git config "
                                  f"--global --add safe.directory {self.path} as the service's user")
            if "not a git repository" in reason:
                raise SourceError(f"git {self.path}: not a git repository; check {self.where}.path points at a clone")
            if "unknown revision" in reason or "bad revision" in reason or "ambiguous argument" in reason:
                raise SourceError(f"git {self.path}: branch {self.branch!r} not found; check {self.where}.branch")
            raise SourceError(f"git {self.path}: git {args[0]} failed ({reason[:160]})")
        return done.stdout.decode("utf-8", "replace")

    def _tags(self, q: ChangeQuery) -> list[dict[str, Any]]:
        fmt = _FS.join(["%(refname:short)", "%(objectname)", "%(*objectname)", "%(creatordate:unix)",
                        "%(taggername)", "%(authorname)", "%(*authorname)", "%(subject)"]) + _RS
        text = self._run(["for-each-ref", "refs/tags", "--sort=creatordate", f"--format={fmt}"])
        tags = []
        for record in text.split(_RS):
            record = record.strip("\n")
            if not record:
                continue
            fields = record.split(_FS)
            if len(fields) != 8 or not fields[3].lstrip("-").isdigit():
                raise SourceError(f"git {self.path}: git for-each-ref answered something unexpected "
                                  f"({record[:80]!r}); check git: is the git program")
            ref, obj, peeled, when, tagger, tag_author, peeled_author, text = fields
            tags.append((float(when), ref, peeled or obj, tagger or peeled_author or tag_author or None, text))
        tags.sort(key=lambda t: (t[0], t[1]))
        out: list[dict[str, Any]] = []
        previous: dict[str | None, str] = {}
        last_sha: str | None = None
        for ts, name, sha, author, subject in tags:
            owners = self._tag_services(name, sha, last_sha, q, ts)
            last_sha = sha
            for svc in owners:
                before = previous.get(svc)
                previous[svc] = name
                if not q.holds(ts) or not q.wants(svc, "deploy"):
                    continue
                ident = f"git-{sha[:7]}-{_slug(name)}" + (f"-{svc}" if self.services and len(owners) > 1 else "")
                out.append({"id": ident, "ts": iso(ts), "kind": "deploy", "service": svc, "author": author,
                            "summary": f"tag {name}" + (f": {subject}" if subject and subject != name else ""),
                            "details": {"version": name, "previous_version": before, "commit": sha}})
        return out

    def _tag_services(self, name: str, sha: str, last_sha: str | None, q: ChangeQuery,
                      ts: float) -> list[str | None]:
        """Which services a tag releases: the one service; in a monorepo, the service the tag is named
        after (``checkout-v1.2``, ``checkout/v1.2``, ``checkout@1.2``), else those whose files changed
        since the tag before it, whatever its name (asked of git only for tags inside the window)."""
        if self.service:
            return [self.service]
        for svc in sorted(set(self.services.values()), key=len, reverse=True):
            if any(name.startswith(svc + sep) for sep in ("-", "/", "@", "_")):
                return [svc]
        if not q.holds(ts):
            return [None]
        args = ["diff", "--name-only", last_sha, sha] if last_sha else ["ls-tree", "-r", "--name-only", sha]
        files = [f for f in self._run(args).splitlines() if f]
        found = sorted({s for f in files if (s := self._service_of(f))})
        return list(found) or [None]

    def _service_of(self, path: str) -> str | None:
        best = None
        for prefix, svc in self.services.items():
            if path.startswith(prefix) and (best is None or len(prefix) > len(best[0])):
                best = (prefix, svc)
        return best[1] if best else None

    def _commits(self, q: ChangeQuery) -> tuple[list[dict[str, Any]], str | None]:
        fmt = _RS + _FS.join(["%H", "%P", "%an", "%ct", "%s"])
        args = ["log", self.branch, "--first-parent", "--diff-merges=first-parent", "--name-only",
                f"--max-count={self.max_commits + 1}", f"--since=@{int(q.start)}", f"--until=@{int(q.end) + 1}",
                f"--format={fmt}", "--"]
        commits = []
        for record in self._run(args).split(_RS)[1:]:
            head, _, names = record.partition("\n")
            fields = head.split(_FS)
            if len(fields) != 5 or not fields[3].isdigit():
                raise SourceError(f"git {self.path}: git log answered something unexpected ({head[:80]!r}); "
                                  "check git: is the git program")
            sha, parents, author, ts, subject = fields
            commits.append(_Commit(sha, parents.split(), author, float(ts), subject,
                                   [n for n in names.splitlines() if n]))
        truncated = None
        if len(commits) > self.max_commits:
            commits = commits[: self.max_commits]
            truncated = (f"git {self.path}: only the newest {self.max_commits} commits of {self.branch} were read; "
                         "raise max_commits: or narrow the window")
        out: list[dict[str, Any]] = []
        for c in commits:
            if not q.holds(c.ts):
                continue
            for svc in self._commit_services(c):
                out += self._commit_changes(c, svc, q)
        return out, truncated

    def _commit_services(self, c: _Commit) -> list[str | None]:
        if self.service:
            return [self.service]
        found = sorted({s for f in c.files if (s := self._service_of(f))})
        return list(found) or [None]

    def _commit_changes(self, c: _Commit, svc: str | None, q: ChangeQuery) -> list[dict[str, Any]]:
        files = [f for f in c.files if self.service or svc is None or self._service_of(f) == svc]
        suffix = f"-{svc}" if self.services and svc else ""
        parent = c.parents[0][:7] if c.parents else None
        if self.commits_are_deploys:
            if not q.wants(svc, "deploy"):
                return []
            return [_change(f"git-{c.sha[:7]}{suffix}", c, "deploy", svc, f"commit {c.sha[:7]}: {c.subject}",
                            {"version": c.sha[:7], "previous_version": parent, "commit": c.sha})]
        for kind in ("db_migration", "infra", "config"):
            touched = [f for f in files if any(fnmatch.fnmatch(f, p) for p in self.patterns[kind])]
            if not touched:
                continue
            if not q.wants(svc, kind):
                return []
            if kind == "db_migration":
                details: dict[str, Any] = {"migration": touched[0], "table": None}
            elif kind == "infra":
                details = {"resource": touched[0], "action": f"changed in {c.sha[:7]}"}
            else:
                details = {"key": touched[0], "from": parent, "to": c.sha[:7]}
            summary = f"commit {c.sha[:7]}: {c.subject}" + (f" ({len(touched)} files)" if len(touched) > 1 else "")
            return [_change(f"git-{c.sha[:7]}{suffix}", c, kind, svc, summary, details)]
        return []


def _change(ident: str, c: _Commit, kind: str, svc: str | None, summary: str,
            details: dict[str, Any]) -> dict[str, Any]:
    return {"id": ident, "ts": iso(c.ts), "kind": kind, "service": svc, "author": c.author or None,
            "summary": summary, "details": details}


def _git_env() -> dict[str, str]:
    """Our environment without variables that would point git elsewhere than ``path``; never prompt."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_NAMESPACE")}
    return {**env, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "._-" else "-" for ch in name)

