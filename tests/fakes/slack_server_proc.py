"""The stand-in Slack in a child process, driven over a pipe (for benches that must not share a GIL).

In production Slack is remote: its websocket server does not compete with the bot for the
bot's GIL. A bench that runs :class:`~tests.fakes.slack_server.FakeSlack` in the bot's own
process charges the fake's JSON and websocket work to the bot's latency. Here the fake runs in
its own interpreter; the parent sends one JSON order per line on the child's stdin and reads
one JSON answer per line from its stdout. Times are measured inside the child, which sees both
the moment an envelope is sent and the moment its ack / the first ``chat.postMessage`` arrives.

Orders (``{"op": ...}``):

* ``wait_connected`` (``timeout``) → ``{}`` once a socket-mode client has had ``hello``.
* ``burst`` (``n``, ``timeout``, ``text``) → send ``n`` ``/investigate`` commands as fast as the
  event loop can write them (one per channel ``Cb<i>``), wait for every ack and for a bot message
  in every channel; answer ``ack_ms`` and ``first_s`` (per command, None when missing) and
  ``send_s`` (how long the sending took).
* ``count`` (``method``) → ``{"count": n}`` calls of a Web API method so far.
* ``stop`` → the child answers ``{}`` and exits.

Run by :class:`SlackServerProcess`; the child entry is ``python -m tests.fakes.slack_server_proc``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from tests.fakes.slack_server import FakeSlack

_ROOT = Path(__file__).resolve().parents[2]


class SlackServerProcess:
    """Start the stand-in Slack in a child process; use as a context manager.

    Attributes:
        api_url: the child's Web API base URL (for SLACK_API_URL).

    Raises:
        RuntimeError: the child did not start or answered an order with an error.
    """

    def __init__(self, python: str | None = None) -> None:
        self._python = python or sys.executable
        self._proc: subprocess.Popen[str] | None = None
        self.api_url = ""

    def __enter__(self) -> SlackServerProcess:
        env = {**os.environ, "PYTHONPATH": str(_ROOT)}
        self._proc = subprocess.Popen([self._python, "-m", "tests.fakes.slack_server_proc"], cwd=_ROOT, env=env,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        hello = self._read()
        self.api_url = hello["api_url"]
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Ask the child to stop; kill it if it does not within 10 s."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.poll() is None:
                proc.stdin.write(json.dumps({"op": "stop"}) + "\n")  # type: ignore[union-attr]
                proc.stdin.flush()  # type: ignore[union-attr]
            proc.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait(5)

    def order(self, op: str, **args: Any) -> dict[str, Any]:
        """Send one order and return the child's answer.

        Raises:
            RuntimeError: the child reported an error or died.
        """
        if self._proc is None or self._proc.stdin is None:
            raise RuntimeError("the stand-in Slack process is not running; use SlackServerProcess as a context")
        self._proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self._proc.stdin.flush()
        return self._read()

    def _read(self) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the stand-in Slack process exited (code {self._proc.poll()})")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"stand-in Slack process: {answer['error']}")
        return answer


# -- the child ------------------------------------------------------------------------------------------


def _burst(fake: FakeSlack, n: int, timeout: float, text: str) -> dict[str, Any]:
    """Send ``n`` slash commands from inside the fake's event loop, then wait for acks and posts."""
    channels = [f"Cb{i}-{uuid.uuid4().hex[:6]}" for i in range(n)]
    bodies = []
    for i, channel in enumerate(channels):
        env_id = uuid.uuid4().hex
        payload = {"token": "x", "team_id": "T1", "team_domain": "fake", "channel_id": channel,
                   "channel_name": "incidents", "user_id": f"U{i}", "user_name": f"u{i}",
                   "command": "/investigate", "text": f"{text} {i}", "api_app_id": "A0FAKE",
                   "response_url": "http://127.0.0.1:9/none", "trigger_id": uuid.uuid4().hex}
        bodies.append((env_id, json.dumps({"envelope_id": env_id, "type": "slash_commands", "payload": payload,
                                           "accepts_response_payload": True, "retry_attempt": 0,
                                           "retry_reason": ""})))
    with fake.lock:
        if not fake._ws_connections:
            raise RuntimeError("no socket-mode client is connected; send wait_connected first")
        conn = fake._ws_connections[-1]

    async def send_all() -> None:
        # One coroutine writes them back to back, as Slack's edge would push a burst.
        for env_id, raw in bodies:
            fake.sent_times[env_id] = time.perf_counter()
            await conn.send(raw)

    started = time.perf_counter()
    assert fake._loop is not None
    asyncio.run_coroutine_threadsafe(send_all(), fake._loop).result(timeout)
    send_s = time.perf_counter() - started
    ids = [e for e, _ in bodies]
    try:
        fake.wait_for(lambda: all(e in fake.acks for e in ids), timeout, "every ack")
        fake.wait_for(lambda: all(fake.messages.get(c) for c in channels), timeout, "a message in every channel")
    except TimeoutError:
        pass  # reported as None entries: dropped
    with fake.lock:
        acks = [(fake.ack_times[e] - fake.sent_times[e]) * 1000 if e in fake.ack_times else None for e in ids]
        first_post: dict[str, float] = {}
        for (channel, _ts), t in fake.post_times.items():
            first_post[channel] = min(t, first_post.get(channel, t))
        firsts = [first_post[c] - fake.sent_times[e] if c in first_post else None
                  for c, e in zip(channels, ids, strict=True)]
    return {"ack_ms": acks, "first_s": firsts, "send_s": send_s}


def _serve() -> int:
    with FakeSlack() as fake:
        print(json.dumps({"api_url": fake.api_url}), flush=True)
        for line in sys.stdin:
            try:
                order = json.loads(line)
                op = order.get("op")
                if op == "stop":
                    print("{}", flush=True)
                    return 0
                if op == "wait_connected":
                    fake.wait_connected(float(order.get("timeout", 10)))
                    answer: dict[str, Any] = {}
                elif op == "burst":
                    answer = _burst(fake, int(order["n"]), float(order.get("timeout", 120)),
                                    str(order.get("text", "bench incident")))
                elif op == "count":
                    answer = {"count": fake.count_calls(str(order["method"]))}
                else:
                    answer = {"error": f"unknown order {op!r}; use wait_connected, burst, count or stop"}
            except Exception as exc:  # noqa: BLE001 - the parent must hear of it, not hang
                answer = {"error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_serve())
