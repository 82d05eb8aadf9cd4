"""A stand-in GitHub REST API (v3) on loopback, for the real PyGithub client.

Written from GitHub's REST documentation (repos, deployments, deployment statuses, releases,
pulls, "Using pagination in the REST API", "Rate limits for the REST API"). It serves:

* ``GET /repos/{owner}/{repo}``                                  the repository (``default_branch``)
* ``GET /repos/{owner}/{repo}/deployments[?environment=]``       newest first
* ``GET /repos/{owner}/{repo}/deployments/{id}/statuses``        newest first
* ``GET /repos/{owner}/{repo}/releases``                         newest first
* ``GET /repos/{owner}/{repo}/pulls?state=&base=&sort=&direction=``

Lists page with ``per_page`` (default 30, at most 100) and ``page``, and say so in a ``Link``
header (``<...&page=2>; rel="next", <...>; rel="last"``) as GitHub does. Requests must carry
``Authorization: token X`` or ``Bearer X`` (401 ``Bad credentials`` otherwise). Test controls:
:attr:`mode` (``"500"``, ``"garbage"``, ``"rate_limit"``, ``"secondary_limit"``), :attr:`delay_s`
(a slow server), :attr:`broken_repos` (``{owner/repo: status}``); every path asked is recorded in
:attr:`requests`.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

from tests.fakes.loopback import LoopbackServer, QuietHandler

_REPO = re.compile(r"^/repos/([^/]+)/([^/]+)(/.*)?$")
_STATUSES = re.compile(r"^/deployments/(\d+)/statuses$")


def _user(login: str | None) -> dict[str, Any] | None:
    if login is None:
        return None
    return {"login": login, "id": abs(hash(login)) % 100000, "node_id": "MDQ6VXNlcjE=", "type": "User",
            "site_admin": False, "url": f"https://api.github.com/users/{login}"}


class FakeGitHub(LoopbackServer):
    """The server's state: repositories with their deployments, statuses, releases and pulls."""

    thread_name = "fake-github"

    def __init__(self, token: str | None = "gh-token") -> None:
        super().__init__()
        self.token = token
        self.repos: dict[str, dict[str, Any]] = {}
        self.requests: list[str] = []
        self.mode: str | None = None
        self.delay_s = 0.0
        self.broken_repos: dict[str, int] = {}
        self._lock = threading.Lock()

    # -- test controls ---------------------------------------------------------------------------
    def add_repo(self, full_name: str, default_branch: str = "main") -> dict[str, Any]:
        """Create a repository (empty lists)."""
        owner, name = full_name.split("/")
        repo = {"id": len(self.repos) + 1000, "name": name, "full_name": full_name, "owner": owner,
                "default_branch": default_branch, "deployments": [], "statuses": {}, "releases": [], "pulls": []}
        self.repos[full_name] = repo
        return repo

    def add_deployment(self, full_name: str, id: int, *, sha: str, ref: str, created_at: str,  # noqa: A002
                       environment: str = "production", creator: str = "deploy-bot", description: str = "",
                       statuses: list[tuple[str, str]] | None = None) -> None:
        """A deployment and its statuses (``[(state, created_at), ...]`` oldest first)."""
        repo = self.repos[full_name]
        repo["deployments"].append({"id": id, "sha": sha, "ref": ref, "task": "deploy", "payload": {},
                                    "original_environment": environment, "environment": environment,
                                    "description": description or None, "creator": _user(creator),
                                    "created_at": created_at, "updated_at": created_at,
                                    "transient_environment": False, "production_environment": True})
        repo["statuses"][id] = [{"id": id * 100 + i, "state": state, "creator": _user(creator), "description": "",
                                 "environment": environment, "target_url": "", "log_url": "",
                                 "environment_url": "", "created_at": ts, "updated_at": ts}
                                for i, (state, ts) in enumerate(statuses or [])]

    def add_release(self, full_name: str, id: int, *, tag: str, created_at: str,  # noqa: A002
                    published_at: str | None = None, author: str = "release-bot", name: str | None = None,
                    target: str = "main", draft: bool = False, prerelease: bool = False) -> None:
        """A release; ``published_at`` defaults to ``created_at`` (drafts have none)."""
        self.repos[full_name]["releases"].append({
            "id": id, "tag_name": tag, "target_commitish": target, "name": name if name is not None else tag,
            "body": "", "draft": draft, "prerelease": prerelease, "created_at": created_at,
            "published_at": None if draft else (published_at or created_at), "author": _user(author),
            "assets": []})

    def add_pull(self, full_name: str, number: int, *, title: str, updated_at: str, merged_at: str | None,
                 merge_commit_sha: str | None = None, user: str = "dev", base: str = "main",
                 state: str = "closed") -> None:
        """A pull request (closed; merged when ``merged_at`` is given)."""
        self.repos[full_name]["pulls"].append({
            "id": number + 500000, "number": number, "state": state, "title": title, "user": _user(user),
            "body": "", "created_at": updated_at, "updated_at": updated_at, "closed_at": merged_at or updated_at,
            "merged_at": merged_at, "merge_commit_sha": merge_commit_sha,
            "head": {"ref": f"feature-{number}", "sha": "f" * 40, "label": f"dev:feature-{number}"},
            "base": {"ref": base, "sha": "b" * 40, "label": f"org:{base}"}})

    # -- request handling (called by the handler) --------------------------------------------------
    def answer(self, handler: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        parsed = urlparse(handler.path)
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        with self._lock:
            self.requests.append(parsed.path + (f"?{parsed.query}" if parsed.query else ""))
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.token is not None:
            auth = handler.headers.get("Authorization", "")
            scheme, _, given = auth.partition(" ")
            if scheme.lower() not in ("token", "bearer") or given != self.token:
                return self._json(401, {"message": "Bad credentials",
                                        "documentation_url": "https://docs.github.com/rest", "status": "401"})
        if self.mode == "500":
            return self._json(500, {"message": "Server Error"})
        if self.mode == "garbage":
            return 200, {"Content-Type": "text/html"}, b"<html><body>Sign in to your proxy</body></html>"
        if self.mode == "rate_limit":
            reset = str(int(time.time()) + 1800)
            return self._json(403, {"message": "API rate limit exceeded for user ID 1.",
                                    "documentation_url": "https://docs.github.com/rest/overview/rate-limits"},
                              {"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "0",
                               "X-RateLimit-Used": "5000", "X-RateLimit-Reset": reset})
        if self.mode == "secondary_limit":
            return self._json(429, {"message": "You have exceeded a secondary rate limit."}, {"Retry-After": "60"})
        m = _REPO.match(parsed.path)
        repo = self.repos.get(f"{m.group(1)}/{m.group(2)}") if m else None
        if m is None or repo is None:
            return self._json(404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})
        if repo["full_name"] in self.broken_repos:
            return self._json(self.broken_repos[repo["full_name"]], {"message": "Server Error"})
        rest = m.group(3) or ""
        base = f"{self.url}/repos/{repo['full_name']}"
        if rest == "":
            return self._json(200, self._repo(repo, base))
        if rest == "/deployments":
            items = sorted(repo["deployments"], key=lambda d: (d["created_at"], d["id"]), reverse=True)
            if query.get("environment"):
                items = [d for d in items if d["environment"] == query["environment"]]
            for key in ("sha", "ref", "task"):
                if query.get(key):
                    items = [d for d in items if d[key] == query[key]]
            items = [{**d, "url": f"{base}/deployments/{d['id']}",
                      "statuses_url": f"{base}/deployments/{d['id']}/statuses", "repository_url": base}
                     for d in items]
            return self._page(parsed.path, query, items)
        st = _STATUSES.match(rest)
        if st:
            dep_id = int(st.group(1))
            if dep_id not in repo["statuses"]:
                return self._json(404, {"message": "Not Found"})
            items = [{**s, "url": f"{base}/deployments/{dep_id}/statuses/{s['id']}",
                      "deployment_url": f"{base}/deployments/{dep_id}", "repository_url": base}
                     for s in reversed(repo["statuses"][dep_id])]
            return self._page(parsed.path, query, items)
        if rest == "/releases":
            items = sorted(repo["releases"], key=lambda r: (r["created_at"], r["id"]), reverse=True)
            items = [{**r, "url": f"{base}/releases/{r['id']}", "html_url": f"https://github.com/{repo['full_name']}"
                      f"/releases/tag/{r['tag_name']}"} for r in items]
            return self._page(parsed.path, query, items)
        if rest == "/pulls":
            state = query.get("state", "open")
            items = [p for p in repo["pulls"] if state == "all" or p["state"] == state]
            if query.get("base"):
                items = [p for p in items if p["base"]["ref"] == query["base"]]
            sort_key = {"updated": "updated_at", "created": "created_at"}.get(query.get("sort", "created"),
                                                                               "created_at")
            descending = query.get("direction", "desc") == "desc"
            items = sorted(items, key=lambda p: (p[sort_key], p["number"]), reverse=descending)
            items = [{**p, "url": f"{base}/pulls/{p['number']}"} for p in items]
            return self._page(parsed.path, query, items)
        return self._json(404, {"message": "Not Found"})

    def _repo(self, repo: dict[str, Any], base: str) -> dict[str, Any]:
        return {"id": repo["id"], "node_id": "R_kgDO", "name": repo["name"], "full_name": repo["full_name"],
                "private": True, "owner": _user(repo["owner"]), "url": base,
                "html_url": f"https://github.com/{repo['full_name']}", "default_branch": repo["default_branch"],
                "deployments_url": f"{base}/deployments", "releases_url": f"{base}/releases{{/id}}",
                "pulls_url": f"{base}/pulls{{/number}}"}

    def _page(self, path: str, query: dict[str, str], items: list[dict[str, Any]]) -> tuple[int, dict[str, str], bytes]:
        per_page = max(1, min(100, int(query.get("per_page", "30"))))
        page = max(1, int(query.get("page", "1")))
        pages = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page: page * per_page]
        headers: dict[str, str] = {}
        links = []

        def link(n: int, rel: str) -> str:
            return f'<{self.url}{path}?{urlencode({**query, "per_page": per_page, "page": n})}>; rel="{rel}"'

        if page > 1:
            links += [link(page - 1, "prev"), link(1, "first")]
        if page < pages:
            links += [link(page + 1, "next"), link(pages, "last")]
        if links:
            headers["Link"] = ", ".join(links)
        return self._json(200, chunk, headers)

    @staticmethod
    def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        return status, {"Content-Type": "application/json; charset=utf-8", **(headers or {})}, json.dumps(body).encode()


class _Handler(QuietHandler):
    state: FakeGitHub

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.reply(*self.state.answer(self))


FakeGitHub.handler = _Handler
