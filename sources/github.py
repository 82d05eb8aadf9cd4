"""Changes from GitHub (or GitHub Enterprise): deployments, releases and, when asked, merged pull requests.

``changes: [{kind: github, url: https://api.github.com, repos: {checkout: org/checkout}, token: {env: GITHUB_TOKEN}}]``

Per configured repository (service -> ``owner/repo``) it reads, through PyGithub:

* deployments (``GET /repos/{o}/{r}/deployments`` and each one's statuses): a deployment is a
  change at the time of its first ``success`` status; version = its ref, previous_version = the
  ref of the deployment before it in the same environment, commit = its sha. A deployment that
  never succeeded changed nothing and is left out.
* releases (``GET /repos/{o}/{r}/releases``): a published, non-draft, non-prerelease release is a
  deploy at its ``published_at``; version = its tag, previous_version = the release tag before it.
* merges (only with ``include: [..., merges]``): a pull request merged into the default branch is
  reported as a deploy at ``merged_at`` — right for teams that deploy every merge (continuous
  deployment), misleading otherwise, hence off by default.

Bounds: ``per_page`` (100) items per request, at most ``max_pages`` pages per list (a ``truncated``
note says when the cap cut a list short); paging stops once items are older than the window's
start minus ``lookback_s`` (kept so that previous_version is known). One repository failing does
not fail the others: it is named in the result's ``missing_sources``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from typing import Any

from sources.base import Provider, iso
from sources.changewindow import ChangeQuery, change_query, epoch, sort_changes
from sources.errors import SourceError
from store.errors import ConfigError

#: What ``include:`` may name; the first two are read by default.
PARTS = ("deployments", "releases", "merges")
DEFAULT_PARTS = ("deployments", "releases")


class GitHubProvider(Provider):
    """A ``changes`` entry of kind ``github``.

    Settings: ``url`` (default https://api.github.com; ``https://HOST/api/v3`` for GitHub Enterprise),
    ``repos`` (service -> ``owner/repo``, required), ``token`` (a secret reference), ``environment``
    (only deployments to it; default any), ``include`` (deployments, releases, merges), ``per_page``
    (100), ``max_pages`` (5), ``lookback_s`` (86400), ``timeout_s`` (10).

    Raises:
        ConfigError: a missing or malformed setting (named).
    """

    KIND = "github"
    CAPABILITIES = ("changes.list",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.base_url = (self.opt_str("url") or "https://api.github.com").rstrip("/")
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"{self.where}.url: {self.base_url!r} is not an http(s) URL; "
                              "e.g. url: https://api.github.com")
        self.repos: dict[str, str] = {}
        for service, full_name in self.opt_map("repos").items():
            if not isinstance(full_name, str) or full_name.count("/") != 1 or not all(full_name.split("/")):
                raise ConfigError(f"{self.where}.repos.{service}: expected owner/repo, got {full_name!r}")
            self.repos[str(service)] = full_name
        if not self.repos:
            raise ConfigError(f"{self.where}.repos: required for a github source, "
                              "e.g. repos: {checkout: org/checkout}")
        self.token = self.secret("token")
        self.environment = self.opt_str("environment")
        include = self.opt("include", list(DEFAULT_PARTS))
        if isinstance(include, str):
            include = [include]
        if not isinstance(include, list) or not include or any(p not in PARTS for p in include):
            raise ConfigError(f"{self.where}.include: expected a list of {', '.join(PARTS)}, got {include!r}")
        self.include = tuple(include)
        self.per_page = self.opt_int("per_page", 100)
        if self.per_page > 100:
            raise ConfigError(f"{self.where}.per_page: GitHub serves at most 100 per page, got {self.per_page}")
        self.max_pages = self.opt_int("max_pages", 5)
        self.lookback_s = self.opt_float("lookback_s", 86400.0)
        self._client: Any = None
        self._deadline = 0.0

    @property
    def label(self) -> str:
        return f"github {self.base_url}"

    # ------------------------------------------------------------ the client

    def _github(self) -> Any:
        """The PyGithub client: no retries (a rate limit is reported, not slept through), no throttle."""
        if self._client is None:
            from github import Auth, Github

            self._client = Github(
                base_url=self.base_url,
                auth=Auth.Token(self.token) if self.token else None,
                timeout=max(1, math.ceil(self.timeout_s)),
                per_page=self.per_page,
                retry=None,
                seconds_between_requests=None,
                seconds_between_writes=None,
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # ------------------------------------------------------------ answering

    def changes_list(self, service: Any = None, kind: Any = None, start: Any = None,
                     end: Any = None) -> dict[str, Any]:
        """``changes.list``: the configured repositories' deploys in ``[start, end)``, sorted by time.

        Returns:
            ``{changes: [...]}``, plus ``missing_sources`` naming repositories that failed while
            others answered, and ``truncated`` when a page cap cut a list short.

        Raises:
            ToolArgumentError: a bad argument.
            SourceError: every repository asked failed (the message says why and what to change).
        """
        q = change_query(self.sources.lookback_s, service, kind, start, end)
        repos = {s: r for s, r in self.repos.items() if q.service is None or s == q.service}
        if not repos or not q.wants_kind("deploy"):
            return {"changes": []}  # GitHub only knows deploys; nothing else to ask for
        changes: list[dict[str, Any]] = []
        notes: list[str] = []
        failed: list[str] = []
        # One call makes several requests (pages, statuses, repositories): none is begun after
        # timeout_s, so the whole answer stays within about twice timeout_s.
        self._deadline = time.monotonic() + self.timeout_s
        for svc, full_name in repos.items():
            if self._out_of_time():
                notes.append(f"{full_name}: not read, {self._late}")
                continue
            try:
                found, cut = self._repo_changes(svc, full_name, q)
            except _WholeSourceError:
                raise  # a bad token or a rate limit fails every repository alike: do not ask the rest
            except SourceError as exc:
                failed.append(str(exc))
                continue
            changes += found
            notes += cut
        if failed and len(failed) == len(repos):
            raise SourceError(failed[0] if len(failed) == 1 else "; ".join(failed))
        result: dict[str, Any] = {"changes": sort_changes(changes)}
        if failed:
            result["missing_sources"] = failed
        if notes:
            result["truncated"] = "; ".join(notes)
        return result

    def check(self) -> str:
        """Read each repository's description (one request each)."""
        gh = self._github()
        for full_name in self.repos.values():
            self._guard(full_name, lambda name=full_name: gh.get_repo(name).default_branch)
        return f"{len(self.repos)} repositories reachable"

    # ------------------------------------------------------------ one repository

    def _repo_changes(self, service: str, full_name: str, q: ChangeQuery) -> tuple[list[dict[str, Any]], list[str]]:
        """The deploys of one repository and its truncation notes.

        Raises:
            SourceError: GitHub refused or failed (named with the repository).
        """
        return self._guard(full_name, lambda: self._read_repo(service, full_name, q))  # type: ignore[no-any-return]

    def _guard(self, full_name: str, work: Any) -> Any:
        """Run ``work()`` and turn whatever PyGithub or requests raise into a SourceError naming the repo."""
        import requests
        from github import GithubException

        where = f"github {full_name} ({self.base_url})"
        try:
            return work()
        except GithubException as exc:
            raise _github_error(where, exc) from None
        except requests.Timeout:
            raise SourceError(f"{where}: timed out after {self.timeout_s:g}s; raise timeout_s: or check "
                              "that the API answers") from None
        except requests.ConnectionError as exc:
            raise SourceError(f"{where}: cannot connect ({str(exc)[:120]}); check url: and the network") from None
        except requests.RequestException as exc:
            raise SourceError(f"{where}: request failed ({type(exc).__name__}: {str(exc)[:120]})") from None
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            raise SourceError(f"{where}: answered something that is not GitHub's REST JSON ({type(exc).__name__}: "
                              f"{str(exc)[:80]}); check url: points at the API (https://api.github.com or "
                              "https://HOST/api/v3)") from None

    def _read_repo(self, service: str, full_name: str, q: ChangeQuery) -> tuple[list[dict[str, Any]], list[str]]:
        repo = self._github().get_repo(full_name)
        slug = full_name.replace("/", "-")
        changes: list[dict[str, Any]] = []
        notes: list[str] = []
        cutoff = q.start - self.lookback_s
        if "deployments" in self.include:
            kwargs = {"environment": self.environment} if self.environment else {}
            items, cut = self._bounded(repo.get_deployments(**kwargs), cutoff, lambda d: d.created_at)
            found, late = self._deployments(items, service, full_name, slug, q, cutoff)
            changes += found
            notes += [f"{full_name} deployments: {n}" for n in (cut, late) if n]
        if "releases" in self.include:
            items, cut = self._bounded(repo.get_releases(), cutoff, lambda r: r.created_at)
            changes += self._releases(items, service, slug, q)
            if cut:
                notes.append(f"{full_name} releases: {cut}")
        if "merges" in self.include:
            branch = repo.default_branch
            if not isinstance(branch, str) or not branch:
                raise ValueError("the repository has no default_branch")
            pulls = repo.get_pulls(state="closed", base=branch, sort="updated", direction="desc")
            items, cut = self._bounded(pulls, cutoff, lambda p: p.updated_at)
            changes += self._merges(items, service, slug, branch, q)
            if cut:
                notes.append(f"{full_name} merged pull requests: {cut}")
        return changes, notes

    def _bounded(self, listing: Iterable[Any], cutoff: float, when: Any) -> tuple[list[Any], str | None]:
        """Items of a newest-first listing down to the first one older than ``cutoff`` (kept, for
        previous versions), at most ``max_pages`` pages; returns them and a truncation note or None."""
        cap = self.per_page * self.max_pages
        items: list[Any] = []
        iterator: Iterator[Any] = iter(listing)
        for item in iterator:
            items.append(item)
            if _when(when(item)) < cutoff:
                return items, None
            if self._out_of_time():
                return items, f"older ones not read, {self._late}"
            if len(items) >= cap:
                return items, (f"stopped after {self.max_pages} pages of {self.per_page}; older ones are not "
                               "read (raise max_pages: or narrow the window)")
        return items, None

    def _deployments(self, items: list[Any], service: str, full_name: str, slug: str, q: ChangeQuery,
                     cutoff: float) -> tuple[list[dict[str, Any]], str | None]:
        out: list[dict[str, Any]] = []
        previous: dict[str, str | None] = {}
        for d in sorted(items, key=lambda d: (_when(d.created_at), d.id)):
            env = d.environment or ""
            version = d.ref or d.sha
            created = _when(d.created_at)
            if created < cutoff:  # read only to know what ran before: taken as having succeeded
                previous[env] = version
                continue
            if created >= q.end:
                continue
            if self._out_of_time():
                return out, f"statuses of the later ones not read, {self._late}"
            # The change happened when the deployment first succeeded, not when it was requested;
            # one that never succeeded changed nothing and is not what ran before the next.
            succeeded = [_when(s.created_at) for _, s in zip(range(self.per_page), d.get_statuses(), strict=False)
                         if s.state == "success"]
            if not succeeded:
                continue
            before, previous[env] = previous.get(env), version
            ts = min(succeeded)
            if not q.holds(ts):
                continue
            out.append({
                "id": f"gh-{slug}-deploy-{d.id}", "ts": iso(ts), "kind": "deploy", "service": service,
                "author": _login(d.creator),
                "summary": f"deploy {version} of {full_name} to {env or 'an environment'}"
                           + (f": {d.description}" if d.description else ""),
                "details": {"version": version, "previous_version": before, "commit": d.sha},
            })
        return out, None

    def _out_of_time(self) -> bool:
        return time.monotonic() > self._deadline

    @property
    def _late(self) -> str:
        return f"the call's time (timeout_s: {self.timeout_s:g}) was spent; raise timeout_s: or narrow the window"

    def _releases(self, items: list[Any], service: str, slug: str, q: ChangeQuery) -> list[dict[str, Any]]:
        out = []
        published = [r for r in items if not r.draft and not r.prerelease and r.published_at is not None]
        before: str | None = None
        for r in sorted(published, key=lambda r: (_when(r.published_at), r.id)):
            ts = _when(r.published_at)
            if q.holds(ts):
                title = f"release {r.tag_name}" + (f": {r.name}" if r.name and r.name != r.tag_name else "")
                out.append({
                    "id": f"gh-{slug}-release-{r.tag_name}", "ts": iso(ts), "kind": "deploy", "service": service,
                    "author": _login(r.author), "summary": title,
                    "details": {"version": r.tag_name, "previous_version": before, "commit": r.target_commitish},
                })
            before = r.tag_name
        return out

    def _merges(self, items: list[Any], service: str, slug: str, branch: str, q: ChangeQuery) -> list[dict[str, Any]]:
        out = []
        merged = [p for p in items if p.merged_at is not None]
        before: str | None = None
        for p in sorted(merged, key=lambda p: (_when(p.merged_at), p.number)):
            ts = _when(p.merged_at)
            sha = p.merge_commit_sha
            if q.holds(ts):
                out.append({
                    "id": f"gh-{slug}-pr-{p.number}", "ts": iso(ts), "kind": "deploy", "service": service,
                    "author": _login(p.user), "summary": f"merged #{p.number} into {branch}: {p.title}",
                    "details": {"version": sha[:7] if sha else None, "previous_version": before, "commit": sha},
                })
            before = sha[:7] if sha else before
        return out


def _when(value: Any) -> float:
    """Epoch seconds of a PyGithub timestamp; a missing one means the body was not GitHub's."""
    seconds = epoch(value)
    if seconds is None:
        raise ValueError(f"a timestamp is missing or malformed ({value!r})")
    return seconds


def _login(user: Any) -> str | None:
    login = getattr(user, "login", None) if user is not None else None
    return login if isinstance(login, str) else None


class _WholeSourceError(SourceError):
    """A failure of the account rather than of one repository (bad token, rate limit)."""


def _github_error(where: str, exc: Any) -> SourceError:
    """A SourceError for a GithubException: bad token, rate limit, not found, other HTTP status."""
    status = int(getattr(exc, "status", 0) or 0)
    headers = {str(k).lower(): str(v) for k, v in (getattr(exc, "headers", None) or {}).items()}
    data = getattr(exc, "data", None)
    message = str(data.get("message") or "") if isinstance(data, dict) else ""
    remaining = headers.get("x-ratelimit-remaining")
    if status in (403, 429) and (remaining == "0" or "retry-after" in headers or "rate limit" in message.lower()):
        if "retry-after" in headers:
            wait = f"retry after {headers['retry-after']}s"
        elif headers.get("x-ratelimit-reset", "").isdigit():
            wait = f"the limit resets at {iso(float(headers['x-ratelimit-reset']))}"
        else:
            wait = "wait for the limit to reset"
        return _WholeSourceError(f"{where}: rate limited by GitHub (HTTP {status}, {wait}); ask less often or use a "
                           "token with a higher limit (token:)")
    if status == 401:
        return _WholeSourceError(f"{where}: HTTP 401 bad credentials; check token: (a valid personal access or app "
                           "token in the referenced variable)")
    if status == 403:
        return SourceError(f"{where}: HTTP 403 forbidden ({message[:100]}); check token: can read this "
                           "repository's deployments, releases and pull requests")
    if status == 404:
        return SourceError(f"{where}: HTTP 404 repository not found; check repos: (owner/repo) and that the "
                           "token can see it")
    return SourceError(f"{where}: HTTP {status}: {message[:160] or 'no message'}")
