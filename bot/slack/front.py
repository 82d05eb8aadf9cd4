"""Socket mode on an asyncio loop: persist each envelope, ack it, then run the Bolt app.

Why not Bolt's builtin socket-mode handler: measured against the stand-in Slack in a child
process, slack_sdk's threaded clients (builtin and websocket-client) alone, with a listener that
only acks, answered a burst of 500 envelopes with ack p99 ≈ 100–200 ms, before any work of ours;
slack_sdk's asyncio client over aiohttp answered the same burst with p99 ≈ 25 ms
(`bench/slack_ack.py`, docs/slack.md). So the connection lives on one event-loop thread here, with
slack_sdk's :class:`slack_sdk.socket_mode.aiohttp.SocketModeClient`, and the synchronous Bolt app
runs beside it on a thread pool.

For every envelope (each is its own task on the loop):

1. its delivery key (:func:`bot.slack.inbound.delivery_key`); a repeat is acked empty and dropped;
2. the raw payload goes to the group-commit journal (:mod:`bot.slack.journal`) and the task waits
   for that commit — nothing is acked before it is persisted; if the write fails, no ack, and
   Slack re-sends;
3. a command whose answer needs neither the database nor Slack (``quick``: ``/investigate <what>``,
   help, usage errors) is acked at once with that answer and its work queued (the start batcher);
4. anything else is dispatched through the Bolt app on the pool, and acked with what the listener
   acked (listeners only ack, normalise and hand off, so this is quick too).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt.adapter.socket_mode.internals import build_headers
from slack_bolt.request import BoltRequest
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.inbound import delivery_key

log = logging.getLogger(__name__)

#: quick(body) -> (ack payload, then(delivery_key, replay) or None) | None
Quick = Callable[[dict[str, Any]], "tuple[dict[str, Any], Callable[[str | None, bool], None] | None] | None"]


class SocketFront:
    """The socket-mode connection and the persist-then-ack step in front of the Bolt app.

    Args:
        app: the Bolt app (:func:`bot.slack.app.create_app`).
        journal: an :class:`~bot.slack.journal.InboundJournal`.
        reaction: the emoji that starts an investigation (other reactions are not persisted).
        app_token: the ``xapp-`` token.
        api_url: SLACK_API_URL (``apps.connections.open`` is called there).
        quick: answers commands that need no Bolt dispatch (see the module doc); None: always dispatch.
        pressure: an :class:`~bot.slack.pressure.AckPressure` told of every envelope received and acked.
        threads: the Bolt dispatch pool.
    """

    def __init__(self, app: Any, *, journal: Any, reaction: str, app_token: str, api_url: str,
                 quick: Quick | None = None, pressure: Any = None, threads: int = 8) -> None:
        self.app, self.journal, self.reaction = app, journal, reaction
        self.app_token, self.api_url, self.quick, self.pressure = app_token, api_url, quick, pressure
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="pm-slack-bolt")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="pm-slack-socket", daemon=True)
        self._client: SocketModeClient | None = None

    # -- life cycle ------------------------------------------------------------------------------
    def connect(self, timeout: float = 30.0) -> None:
        """Open the connection (``apps.connections.open``, then the websocket); returns once connected."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._connect(), self._loop).result(timeout)

    async def _connect(self) -> None:
        web = AsyncWebClient(token=None, base_url=self.api_url)
        self._client = SocketModeClient(app_token=self.app_token, web_client=web, loop=self._loop)
        self._client.socket_mode_request_listeners.append(self._on_request)  # type: ignore[arg-type]
        await self._client.connect()

    def close(self, timeout: float = 10.0) -> None:
        """Close the connection (Slack re-sends what was not acked to another connection), then the pool."""
        if self._client is not None and self._thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(self._client.close(), self._loop).result(timeout)
            except Exception:  # noqa: BLE001 - closing anyway
                log.warning("closing the socket-mode connection failed", exc_info=True)
        self._pool.shutdown(wait=True)
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)

    # -- one envelope ----------------------------------------------------------------------------
    async def _on_request(self, client: SocketModeClient, req: SocketModeRequest) -> None:
        if self.pressure is not None:
            self.pressure.arrived()
        try:
            await self._handle(client, req)
        except Exception:  # noqa: BLE001 - unacked: Slack re-sends it
            log.exception("handling Slack envelope %s failed; left unacked", req.envelope_id)
        finally:
            if self.pressure is not None:
                self.pressure.acked()

    async def _handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:
        body = req.payload if isinstance(req.payload, dict) else {}
        key = delivery_key(body, self.reaction)
        if key is not None:
            try:
                new = await self.journal.submit_async(key, body)
            except Exception:  # noqa: BLE001 - not persisted: no ack, so Slack re-sends it
                log.exception("could not persist Slack envelope %s; leaving it unacked", req.envelope_id)
                return
            if not new:
                await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
                return
            quick = self.quick(body) if self.quick is not None else None
            if quick is not None:
                payload, then = quick
                await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id,
                                                                          payload=payload))
                if then is not None:
                    then(key, False)
                else:
                    self.journal.mark(key)  # nothing more to do for it
                return
        loop = asyncio.get_running_loop()
        status, payload = await loop.run_in_executor(self._pool, self._dispatch, body, key, req)
        if status != 200:
            log.info("Bolt did not handle envelope %s (status %s)", req.envelope_id, status)
            return
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id, payload=payload))

    def _dispatch(self, body: dict[str, Any], key: str | None, req: SocketModeRequest) -> tuple[int, Any]:
        context: dict[str, Any] = {"delivery_key": key} if key is not None else {}
        bolt_req = BoltRequest(mode="socket_mode", body=body, headers=build_headers(req), context=context)
        resp = self.app.dispatch(bolt_req)
        if key is not None and not bolt_req.context.get("handed_off"):
            self.journal.mark(key)  # the listener did all there was to do before its ack
        return resp.status, _ack_payload(resp)


def _ack_payload(resp: Any) -> dict[str, Any] | None:
    """A Bolt response as a socket-mode ack payload (as slack_bolt's own socket-mode adapters do)."""
    if not resp.body:
        return None
    content_type = (resp.headers.get("content-type") or [""])[0]
    if content_type.startswith("application/json"):
        return json.loads(resp.body)
    return {"text": resp.body}
