"""A tiny loopback HTTP server answering every request with one canned reply (status, body, delay).

For the cases a real vendor will not produce on demand: a 500, a garbage body, a slow answer.
"""

from __future__ import annotations

import time
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.loopback import LoopbackServer


class CannedServer(LoopbackServer):
    """Answers ``status`` with ``body`` (bytes) and ``content_type`` after ``delay_s`` seconds."""

    thread_name = "canned-http"

    def __init__(self, status: int = 200, body: bytes = b"", content_type: str = "application/json",
                 delay_s: float = 0.0, headers: dict[str, str] | None = None) -> None:
        super().__init__()
        self.status, self.body, self.content_type, self.delay_s = status, body, content_type, delay_s
        self.headers = headers or {}
        self.paths: list[str] = []

    def __enter__(self) -> CannedServer:
        return self.start()  # type: ignore[no-any-return]

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    state: CannedServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        return

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.state.paths.append(self.path)
        if self.state.delay_s:
            time.sleep(self.state.delay_s)
        try:
            self.send_response(self.state.status)
            self.send_header("Content-Type", self.state.content_type)
            self.send_header("Content-Length", str(len(self.state.body)))
            for k, v in self.state.headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(self.state.body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
            pass

    do_GET = _answer  # noqa: N815 - http.server naming
    do_POST = _answer  # noqa: N815


CannedServer.handler = _Handler
