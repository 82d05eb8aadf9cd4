"""Tickets from Jira (REST API v2, through the `jira` library): ``tickets: [{kind: jira}]``.

By default the entry uses the product's own Jira settings from the environment — JIRA_URL,
JIRA_USER, JIRA_API_TOKEN — so one line is enough; ``url:``, ``user:`` and ``token: {env: X}``
override them. ``tickets.get`` reads one issue; ``tickets.search`` writes a JQL query from the
caller's text and labels (plus the entry's ``projects:``) in which everything the caller gave is
quoted as data, and pages through Jira Cloud's ``/search/jql`` (``nextPageToken``) or Jira
Server's ``/search`` (``startAt``) up to ``max_results`` issues.

Jira's JSON stays in this module: issues become the world format's ticket dict
``{key, ts, summary, description, labels, components, status, reporter, priority, url, source}``.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

from publishers.jira import ticket_from_jira
from sandbox.args import opt_str, opt_str_list
from sandbox.errors import NotFoundError, ToolArgumentError
from sources.base import Provider
from sources.errors import SourceError
from store.errors import ConfigError

#: The issue fields a ticket is made of (asking for fewer keeps search pages small).
FIELDS = ["summary", "description", "labels", "components", "status", "reporter", "created", "priority"]
DEFAULT_MAX_RESULTS = 50
#: Jira's largest page for searches.
PAGE_SIZE = 100
_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*-[0-9]+$")
#: Characters Lucene (behind ``text ~``) reads as syntax; the caller's words are searched, not parsed.
_LUCENE = re.compile(r'[+\-&|!(){}\[\]^~*?\\:"/]')


class JiraProvider(Provider):
    """``tickets: [{kind: jira}]``.

    Settings: ``url`` (default JIRA_URL), ``user`` (default JIRA_USER), ``token`` (a reference such
    as ``{env: JIRA_API_TOKEN}``; default the JIRA_API_TOKEN variable), ``projects`` (project keys
    that scope searches), ``max_results`` (default 50), ``api`` (``auto``: ask serverInfo once;
    ``cloud``: /search/jql; ``server``: /search), ``timeout_s``.

    Raises:
        ConfigError: no URL, user or token; a malformed setting (named).
    """

    KIND = "jira"
    CAPABILITIES = ("tickets.get", "tickets.search")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        url = self.opt_str("url") or os.environ.get("JIRA_URL") or ""
        if not url:
            raise ConfigError(f"{self.where}.url: no Jira URL; export JIRA_URL or set url: https://acme.atlassian.net")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"{self.where}.url: {url!r} is not an http(s) URL; e.g. https://acme.atlassian.net")
        self.base = url.rstrip("/")
        self.user = self.opt_str("user") or os.environ.get("JIRA_USER") or ""
        if not self.user:
            raise ConfigError(f"{self.where}.user: no Jira user; export JIRA_USER or set user: bot@example.com")
        token = self.secret("token") if self.settings.get("token") is not None else os.environ.get("JIRA_API_TOKEN")
        if not token:
            raise ConfigError(f"{self.where}.token: no Jira API token; export JIRA_API_TOKEN or set "
                              "token: {env: VARIABLE}")
        self._token = token
        projects = self.opt("projects") or []
        if isinstance(projects, str):
            projects = [projects]
        if not isinstance(projects, list) or not all(isinstance(p, str) and p for p in projects):
            raise ConfigError(f"{self.where}.projects: expected a list of project keys, e.g. [PAY, OPS]")
        self.projects: list[str] = list(projects)
        self.max_results = self.opt_int("max_results", DEFAULT_MAX_RESULTS)
        self.api = self.opt_str("api", "auto") or "auto"
        if self.api not in ("auto", "cloud", "server"):
            raise ConfigError(f"{self.where}.api: {self.api!r} unknown; use auto, cloud or server")
        self._client: Any = None
        self._cloud: bool | None = {"cloud": True, "server": False}.get(self.api)

    @property
    def label(self) -> str:
        name = self.entry.name if self.entry.name != self.entry.kind else "jira"
        return f"{name} {self.base}"

    # ------------------------------------------------------------ the client

    def _jira(self) -> Any:
        if self._client is None:
            from jira import JIRA

            # No server probe at construction and no retries of its own: each call is one bounded request.
            self._client = JIRA(server=self.base, basic_auth=(self.user, self._token), get_server_info=False,
                                max_retries=0, timeout=self.timeout_s)
        return self._client

    def _run(self, what: str, fn: Any, *args: Any, missing_ok: bool = False, **kwargs: Any) -> Any:
        """Call the jira library; its failures become SourceError (with ``missing_ok``, a 404 passes out as
        JIRAError for the caller to turn into NotFoundError).

        Raises:
            SourceError: unreachable, slow, refused, rate limited, an HTTP error, or a body that is not JSON.
        """
        import requests
        from jira.exceptions import JIRAError

        try:
            return fn(*args, **kwargs)
        except JIRAError as exc:
            if exc.status_code == 404 and missing_ok:
                raise
            raise self._jira_error(what, exc) from None
        except requests.Timeout:
            raise SourceError(f"{self.label}: {what} timed out after {self.timeout_s:g} s; raise "
                              f"{self.where}.timeout_s or check that Jira answers") from None
        except requests.ConnectionError as exc:
            reason = str(exc).split("]")[-1].strip(" ')\"")[:120] or type(exc).__name__
            raise SourceError(f"{self.label}: cannot connect ({reason}); check JIRA_URL / {self.where}.url") from None
        except (requests.RequestException, ValueError) as exc:
            raise SourceError(f"{self.label}: {what} answered something that is not Jira's JSON "
                              f"({type(exc).__name__}); check that JIRA_URL / {self.where}.url is the Jira "
                              "base URL") from None

    def _jira_error(self, what: str, exc: Any) -> SourceError:
        status = exc.status_code
        text = _jira_message(exc)
        if status == 401 or status == 403:
            return SourceError(f"{self.label}: {what}: HTTP {status} (Jira refused {self.user}); check JIRA_USER / "
                               "JIRA_API_TOKEN (or the entry's user:/token:)")
        if status == 429:
            after = exc.response.headers.get("Retry-After") if exc.response is not None else None
            when = f"retry after {after} s" if after else "retry in a minute"
            return SourceError(f"{self.label}: {what}: rate limited by Jira; {when}")
        if status == 400:
            return SourceError(f"{self.label}: {what}: Jira rejected the query: {text}")
        if status is None or status == 404:
            return SourceError(f"{self.label}: {what}: {f'HTTP {status}: ' if status else ''}{text}; check JIRA_URL / "
                               f"{self.where}.url is the Jira base URL")
        return SourceError(f"{self.label}: {what}: HTTP {status}: {text}")

    def _is_cloud(self) -> bool:
        """Whether searches go to Cloud's /search/jql (asked from serverInfo once when ``api: auto``)."""
        if self._cloud is None:
            info = self._run("serverInfo", self._jira().server_info)
            self._cloud = isinstance(info, dict) and info.get("deploymentType") == "Cloud"
        # The library picks its search endpoint (and allows its Cloud-only calls) from this attribute.
        self._jira().deploymentType = "Cloud" if self._cloud else "Server"
        return self._cloud

    # ------------------------------------------------------------ capabilities

    def tickets_get(self, key: Any = None) -> dict[str, Any]:
        """One issue as a ticket dict.

        Raises:
            ToolArgumentError: no key. NotFoundError: Jira has no such issue (or hides it from us).
            SourceError: Jira failed (401: check JIRA_USER / JIRA_API_TOKEN).
        """
        from jira.exceptions import JIRAError

        wanted = opt_str("tickets.get", "key", key)
        if wanted is None:
            raise ToolArgumentError("tickets.get: 'key' is required; pass a ticket key such as PAY-123")
        if not _KEY.match(wanted):
            # The key goes into the URL path: anything but PROJECT-123 is not ours to ask for.
            raise NotFoundError(f"tickets.get: {wanted!r} is not a Jira issue key (PROJECT-123)")
        try:
            issue = self._run(f"issue {wanted}", self._jira().issue, wanted.upper(), fields=",".join(FIELDS),
                              missing_ok=True)
        except JIRAError:
            raise NotFoundError(f"tickets.get: {self.label} has no issue {wanted!r} (or {self.user} may not see "
                                "it); find keys with tickets.search") from None
        return self.ticket(issue.raw)

    def tickets_search(self, text: Any = None, labels: Any = None) -> dict[str, Any]:
        """Issues matching ``text`` (Jira's full-text search) and carrying every label in ``labels``.

        Returns:
            ``{tickets: [...]}`` newest first, plus ``truncated`` when more than ``max_results`` matched.

        Raises:
            ToolArgumentError: a bad argument. SourceError: Jira failed or rejected the query.
        """
        cap = "tickets.search"
        needle = opt_str(cap, "text", text)
        wanted = opt_str_list(cap, "labels", labels) or []
        words = _LUCENE.sub(" ", needle or "").split()
        if needle is not None and not words:
            return {"tickets": []}  # punctuation only: nothing Jira could search for
        jql = build_jql(text=" ".join(words).lower() if words else None, labels=wanted, projects=self.projects)
        raws, cut = self._search(jql)
        result: dict[str, Any] = {"tickets": [self.ticket(r) for r in raws]}
        if cut == "cap":
            result["truncated"] = (f"more than {self.max_results} issues matched, the newest {self.max_results} "
                                   f"returned (raise {self.where}.max_results or search more narrowly)")
        elif cut == "late":
            result["truncated"] = (f"stopped paging after {self.timeout_s:g} s with the newest {len(raws)} issues "
                                   f"(raise {self.where}.timeout_s or search more narrowly)")
        return result

    def _search(self, jql: str) -> tuple[list[dict[str, Any]], str | None]:
        """Up to ``max_results`` raw issues for ``jql``, and why more were left: ``cap``, ``late`` or None."""
        client = self._jira()
        cloud = self._is_cloud()
        out: list[dict[str, Any]] = []
        token: str | None = None
        # Pages share one budget so the whole search stays within the gateway's bound.
        deadline = time.monotonic() + self.timeout_s
        while True:
            if out and time.monotonic() >= deadline:
                return out[: self.max_results], "late"
            size = min(PAGE_SIZE, self.max_results - len(out))
            if cloud:
                page = self._run("search", client.enhanced_search_issues, jql, nextPageToken=token, maxResults=size,
                                 fields=list(FIELDS), json_result=True)
            else:
                page = self._run("search", client.search_issues, jql, startAt=len(out), maxResults=size,
                                 fields=list(FIELDS), json_result=True)
            issues = page.get("issues") if isinstance(page, dict) else None
            if not isinstance(issues, list):
                raise SourceError(f"{self.label}: search answered no issues list; check that JIRA_URL / "
                                  f"{self.where}.url is the Jira base URL")
            out += [i for i in issues if isinstance(i, dict)]
            if cloud:
                token = page.get("nextPageToken")
                more = bool(token) and not page.get("isLast", False)
            else:
                more = int(page.get("total") or 0) > len(out)
            if not issues or not more:
                return out[: self.max_results], None
            if len(out) >= self.max_results:
                return out[: self.max_results], "cap"

    def ticket(self, raw: dict[str, Any]) -> dict[str, Any]:
        """A Jira REST v2 issue as the world format's ticket dict."""
        return ticket_from_jira(raw, self.base)

    def check(self) -> str:
        """``Jira Cloud 1001.0.0 at URL, signed in as NAME`` (serverInfo, then /myself to prove the token).

        Raises:
            SourceError: Jira cannot answer or refuses the credentials.
        """
        info = self._run("serverInfo", self._jira().server_info)
        me = self._run("myself", self._jira().myself)
        if not isinstance(info, dict) or not isinstance(me, dict):
            raise SourceError(f"{self.label}: serverInfo/myself did not answer JSON objects; check JIRA_URL")
        who = me.get("displayName") or me.get("emailAddress") or self.user
        kind = info.get("deploymentType") or "Server"
        return f"Jira {kind} {info.get('version') or '?'} at {self.base}, signed in as {who}"

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def jql_string(value: str) -> str:
    """``value`` as a JQL string literal: quotes and backslashes escaped, control characters made spaces."""
    cleaned = re.sub(r"[\x00-\x1f\x7f]", " ", value)
    return '"' + cleaned.replace("\\", "\\\\").replace('"', '\\"') + '"'


def build_jql(*, text: str | None, labels: list[str], projects: list[str]) -> str:
    """The search's JQL: every value quoted as data, clauses ANDed, newest first."""
    clauses = []
    if projects:
        clauses.append("project in (" + ", ".join(jql_string(p) for p in projects) + ")")
    if text:
        clauses.append(f"text ~ {jql_string(text)}")
    clauses += [f"labels = {jql_string(label)}" for label in labels]
    return " AND ".join(clauses) + (" " if clauses else "") + "ORDER BY created DESC"


def _jira_message(exc: Any) -> str:
    text = str(getattr(exc, "text", "") or "").strip()
    response = getattr(exc, "response", None)
    if response is not None:
        try:
            body = response.json()
            msgs = list(body.get("errorMessages") or []) + [str(v) for v in (body.get("errors") or {}).values()]
            if msgs:
                text = "; ".join(str(m) for m in msgs)
        except (ValueError, AttributeError):
            pass
    return text.replace("\n", " ")[:200] or "no detail"
