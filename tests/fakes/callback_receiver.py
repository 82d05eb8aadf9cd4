"""A local HTTP receiver for callback_url tests: records every POST, answers from a script."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class CallbackReceiver:
    """``answers`` are the status codes of the first POSTs (then 200); ``received`` holds every POST.

    Each item of ``received``: ``{"path", "headers" (lower-case names), "raw" (bytes), "json", "status"}``.
    """

    def __init__(self, answers: list[int] | None = None, *, headers: dict[str, str] | None = None) -> None:
        self.answers = list(answers or [])
        self.extra_headers = dict(headers or {})
        self.received: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.posted = threading.Condition(self.lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver.lock:
                    status = receiver.answers.pop(0) if receiver.answers else 200
                    receiver.received.append({"path": self.path, "raw": raw, "status": status,
                                              "headers": {k.lower(): v for k, v in self.headers.items()},
                                              "json": json.loads(raw) if raw else None})
                    receiver.posted.notify_all()
                self.send_response(status)
                for k, v in receiver.extra_headers.items():
                    self.send_header(k, v)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/pm?token=abc"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> CallbackReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, count: int, timeout_s: float = 60.0) -> list[dict[str, Any]]:
        """Block until ``count`` POSTs arrived (or the timeout); returns them all."""
        with self.posted:
            self.posted.wait_for(lambda: len(self.received) >= count, timeout=timeout_s)
            return list(self.received)
