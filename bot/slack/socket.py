"""Socket mode with the ack right after the envelope is persisted (not after the listener chain).

slack_bolt's builtin ``SocketModeHandler`` runs ``app.dispatch`` on one of ``concurrency``
threads and sends the ack when dispatch returns. Here, before dispatch, the envelope goes to
the group-commit journal; a repeat is acked empty and dropped there, without running the app.
The app runs with ``process_before_response=True``, so dispatch returns as soon as the
listener (which only acks, normalises and hands off) returns: no polling for the ack, no
queue behind other listeners' work.
"""

from __future__ import annotations

import logging
from time import time
from typing import Any

from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.adapter.socket_mode.internals import build_headers, send_response
from slack_bolt.request import BoltRequest
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from bot.slack.inbound import delivery_key

log = logging.getLogger(__name__)


class PersistThenAckHandler(SocketModeHandler):
    """The builtin socket-mode handler, with persistence and dedup in front of the Bolt app.

    Args:
        app: the Bolt app (:func:`bot.slack.app.create_app`).
        journal: an :class:`~bot.slack.journal.InboundJournal`.
        reaction: the emoji that starts an investigation (other reactions are not persisted).
        pressure: an :class:`~bot.slack.pressure.AckPressure` told of every envelope received
            and acked, so background work steps aside while acks are due (None: not counted).
        kw: passed to SocketModeHandler (``app_token``, ``web_client``, ``concurrency``).
    """

    def __init__(self, app: Any, *, journal: Any, reaction: str, pressure: Any = None, **kw: Any) -> None:
        super().__init__(app, **kw)
        self.journal = journal
        self.reaction = reaction
        self.pressure = pressure
        if pressure is not None:
            # Called on the socket's receiver thread for every frame, before it is queued for a
            # worker thread: counts envelopes from the moment they arrive, not when a thread is free.
            self.client.on_message_listeners.append(self._arrived)

    def _arrived(self, raw: str) -> None:
        if '"envelope_id"' in raw:
            self.pressure.arrived()

    def handle(self, client: Any, req: SocketModeRequest) -> None:  # type: ignore[override]
        try:
            self._handle(client, req)
        finally:
            if self.pressure is not None:
                self.pressure.acked()

    def _handle(self, client: Any, req: SocketModeRequest) -> None:
        start = time()
        body = req.payload if isinstance(req.payload, dict) else {}
        key = delivery_key(body, self.reaction)
        context: dict[str, Any] = {}
        if key is not None:
            try:
                new = self.journal.record(key, body)
            except Exception:  # noqa: BLE001 - not persisted: no ack, so Slack re-sends it
                log.exception("could not persist Slack envelope %s; leaving it unacked", req.envelope_id)
                return
            if not new:
                client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
                return
            context["delivery_key"] = key
        bolt_req = BoltRequest(mode="socket_mode", body=body, headers=build_headers(req), context=context)
        send_response(client, req, self.app.dispatch(bolt_req), start)
        if key is not None and not bolt_req.context.get("handed_off"):
            self.journal.mark(key)  # the listener did all there was to do before its ack
