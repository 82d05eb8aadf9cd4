"""A stand-in Slack on loopback: the Web API methods the bot uses and a socket-mode websocket.

It speaks Slack's wire protocol so the real ``slack_sdk`` WebClient, the real Bolt app
and slack_sdk's socket-mode clients (the bot uses the aiohttp one) talk to it unchanged:

* Web API (an aiohttp server on its own thread): ``POST/GET /api/<method>`` with form, query or JSON bodies, ``Authorization:
  Bearer`` tokens, ``{"ok": true, ...}`` answers, HTTP 429 + ``Retry-After`` on demand.
* Socket mode: ``apps.connections.open`` returns ``ws://127.0.0.1:<port>/link``; the
  websocket sends ``hello`` and then the envelopes a test pushes
  (``slash_commands``, ``events_api``, ``interactive``), and records each ack.
* File uploads (files_upload_v2): ``files.getUploadURLExternal`` → raw POST to the upload
  URL → ``files.completeUploadExternal`` shares the file into the thread.
* Faults for reliability tests: ``delay_s`` answers every Web API call late (a slow Slack; ``delays``
  does so per method), ``answering = False`` holds calls unanswered and never processes them (Slack
  down; the client times out). All off by default.
* Reading history (the chat source): ``conversations.list`` / ``conversations.info`` over the channels
  registered with :meth:`FakeSlack.add_channel` (``not_in_channel`` for one the bot is not a member
  of), ``conversations.history`` paging by ``cursor`` / ``response_metadata.next_cursor`` when more
  messages remain, and ``search.messages`` (``in:#name``, ``after:``/``before:`` dates, words;
  ``page``/``count`` paging) which, as on Slack, refuses bot tokens (``xoxb-``) with
  ``not_allowed_token_type``. Setting :attr:`FakeSlack.valid_tokens` makes other tokens ``invalid_auth``.

Protocol shapes follow docs.slack.dev (Web API method pages, "Using Socket Mode").
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from websockets.asyncio.server import ServerConnection, serve

BOT_USER = "UBOT"
BOT_ID = "BBOT"
_JSON_FIELDS = {"blocks", "attachments", "metadata", "view", "files"}


class FakeSlack:
    """One stand-in Slack workspace. Use as a context manager or call start()/stop()."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.messages: dict[str, list[dict[str, Any]]] = {}
        self.ephemerals: list[dict[str, Any]] = []
        self.views: list[dict[str, Any]] = []
        self.uploads: dict[str, dict[str, Any]] = {}
        self.acks: dict[str, dict[str, Any]] = {}
        self.ack_times: dict[str, float] = {}
        self.sent_times: dict[str, float] = {}
        self.post_times: dict[tuple[str, str], float] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.usergroups: dict[str, list[str]] = {}
        self.members: dict[str, list[str]] = {}  # channel id -> member user ids (conversations.members)
        self.rate_limited: list[dict[str, Any]] = []
        self.channels: dict[str, dict[str, Any]] = {}
        self.valid_tokens: set[str] | None = None
        self.scopes: set[str] | None = None  # when set, conversations.list checks channels:read / groups:read
        self.delays: dict[str, float] = {}  # Web API method -> seconds to wait before answering (slow Slack)
        self._token = ""
        self.throttled_calls = 0
        #: Seconds every Web API call waits before it is answered (a slow Slack); 0 = at once.
        self.delay_s = 0.0
        #: False: Web API calls are held unanswered (clients time out) until it is True again.
        self.answering = True
        self._ts = itertools.count(1)
        self._base = int(time.time())
        self._ws_connections: list[ServerConnection] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._http_port = 0
        self._http_loop: asyncio.AbstractEventLoop | None = None
        self._http_stop: asyncio.Future | None = None
        self._http_ready = threading.Event()
        self._threads: list[threading.Thread] = []
        self._ws_ready = threading.Event()
        self._ws_stop: asyncio.Future | None = None
        self.ws_port = 0

    # -- lifecycle -------------------------------------------------------
    def __enter__(self) -> FakeSlack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Listen on two free loopback ports (Web API over HTTP, socket mode over ws)."""
        # aiohttp on its own event-loop thread: a thread per connection (http.server) made the
        # stand-in, not the bot, the bottleneck of a 500-command burst.
        t = threading.Thread(target=lambda: asyncio.run(self._http_main()), name="fake-slack-http", daemon=True)
        t.start()
        self._threads.append(t)
        if not self._http_ready.wait(5):
            raise RuntimeError("the stand-in Slack Web API did not start")
        w = threading.Thread(target=lambda: asyncio.run(self._ws_main()), name="fake-slack-ws", daemon=True)
        w.start()
        self._threads.append(w)
        if not self._ws_ready.wait(5):
            raise RuntimeError("the stand-in Slack websocket did not start")

    def stop(self) -> None:
        """Close both servers and wait for their threads."""
        if self._loop and self._ws_stop:
            self._loop.call_soon_threadsafe(self._ws_stop.set_result, None)
        if self._http_loop and self._http_stop:
            self._http_loop.call_soon_threadsafe(self._http_stop.set_result, None)
        for t in self._threads:
            t.join(5)

    @property
    def api_url(self) -> str:
        """Base URL for ``WebClient(base_url=...)`` / SLACK_API_URL."""
        assert self._http_port, "start() the fake first"
        return f"http://127.0.0.1:{self._http_port}/api/"

    # -- Web API over HTTP ------------------------------------------------
    async def _http_main(self) -> None:
        self._http_loop = asyncio.get_running_loop()
        self._http_stop = self._http_loop.create_future()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._http_handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._http_port = runner.addresses[0][1]
        self._http_ready.set()
        try:
            await self._http_stop
        finally:
            await runner.cleanup()

    async def _http_handler(self, request: web.Request) -> web.Response:
        body = await request.read()
        delay = self.delays.get(request.path.removeprefix("/api/"))
        if delay:
            await asyncio.sleep(delay)
        if request.path.startswith("/api/"):
            if self.delay_s > 0:
                await asyncio.sleep(self.delay_s)
            if not self.answering:  # Slack is down: the call is never processed, the client times out
                while not self.answering:
                    await asyncio.sleep(0.05)
                return web.Response(status=503, body=b"unavailable", headers={"Content-Type": "text/plain"})
        status, payload, ctype, headers = self.http_call(request.path, request.query_string,
                                                         request.headers.get("Authorization", ""),
                                                         request.headers.get("Content-Type", ""), body)
        return web.Response(status=status, body=payload, headers={"Content-Type": ctype, **(headers or {})})

    def http_call(self, path: str, query: str, authorization: str, ctype: str,
                  body: bytes) -> tuple[int, bytes, str, dict[str, str] | None]:
        """One Web API (or file upload) request → (status, body, content type, extra headers)."""
        if path.startswith("/upload/"):
            ok = self.receive_upload(path.rsplit("/", 1)[1], body)
            return (200 if ok else 404), b"OK - %d" % len(body), "text/plain", None
        if not path.startswith("/api/"):
            return 404, b"not found", "text/plain", None
        method = path[len("/api/"):]
        if not authorization.startswith("Bearer "):
            return _json(200, {"ok": False, "error": "not_authed"})
        token = authorization[len("Bearer "):]
        if self.valid_tokens is not None and token not in self.valid_tokens:
            return _json(200, {"ok": False, "error": "invalid_auth"})
        # The aiohttp loop serves one request at a time, so the token stays this request's until call() returns.
        self._token = token
        retry_after = self._throttle(method)
        if retry_after is not None:
            return _json(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)})
        args: dict[str, Any] = dict(parse_qsl(query))
        if body and ctype.startswith("application/json"):
            args.update(json.loads(body))
        elif body:
            args.update(parse_qsl(body.decode()))
        for key in _JSON_FIELDS:
            if isinstance(args.get(key), str):
                try:
                    args[key] = json.loads(args[key])
                except ValueError:
                    pass
        return _json(200, self.call(method, args))

    # -- socket mode -----------------------------------------------------
    async def _ws_main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._ws_stop = self._loop.create_future()
        async with serve(self._ws_handler, "127.0.0.1", 0, ping_interval=None) as server:
            self.ws_port = list(server.sockets)[0].getsockname()[1]
            self._ws_ready.set()
            await self._ws_stop

    async def _ws_handler(self, conn: ServerConnection) -> None:
        with self.lock:
            self._ws_connections.append(conn)
        await conn.send(json.dumps({"type": "hello", "num_connections": len(self._ws_connections),
                                    "connection_info": {"app_id": "A0FAKE"},
                                    "debug_info": {"host": "fake-slack", "approximate_connection_time": 3600}}))
        with self.changed:
            self.changed.notify_all()
        try:
            async for raw in conn:
                msg = json.loads(raw)
                if "envelope_id" in msg:
                    with self.changed:
                        self.acks[msg["envelope_id"]] = msg.get("payload") or {}
                        self.ack_times[msg["envelope_id"]] = time.perf_counter()
                        self.changed.notify_all()
        except Exception:  # noqa: BLE001 - a client dropping the socket is normal at shutdown
            pass
        finally:
            with self.lock:
                if conn in self._ws_connections:
                    self._ws_connections.remove(conn)

    def wait_connected(self, timeout: float = 10) -> None:
        """Block until a socket-mode client has received ``hello``."""
        self.wait_for(lambda: bool(self._ws_connections), timeout, "no socket-mode client connected")

    def send_envelope(self, kind: str, payload: dict[str, Any], *, envelope_id: str | None = None,
                      retry_attempt: int = 0) -> str:
        """Push one envelope to the connected socket-mode client.

        Args:
            kind: ``slash_commands`` | ``events_api`` | ``interactive``.
            payload: the envelope payload (Slack's HTTP body for that kind).
            envelope_id: reuse an id to simulate Slack re-sending the same envelope.
            retry_attempt: Slack's retry counter (events_api re-deliveries).

        Returns:
            The envelope id (wait on it with :meth:`wait_ack`).
        """
        envelope_id = envelope_id or uuid.uuid4().hex
        body = {"envelope_id": envelope_id, "type": kind, "payload": payload,
                "accepts_response_payload": kind != "events_api",
                "retry_attempt": retry_attempt, "retry_reason": "timeout" if retry_attempt else ""}
        with self.lock:
            if not self._ws_connections:
                raise RuntimeError("no socket-mode client is connected; call wait_connected() first")
            conn = self._ws_connections[-1]
            self.sent_times[envelope_id] = time.perf_counter()
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(conn.send(json.dumps(body)), self._loop).result(5)
        return envelope_id

    def slash_command(self, text: str, *, user: str = "U1", channel: str = "C1", **kw: Any) -> str:
        """Send ``/investigate <text>`` as a socket-mode envelope; returns the envelope id."""
        payload = {"token": "x", "team_id": "T1", "team_domain": "fake", "channel_id": channel,
                   "channel_name": "incidents", "user_id": user, "user_name": user.lower(),
                   "command": "/investigate", "text": text, "api_app_id": "A0FAKE",
                   "response_url": "http://127.0.0.1:9/none", "trigger_id": kw.pop("trigger_id", uuid.uuid4().hex)}
        return self.send_envelope("slash_commands", payload, **kw)

    def event(self, event: dict[str, Any], *, event_id: str | None = None, **kw: Any) -> str:
        """Send an Events API callback wrapping ``event``; returns the envelope id."""
        payload = {"token": "x", "team_id": "T1", "api_app_id": "A0FAKE", "type": "event_callback",
                   "event_id": event_id or f"Ev{uuid.uuid4().hex[:10]}", "event_time": int(time.time()),
                   "event": event, "authorizations": [{"team_id": "T1", "user_id": BOT_USER, "is_bot": True}]}
        return self.send_envelope("events_api", payload, **kw)

    def interactive(self, payload: dict[str, Any], **kw: Any) -> str:
        """Send an interactivity payload (block_actions, view_submission); returns the envelope id."""
        base = {"team": {"id": "T1"}, "api_app_id": "A0FAKE", "token": "x", "trigger_id": uuid.uuid4().hex}
        return self.send_envelope("interactive", {**base, **payload}, **kw)

    def wait_ack(self, envelope_id: str, timeout: float = 10) -> dict[str, Any]:
        """The ack payload the client sent for ``envelope_id`` (waits for it)."""
        self.wait_for(lambda: envelope_id in self.acks, timeout, f"no ack for envelope {envelope_id}")
        return self.acks[envelope_id]

    # -- workspace state -------------------------------------------------
    def wait_for(self, predicate: Callable[[], Any], timeout: float = 10, what: str = "condition") -> Any:
        """Block until ``predicate()`` is truthy (re-checked on every state change); return its value."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"stand-in Slack: {what} within {timeout}s")
                self.changed.wait(min(left, 0.2))

    def next_ts(self) -> str:
        n = next(self._ts)
        return f"{self._base + n}.{n:06d}"

    def add_message(self, channel: str, text: str = "", **fields: Any) -> dict[str, Any]:
        """Put a message into a channel as if someone (or an alerting app) posted it."""
        msg = {"type": "message", "ts": fields.pop("ts", None) or self.next_ts(), "text": text,
               "user": fields.pop("user", "U9"), **fields}
        with self.changed:
            self.messages.setdefault(channel, []).append(msg)
            self.changed.notify_all()
        return msg

    def thread(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        """The parent and replies of a thread, oldest first."""
        with self.lock:
            return [m for m in self.messages.get(channel, [])
                    if m["ts"] == thread_ts or m.get("thread_ts") == thread_ts]

    def bot_messages(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Every message the bot posted (optionally in one channel)."""
        with self.lock:
            chans = [channel] if channel else list(self.messages)
            return [m for c in chans for m in self.messages.get(c, []) if m.get("user") == BOT_USER]

    def count_calls(self, method: str) -> int:
        with self.lock:
            return sum(1 for m, _ in self.calls if m == method)

    def rate_limit(self, method: str | None, times: int, retry_after: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` (None: any method) with 429 + Retry-After."""
        with self.lock:
            self.rate_limited.append({"method": method, "left": times, "retry_after": retry_after})

    def _throttle(self, method: str) -> int | None:
        with self.lock:
            for rule in self.rate_limited:
                if rule["left"] > 0 and rule["method"] in (None, method):
                    rule["left"] -= 1
                    self.throttled_calls += 1
                    return int(rule["retry_after"])
        return None

    def _find(self, channel: str, ts: str) -> dict[str, Any] | None:
        for m in self.messages.get(channel, []):
            if m["ts"] == ts:
                return m
        return None

    # -- Web API methods -------------------------------------------------
    def call(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        """Run one Web API method against the workspace state."""
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return {"ok": False, "error": "unknown_method"}
        with self.changed:
            self.calls.append((method, args))
            result = handler(args)
            self.changed.notify_all()
        return result

    def _m_auth_test(self, a: dict) -> dict:
        return {"ok": True, "url": "https://fake.slack.com/", "team": "Fake", "user": "pm",
                "team_id": "T1", "user_id": BOT_USER, "bot_id": BOT_ID}

    def _m_apps_connections_open(self, a: dict) -> dict:
        return {"ok": True, "url": f"ws://127.0.0.1:{self.ws_port}/link/?ticket={uuid.uuid4().hex}"}

    def _m_chat_postMessage(self, a: dict) -> dict:
        channel = a.get("channel")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not (a.get("text") or a.get("blocks") or a.get("attachments")):
            return {"ok": False, "error": "no_text"}
        msg = {"type": "message", "ts": self.next_ts(), "user": BOT_USER, "bot_id": BOT_ID,
               "text": a.get("text", ""), "blocks": a.get("blocks") or [], "channel": channel}
        for key in ("thread_ts", "metadata", "attachments"):
            if a.get(key):
                msg[key] = a[key]
        if a.get("thread_ts") and not self._find(channel, a["thread_ts"]):
            return {"ok": False, "error": "thread_not_found"}
        self.messages.setdefault(channel, []).append(msg)
        self.post_times[(channel, msg["ts"])] = time.perf_counter()
        return {"ok": True, "channel": channel, "ts": msg["ts"], "message": msg}

    def _m_chat_update(self, a: dict) -> dict:
        msg = self._find(a.get("channel", ""), a.get("ts", ""))
        if msg is None:
            return {"ok": False, "error": "message_not_found"}
        for key in ("text", "blocks", "metadata", "attachments"):
            if key in a:
                msg[key] = a[key]
        msg["edits"] = msg.get("edits", 0) + 1
        return {"ok": True, "channel": a["channel"], "ts": a["ts"], "text": msg.get("text", "")}

    def _m_chat_postEphemeral(self, a: dict) -> dict:
        self.ephemerals.append(dict(a))
        return {"ok": True, "message_ts": self.next_ts()}

    def _m_chat_getPermalink(self, a: dict) -> dict:
        return {"ok": True, "channel": a.get("channel"),
                "permalink": f"https://fake.slack.com/archives/{a.get('channel')}/p{str(a.get('message_ts')).replace('.', '')}"}

    def _strip_metadata(self, msgs: list[dict], a: dict) -> list[dict]:
        keep = str(a.get("include_all_metadata", "")).lower() in ("1", "true")
        return [m if keep else {k: v for k, v in m.items() if k != "metadata"} for m in msgs]

    def _m_conversations_replies(self, a: dict) -> dict:
        found = self.thread(a.get("channel", ""), a.get("ts", ""))
        if not found:
            return {"ok": False, "error": "thread_not_found"}
        return {"ok": True, "messages": self._strip_metadata(found, a), "has_more": False}

    def _m_conversations_history(self, a: dict) -> dict:
        channel = self.channels.get(a.get("channel", ""))
        if channel is not None and not channel["is_member"]:
            return {"ok": False, "error": "not_in_channel"}
        msgs = [m for m in self.messages.get(a.get("channel", ""), [])
                if not m.get("thread_ts") or m["thread_ts"] == m["ts"]]
        latest, oldest = a.get("latest"), a.get("oldest")
        inclusive = str(a.get("inclusive", "")).lower() in ("1", "true")
        if latest:
            msgs = [m for m in msgs if float(m["ts"]) < float(latest) or (inclusive and m["ts"] == latest)]
        if oldest:
            msgs = [m for m in msgs if float(m["ts"]) > float(oldest) or (inclusive and m["ts"] == oldest)]
        start = int(str(a.get("cursor") or "hist:0").removeprefix("hist:") or 0)
        limit = int(a.get("limit") or 100)
        ordered = sorted(msgs, key=lambda m: float(m["ts"]), reverse=True)
        msgs = ordered[start:start + limit]
        out: dict[str, Any] = {"ok": True, "messages": self._strip_metadata(msgs, a), "has_more": False}
        if start + limit < len(ordered):  # as Slack does: more pages are announced with a cursor
            out["has_more"] = True
            out["response_metadata"] = {"next_cursor": f"hist:{start + limit}"}
        return out

    def add_channel(self, channel_id: str, name: str, *, is_member: bool = True, is_private: bool = False) -> None:
        """Register a channel for conversations.list/info (and not_in_channel when the bot is no member)."""
        with self.lock:
            self.channels[channel_id] = {"id": channel_id, "name": name, "is_channel": not is_private,
                                         "is_group": False, "is_private": is_private, "is_archived": False,
                                         "is_member": is_member, "created": self._base}

    def _m_conversations_list(self, a: dict) -> dict:
        ordered = sorted(self.channels.values(), key=lambda c: c["id"])
        types = str(a.get("types") or "public_channel").split(",")
        if self.scopes is not None:
            for kind, scope in (("public_channel", "channels:read"), ("private_channel", "groups:read")):
                if kind in types and scope not in self.scopes:
                    return {"ok": False, "error": "missing_scope", "needed": scope,
                            "provided": ",".join(sorted(self.scopes))}
        ordered = [c for c in ordered if ("private_channel" if c["is_private"] else "public_channel") in types]
        start = int(str(a.get("cursor") or "chan:0").removeprefix("chan:") or 0)
        limit = int(a.get("limit") or 100)
        page = ordered[start:start + limit]
        nxt = f"chan:{start + limit}" if start + limit < len(ordered) else ""
        return {"ok": True, "channels": [dict(c) for c in page], "response_metadata": {"next_cursor": nxt}}

    def _m_conversations_members(self, a: dict) -> dict:
        members = self.members.get(a.get("channel", ""))
        if members is None:
            return {"ok": False, "error": "channel_not_found"}
        start = int(str(a.get("cursor") or "0") or 0)
        limit = int(a.get("limit") or 100)
        nxt = str(start + limit) if start + limit < len(members) else ""
        return {"ok": True, "members": members[start:start + limit], "response_metadata": {"next_cursor": nxt}}

    def _m_conversations_info(self, a: dict) -> dict:
        channel = self.channels.get(a.get("channel", ""))
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        scope = "groups:read" if channel["is_private"] else "channels:read"
        if self.scopes is not None and scope not in self.scopes:
            return {"ok": False, "error": "missing_scope", "needed": scope, "provided": ",".join(sorted(self.scopes))}
        return {"ok": True, "channel": dict(channel)}

    def _m_search_messages(self, a: dict) -> dict:
        if self._token.startswith("xoxb-"):
            return {"ok": False, "error": "not_allowed_token_type"}
        query = str(a.get("query") or "")
        if not query.strip():
            return {"ok": False, "error": "no_query"}
        words, where, after, before = [], None, None, None
        for part in re.findall(r'"[^"]*"|\S+', query):
            if part.startswith("in:"):
                where = part[3:].lstrip("#")
            elif part.startswith("after:"):
                after = part[6:]
            elif part.startswith("before:"):
                before = part[7:]
            else:
                words += re.findall(r"\w+", part.lower())
        names = {cid: c["name"] for cid, c in self.channels.items()}
        matches = []
        for cid, msgs in self.messages.items():
            if where is not None and where not in (cid, names.get(cid)):
                continue
            for m in msgs:
                day = time.strftime("%Y-%m-%d", time.gmtime(float(m["ts"])))
                if (after and day <= after) or (before and day >= before):
                    continue
                if not all(w in str(m.get("text", "")).lower() for w in words):
                    continue
                link = f"https://fake.slack.com/archives/{cid}/p{m['ts'].replace('.', '')}"
                if m.get("thread_ts") and m["thread_ts"] != m["ts"]:
                    link += f"?thread_ts={m['thread_ts']}&cid={cid}"
                matches.append({"type": "message", "user": m.get("user"), "username": str(m.get("user", "")).lower(),
                                "ts": m["ts"], "text": m.get("text", ""), "permalink": link,
                                "channel": {"id": cid, "name": names.get(cid, cid), "is_private": False}})
        matches.sort(key=lambda m: float(m["ts"]), reverse=str(a.get("sort_dir") or "desc") != "asc")
        count, page = int(a.get("count") or 20), int(a.get("page") or 1)
        pages = max(1, -(-len(matches) // count))
        return {"ok": True, "query": query,
                "messages": {"total": len(matches), "matches": matches[(page - 1) * count: page * count],
                             "paging": {"count": count, "total": len(matches), "page": page, "pages": pages},
                             "pagination": {"total_count": len(matches), "page": page, "per_page": count,
                                            "page_count": pages, "first": (page - 1) * count + 1,
                                            "last": min(page * count, len(matches))}}}

    def _m_reactions_get(self, a: dict) -> dict:
        msg = self._find(a.get("channel", ""), a.get("timestamp", ""))
        if msg is None:
            return {"ok": False, "error": "message_not_found"}
        return {"ok": True, "type": "message", "channel": a["channel"], "message": msg}

    def _m_reactions_add(self, a: dict) -> dict:
        msg = self._find(a.get("channel", ""), a.get("timestamp", ""))
        if msg is None:
            return {"ok": False, "error": "message_not_found"}
        msg.setdefault("reactions", []).append({"name": a.get("name"), "users": [BOT_USER], "count": 1})
        return {"ok": True}

    def _m_views_open(self, a: dict) -> dict:
        if not a.get("trigger_id"):
            return {"ok": False, "error": "invalid_trigger_id"}
        view = dict(a.get("view") or {})
        view["id"] = f"V{len(self.views) + 1:05d}"
        self.views.append({"trigger_id": a["trigger_id"], "view": view})
        return {"ok": True, "view": view}

    def _m_users_info(self, a: dict) -> dict:
        uid = a.get("user", "")
        user = self.users.get(uid, {"id": uid, "name": uid.lower(), "real_name": uid, "is_admin": False})
        return {"ok": True, "user": user}

    def _m_usergroups_users_list(self, a: dict) -> dict:
        return {"ok": True, "users": self.usergroups.get(a.get("usergroup", ""), [])}

    def _m_files_getUploadURLExternal(self, a: dict) -> dict:
        file_id = f"F{len(self.uploads) + 1:05d}"
        self.uploads[file_id] = {"filename": a.get("filename"), "length": int(a.get("length") or 0),
                                 "data": None, "shared": None}
        url = f"http://127.0.0.1:{self._http_port}/upload/{file_id}"
        return {"ok": True, "upload_url": url, "file_id": file_id}

    def _m_files_completeUploadExternal(self, a: dict) -> dict:
        files = a.get("files") or []
        out = []
        for f in files:
            up = self.uploads.get(f.get("id", ""))
            if up is None or up["data"] is None:
                return {"ok": False, "error": "file_not_found"}
            up["shared"] = {"channel": a.get("channel_id"), "thread_ts": a.get("thread_ts"),
                            "title": f.get("title")}
            out.append({"id": f["id"], "title": f.get("title") or up["filename"], "name": up["filename"]})
        if a.get("channel_id"):
            msg = {"type": "message", "ts": self.next_ts(), "user": BOT_USER, "bot_id": BOT_ID,
                   "text": a.get("initial_comment", ""), "files": out, "channel": a["channel_id"]}
            if a.get("thread_ts"):
                msg["thread_ts"] = a["thread_ts"]
            self.messages.setdefault(a["channel_id"], []).append(msg)
        return {"ok": True, "files": out}

    def receive_upload(self, file_id: str, data: bytes) -> bool:
        with self.changed:
            up = self.uploads.get(file_id)
            if up is None:
                return False
            up["data"] = data
            self.changed.notify_all()
            return True


def _json(status: int, payload: dict, headers: dict[str, str] | None = None) -> tuple[int, bytes, str, dict[str, str] | None]:
    return status, json.dumps(payload).encode(), "application/json; charset=utf-8", headers
