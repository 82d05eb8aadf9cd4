"""A stand-in Jira REST API (v2) on loopback, for the real `jira` client library.

Serves the handful of endpoints the product uses, with Jira's JSON shapes:

* ``GET  /rest/api/2/serverInfo``
* ``GET  /rest/api/2/issue/{key}``                (issue with ``fields.comment``)
* ``GET  /rest/api/2/issue/{key}/comment``        (``{"comments": [...], "total": n}``)
* ``GET  /rest/api/2/issue/{key}/comment/{id}``
* ``POST /rest/api/2/issue/{key}/comment``        -> 201 with the comment
* ``PUT  /rest/api/2/issue/{key}/comment/{id}``   -> 200 with the comment
* ``GET  /rest/api/2/myself``                     (the signed-in user)
* ``GET  /rest/api/2/field``                      (the system fields; the library reads it before a search)
* ``GET  /rest/api/2/search/jql``                 (Jira Cloud's JQL search: ``nextPageToken`` paging)
* ``GET  /rest/api/2/search``                     (Jira Server / Data Center's: ``startAt`` / ``total``)

The JQL searches understand the subset the tickets source writes — ``field = "v"``, ``field != "v"``,
``field in ("a", "b")``, ``text ~ "words"`` joined by ``AND``, then ``ORDER BY created DESC|ASC`` — with
JQL's string escapes (``\\"``, ``\\\\``); anything else is a 400 "Error in the JQL Query", as Jira answers.
``deployment_type`` ("Cloud" or "Server") is what serverInfo reports.

Requests must carry HTTP basic auth for the configured user (401 otherwise, as Jira Cloud
answers). :meth:`FakeJira.fail_next` queues error answers (e.g. 429 with ``Retry-After``)
so retry behaviour can be tested. Every request is recorded in :attr:`FakeJira.requests`.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs

from tests.fakes.loopback import LoopbackServer

_ISSUE = re.compile(r"^/rest/api/2/issue/([^/]+)$")
_COMMENTS = re.compile(r"^/rest/api/2/issue/([^/]+)/comment$")
_COMMENT = re.compile(r"^/rest/api/2/issue/([^/]+)/comment/(\d+)$")
_JQL_TOKEN = re.compile(r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<op>!=|=|~|\(|\)|,)|(?P<word>[A-Za-z0-9_.-]+))')


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


class FakeJira(LoopbackServer):
    """The server's state: issues, comments, queued failures and the request log."""

    thread_name = "fake-jira"

    def __init__(self, user: str = "bot@example.com", token: str = "jira-token") -> None:
        super().__init__()
        self.user, self.token = user, token
        self.issues: dict[str, dict[str, Any]] = {}
        self.comments: dict[str, list[dict[str, Any]]] = {}
        self.requests: list[tuple[str, str]] = []
        self._failures: list[tuple[int, int | None]] = []
        self._next_id = 10000
        self._lock = threading.Lock()
        self.deployment_type = "Cloud"
        self.delay_s = 0.0  # seconds to wait before answering each request (a slow Jira)
        self.searches: list[str] = []

    # -- test controls ---------------------------------------------------------------------------
    def add_issue(self, key: str, summary: str = "An issue", labels: tuple[str, ...] = (), **fields: Any) -> None:
        """Create an issue that GET /issue/{key} will return."""
        self.issues[key] = {"summary": summary, "labels": list(labels), **fields}
        self.comments.setdefault(key, [])

    def add_incident_issue(self, key: str, *, summary: str, description: str, labels: tuple[str, ...] = (),
                           components: tuple[str, ...] = (), status: str = "Open",
                           reporter: str = "Support Bot", created: str = "2026-02-15T12:17:00.000+0000",
                           priority: str = "High") -> None:
        """Create an issue with the fields a bug ticket has, shaped as Jira REST v2 returns them
        (components/status/priority as objects with ``name``, reporter with ``displayName``)."""
        self.add_issue(key, summary, labels, description=description,
                       components=[{"id": str(10000 + i), "name": c} for i, c in enumerate(components)],
                       status={"name": status, "statusCategory": {"key": "new"}},
                       reporter={"displayName": reporter, "emailAddress": "support@example.com"},
                       created=created, priority={"name": priority})

    def fail_next(self, status: int, retry_after: int | None = None, count: int = 1) -> None:
        """Answer the next ``count`` requests with ``status`` (and a Retry-After header if given)."""
        with self._lock:
            self._failures.extend([(status, retry_after)] * count)


    # -- request handling (called by the handler) --------------------------------------------------
    def _take_failure(self) -> tuple[int, int | None] | None:
        with self._lock:
            return self._failures.pop(0) if self._failures else None

    def _comment_json(self, key: str, comment: dict[str, Any]) -> dict[str, Any]:
        return {
            "self": f"{self.url}/rest/api/2/issue/{key}/comment/{comment['id']}",
            "id": comment["id"],
            "author": {"displayName": self.user, "emailAddress": self.user},
            "body": comment["body"],
            "created": comment["created"],
            "updated": comment["updated"],
        }

    def _issue_json(self, key: str) -> dict[str, Any]:
        comments = [self._comment_json(key, c) for c in self.comments[key]]
        fields = {**self.issues[key], "comment": {"comments": comments, "total": len(comments)}}
        return {"id": str(abs(hash(key)) % 100000), "key": key, "self": f"{self.url}/rest/api/2/issue/{key}",
                "fields": fields}

    def _search(self, path: str, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        jql = (query.get("jql") or [""])[0]
        self.searches.append(jql)
        try:
            keys = _run_jql(jql, self)
        except ValueError as exc:
            return 400, {"errorMessages": [f"Error in the JQL Query: {exc}"], "errors": {}}
        size = int((query.get("maxResults") or ["50"])[0])
        if path.endswith("/jql"):  # Cloud: an opaque token for the next page, no total
            start = int((query.get("nextPageToken") or ["0"])[0].removeprefix("tok-") or 0)
            page = keys[start:start + size]
            out: dict[str, Any] = {"issues": [self._issue_json(k) for k in page]}
            if start + size < len(keys):
                out["nextPageToken"] = f"tok-{start + size}"
            out["isLast"] = start + size >= len(keys)
            return 200, out
        start = int((query.get("startAt") or ["0"])[0])
        page = keys[start:start + size]
        return 200, {"startAt": start, "maxResults": size, "total": len(keys),
                     "issues": [self._issue_json(k) for k in page]}

    def handle(self, method: str, path: str, body: dict[str, Any] | None,
               query: dict[str, list[str]] | None = None) -> tuple[int, dict[str, Any]]:
        """Route one authenticated request; returns (status, JSON body)."""
        if method == "GET" and path == "/rest/api/2/serverInfo":
            return 200, {"baseUrl": self.url, "version": "1001.0.0-SNAPSHOT", "deploymentType": self.deployment_type}
        if method == "GET" and path == "/rest/api/2/myself":
            return 200, {"accountId": "5b10ac8d82e05b22cc7d4ef5", "emailAddress": self.user,
                         "displayName": "Production Master", "active": True}
        if method == "GET" and path == "/rest/api/2/field":
            return 200, [{"id": f, "key": f, "name": f.capitalize(), "custom": False, "navigable": True,
                          "searchable": True, "clauseNames": [f]}
                         for f in ("summary", "description", "labels", "components", "status", "reporter",
                                   "created", "priority", "project", "comment")]  # type: ignore[return-value]
        if method == "GET" and path in ("/rest/api/2/search", "/rest/api/2/search/jql"):
            return self._search(path, query or {})
        if m := _ISSUE.match(path):
            key = m.group(1)
            if method != "GET":
                return 405, {"errorMessages": [f"{method} not supported here"]}
            if key not in self.issues:
                return 404, {"errorMessages": ["Issue does not exist or you do not have permission to see it."]}
            return 200, self._issue_json(key)
        if m := _COMMENTS.match(path):
            key = m.group(1)
            if key not in self.issues:
                return 404, {"errorMessages": ["Issue does not exist or you do not have permission to see it."]}
            if method == "GET":
                comments = [self._comment_json(key, c) for c in self.comments[key]]
                return 200, {"startAt": 0, "maxResults": 5000, "total": len(comments), "comments": comments}
            if method == "POST":
                if not body or not isinstance(body.get("body"), str) or not body["body"].strip():
                    return 400, {"errorMessages": [], "errors": {"comment": "Comment body can not be empty!"}}
                with self._lock:
                    self._next_id += 1
                    comment = {"id": str(self._next_id), "body": body["body"], "created": _now(), "updated": _now()}
                    self.comments[key].append(comment)
                return 201, self._comment_json(key, comment)
            return 405, {"errorMessages": [f"{method} not supported here"]}
        if m := _COMMENT.match(path):
            key, cid = m.group(1), m.group(2)
            found = [c for c in self.comments.get(key, []) if c["id"] == cid]
            if not found:
                return 404, {"errorMessages": ["Can not find a comment for the id: " + cid + "."]}
            comment = found[0]
            if method == "GET":
                return 200, self._comment_json(key, comment)
            if method == "PUT":
                if not body or not isinstance(body.get("body"), str):
                    return 400, {"errorMessages": [], "errors": {"comment": "Comment body can not be empty!"}}
                comment["body"], comment["updated"] = body["body"], _now()
                return 200, self._comment_json(key, comment)
            return 405, {"errorMessages": [f"{method} not supported here"]}
        return 404, {"errorMessages": [f"no route {method} {path}"]}


def _jql_tokens(jql: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(jql.rstrip()):
        m = _JQL_TOKEN.match(jql, pos)
        if not m or m.end() == pos:
            raise ValueError(f"The character '{jql[pos:].strip()[:1]}' is a reserved JQL character (column {pos + 1}).")
        pos = m.end()
        if m.group("str") is not None:
            tokens.append(("str", re.sub(r"\\(.)", r"\1", m.group("str")[1:-1])))
        elif m.group("op") is not None:
            tokens.append(("op", m.group("op")))
        else:
            tokens.append(("word", m.group("word")))
    return tokens


def _field_values(fake: FakeJira, key: str, field: str) -> list[str]:
    issue = fake.issues[key]
    if field == "project":
        return [key.rsplit("-", 1)[0]]
    if field == "key":
        return [key]
    value = issue.get(field)
    values = value if isinstance(value, list) else [value]
    return [str(v.get("name") if isinstance(v, dict) else v) for v in values if v is not None]


def _run_jql(jql: str, fake: FakeJira) -> list[str]:
    """The keys of the issues matching ``jql`` (the subset documented above), in its order."""
    tokens = _jql_tokens(jql)
    order: tuple[str, bool] = ("created", True)
    lowered = [v.lower() if kind == "word" else None for kind, v in tokens]
    if "order" in lowered:
        at = lowered.index("order")
        tail = [v for _, v in tokens[at:]]
        if len(tail) < 3 or tail[1].lower() != "by" or (len(tail) == 4 and tail[3].lower() not in ("asc", "desc")):
            raise ValueError("Expecting 'by' and a field after 'order'.")
        order = (tail[2], len(tail) == 4 and tail[3].lower() == "desc")
        tokens = tokens[:at]
    clauses: list[tuple[str, str, list[str]]] = []
    i = 0
    while i < len(tokens):
        if clauses:
            if tokens[i][0] != "word" or tokens[i][1].upper() != "AND":
                raise ValueError(f"Expecting either 'OR' or 'AND' but got '{tokens[i][1]}'.")
            i += 1
        if i + 1 >= len(tokens):
            raise ValueError("Expecting a field, an operator and a value.")
        field_tok, op_tok = tokens[i], tokens[i + 1]
        if field_tok[0] != "word":
            raise ValueError(f"Expecting a field name but got '{field_tok[1]}'.")
        if op_tok == ("word", "in"):
            if i + 2 >= len(tokens) or tokens[i + 2] != ("op", "("):
                raise ValueError("Expecting '(' after 'in'.")
            j, values = i + 3, []
            while j < len(tokens) and tokens[j] != ("op", ")"):
                if tokens[j][0] in ("str", "word"):
                    values.append(tokens[j][1])
                elif tokens[j] != ("op", ","):
                    raise ValueError(f"Unexpected '{tokens[j][1]}' in a list.")
                j += 1
            if j >= len(tokens):
                raise ValueError("Expecting ')' to close the list.")
            clauses.append((field_tok[1], "in", values))
            i = j + 1
            continue
        if op_tok not in (("op", "="), ("op", "!="), ("op", "~")) or i + 2 >= len(tokens):
            raise ValueError(f"Expecting an operator and a value after '{field_tok[1]}'.")
        value_tok = tokens[i + 2]
        if value_tok[0] not in ("str", "word"):
            raise ValueError(f"Expecting a value but got '{value_tok[1]}'.")
        clauses.append((field_tok[1], op_tok[1], [value_tok[1]]))
        i += 3
    keys = []
    for key in fake.issues:
        ok = True
        for field, op, values in clauses:
            if op == "~":
                if field != "text":
                    raise ValueError(f"The operator '~' is not supported by the '{field}' field.")
                issue = fake.issues[key]
                hay = " ".join([str(issue.get("summary") or ""), str(issue.get("description") or "")]
                               + [c["body"] for c in fake.comments.get(key, [])]).lower()
                words = re.findall(r"[a-z0-9]+", values[0].lower())
                ok = ok and bool(words) and all(w in hay for w in words)
                continue
            have = {v.lower() for v in _field_values(fake, key, field)}
            wanted = {v.lower() for v in values}
            ok = ok and (bool(have & wanted) if op in ("=", "in") else not have & wanted)
        if ok:
            keys.append(key)
    field, desc = order
    keys.sort(key=lambda k: str(fake.issues[k].get(field) or ""), reverse=desc)
    return keys


class _Handler(BaseHTTPRequestHandler):
    state: FakeJira
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        return

    def _authorised(self) -> bool:
        expected = base64.b64encode(f"{self.state.user}:{self.state.token}".encode()).decode()
        return self.headers.get("Authorization", "") == f"Basic {expected}"

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _dispatch(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        self.state.requests.append((method, path))
        if self.state.delay_s:
            time.sleep(self.state.delay_s)
        if not self._authorised():
            self._send(401, {"errorMessages": ["You are not authenticated. Authentication required to perform this operation."]})
            return
        failure = self.state._take_failure()
        if failure is not None:
            status, retry_after = failure
            headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
            self._send(status, {"errorMessages": ["Rate limit exceeded." if status == 429 else "Server error."]}, headers)
            return
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            self._send(400, {"errorMessages": ["Unexpected character in JSON body"]})
            return
        query = parse_qs(self.path.split("?", 1)[1]) if "?" in self.path else {}
        status, payload = self.state.handle(method, path, body, query)
        self._send(status, payload)

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")


FakeJira.handler = _Handler  # the handler class is defined after the fake it serves
