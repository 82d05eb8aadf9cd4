"""A stand-in Jira REST API (v2) on loopback, for the real `jira` client library.

Serves the handful of endpoints the product uses, with Jira's JSON shapes:

* ``GET  /rest/api/2/serverInfo``
* ``GET  /rest/api/2/issue/{key}``                (issue with ``fields.comment``)
* ``GET  /rest/api/2/issue/{key}/comment``        (``{"comments": [...], "total": n}``)
* ``GET  /rest/api/2/issue/{key}/comment/{id}``
* ``POST /rest/api/2/issue/{key}/comment``        -> 201 with the comment
* ``PUT  /rest/api/2/issue/{key}/comment/{id}``   -> 200 with the comment

Requests must carry HTTP basic auth for the configured user (401 otherwise, as Jira Cloud
answers). :meth:`FakeJira.fail_next` queues error answers (e.g. 429 with ``Retry-After``)
so retry behaviour can be tested. Every request is recorded in :attr:`FakeJira.requests`.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.loopback import LoopbackServer

_ISSUE = re.compile(r"^/rest/api/2/issue/([^/]+)$")
_COMMENTS = re.compile(r"^/rest/api/2/issue/([^/]+)/comment$")
_COMMENT = re.compile(r"^/rest/api/2/issue/([^/]+)/comment/(\d+)$")


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

    def handle(self, method: str, path: str, body: dict[str, Any] | None) -> tuple[int, dict[str, Any]]:
        """Route one authenticated request; returns (status, JSON body)."""
        if method == "GET" and path == "/rest/api/2/serverInfo":
            return 200, {"baseUrl": self.url, "version": "1001.0.0-SNAPSHOT", "deploymentType": "Cloud"}
        if m := _ISSUE.match(path):
            key = m.group(1)
            if method != "GET":
                return 405, {"errorMessages": [f"{method} not supported here"]}
            if key not in self.issues:
                return 404, {"errorMessages": ["Issue does not exist or you do not have permission to see it."]}
            comments = [self._comment_json(key, c) for c in self.comments[key]]
            fields = {**self.issues[key], "comment": {"comments": comments, "total": len(comments)}}
            return 200, {"id": str(abs(hash(key)) % 100000), "key": key, "self": f"{self.url}/rest/api/2/issue/{key}",
                         "fields": fields}
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
        status, payload = self.state.handle(method, path, body)
        self._send(status, payload)

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")


FakeJira.handler = _Handler  # the handler class is defined after the fake it serves
