"""Start the investigations of acked slash commands in batches: one transaction per burst.

A slash command is acked as soon as its envelope is in ``inbound_deliveries``; starting its
investigation comes after. One start alone costs a handful of statements and a commit (the
investigation, its ``created`` event and Slack delivery, the link back to the inbound row);
500 of them one by one kept the first thread message of a burst seconds away. Here one thread
takes every start queued, records them all with :func:`commands.investigate.start_many` and
links their inbound rows in the same transaction, then pokes the outbox sweeper, which posts the
threads. A request already being investigated (same fingerprint) is attached, and its
requester is told so in an ephemeral, as the one-by-one path did.

Nothing acked is lost: a delivery stays ``accepted`` until its row is linked here, so a crash
before that replays it (:mod:`bot.slack.replay`), and a failed batch is retried one by one so a
single bad request cannot sink the others.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.slack import gate
from bot.slack.inbound import link_many
from bot.slack.journal import take_batch
from commands import investigate
from commands.errors import BudgetStopped, UnknownTrigger
from commands.requests import InvestigationRequest
from publishers.escape import mrkdwn

log = logging.getLogger(__name__)

#: At most this many starts share one transaction.
MAX_BATCH = 500


@dataclass(frozen=True)
class PendingStart:
    """One acked slash command waiting for its investigation."""

    request: InvestigationRequest
    key: str | None
    replay: bool = False


class StartBatcher:
    """One thread that records queued starts in batches.

    Args:
        runtime: the pipeline runtime (``session()``, ``enqueue()``).
        journal: the :class:`~bot.slack.journal.InboundJournal` (hands replayed rows back on failure).
        client: the WebClient for the "already being investigated" ephemerals.
        on_done: called after each batch (the sweeper's ``poke``).
        pressure: an :class:`~bot.slack.pressure.AckPressure`: a batch waits (at most its
            ``max_wait_s``) while envelopes wait for their ack, and then takes all of them at once.
    """

    def __init__(self, runtime: Any, journal: Any, client: Any, on_done: Callable[[], None] | None = None,
                 pressure: Any = None) -> None:
        self.runtime, self.journal, self.client, self.on_done = runtime, journal, client, on_done
        self.pressure = pressure
        self._queue: queue.Queue[PendingStart | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="pm-slack-starts", daemon=True)
        self._idle = threading.Condition()
        self._busy = 0

    def start(self) -> StartBatcher:
        self._thread.start()
        return self

    def submit(self, request: InvestigationRequest, key: str | None, *, replay: bool = False) -> None:
        """Queue one start (returns at once)."""
        with self._idle:
            self._busy += 1
        self._queue.put(PendingStart(request, key, replay))

    def join(self, timeout: float = 30.0) -> bool:
        """Wait until every start submitted so far is done; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout)

    def stop(self) -> None:
        """Finish what is queued (nothing acked is dropped on a clean stop), then stop."""
        self._queue.put(None)
        self._thread.join(30)

    def _loop(self) -> None:
        gate.join("low")
        while True:
            first = self._queue.get()
            if first is None:
                return
            if self.pressure is not None:
                self.pressure.wait_quiet()
            batch, stop = take_batch(self._queue, first, MAX_BATCH)
            try:
                self._run(batch)
            finally:
                with self._idle:
                    self._busy -= len(batch)
                    self._idle.notify_all()
            if stop:
                return

    def _run(self, batch: list[PendingStart]) -> None:
        unknown = self._unknown_triggers(batch)
        for pending in batch:
            exc = unknown.get(_lookup_key(pending.request))
            if exc is not None:
                self._refuse(pending, exc)
        batch = [p for p in batch if _lookup_key(p.request) not in unknown]
        if not batch:
            self._done()
            return
        linked = False

        def link(session: Any, results: list[investigate.StartResult]) -> None:
            # In the batch's own transaction: the inbound rows are linked by the same commit that
            # records their investigations (one commit fewer before the threads are posted, and no
            # window in which a crash leaves a recorded start "accepted" for a replay).
            nonlocal linked
            link_many(session=session, links=[(p.key, r.investigation_id)
                                              for p, r in zip(batch, results, strict=True) if p.key])
            linked = True

        try:
            results = investigate.start_many(runtime=self.runtime, requests=[p.request for p in batch],
                                             before_commit=link)
        except Exception:  # noqa: BLE001 - isolate the bad request: one by one
            log.warning("starting %d investigations in one batch failed; starting them one by one", len(batch),
                        exc_info=True)
            for pending in batch:
                self._run_one(pending)
            self._done()
            return
        self._link([(p, r) for p, r in zip(batch, results, strict=True)], linked=linked)
        self._done()

    def _unknown_triggers(self, batch: list[PendingStart]) -> dict[str, UnknownTrigger]:
        """Look each distinct ticket / alert the batch names up once (twenty people typing the same
        key are one look-up); returns what was not found, by :func:`_lookup_key`."""
        unknown: dict[str, UnknownTrigger] = {}
        seen: set[str] = set()
        for pending in batch:
            key = _lookup_key(pending.request)
            if key in seen:
                continue
            seen.add(key)
            try:
                investigate.check_trigger(runtime=self.runtime, request=pending.request)
            except UnknownTrigger as exc:
                unknown[key] = exc
        return unknown

    def _refuse(self, pending: PendingStart, exc: UnknownTrigger) -> None:
        """Record nothing for a request whose ticket / alert does not exist: tell the requester privately,
        and mark its delivery ``refused`` so it is not replayed."""
        if pending.key:
            self.journal.mark(pending.key, "refused")
        try:
            self.client.chat_postEphemeral(channel=pending.request.origin.channel,
                                           user=pending.request.requested_by, text=f":warning: {mrkdwn(str(exc))}")
        except Exception:  # noqa: BLE001 - the refusal is logged either way
            log.warning("could not tell %s that %s is unknown", pending.request.requested_by,
                        pending.request.trigger, exc_info=True)
        log.info("not started, unknown trigger: %s", exc)

    def _run_one(self, pending: PendingStart) -> None:
        try:
            result = investigate.start(runtime=self.runtime, request=pending.request)
        except BudgetStopped as exc:  # said to the requester; not left for replay (an admin must approve)
            if pending.key:
                self.journal.mark(pending.key, "refused")
            try:
                self.client.chat_postEphemeral(channel=pending.request.origin.channel,
                                               user=pending.request.requested_by,
                                               text=f":no_entry: Not started: {mrkdwn(str(exc))}")
            except Exception:  # noqa: BLE001 - the refusal is logged either way
                log.warning("could not tell %s the budget refused a start", pending.request.requested_by,
                            exc_info=True)
            log.warning("budget refused a Slack start: %s", exc)
            return
        except UnknownTrigger as exc:  # it went missing since the batch looked: say so, record nothing
            self._refuse(pending, exc)
            return
        except Exception:  # noqa: BLE001 - leave the delivery for replay
            log.exception("starting an investigation for Slack delivery %s failed; it stays for replay", pending.key)
            if pending.key and pending.replay:
                self.journal.mark(pending.key, "accepted")  # a replayed row must be picked up again
            return
        self._link([(pending, result)])

    def _link(self, done: list[tuple[PendingStart, investigate.StartResult]], linked: bool = False) -> None:
        links = [(p.key, r.investigation_id) for p, r in done if p.key]
        if links and not linked:
            try:
                with self.runtime.session() as session:
                    link_many(session=session, links=links)
                    session.commit()
            except Exception:  # noqa: BLE001 - started already; a replay would only attach
                log.exception("linking %d Slack deliveries to their investigations failed", len(links))
        for pending, result in done:
            if not result.created:
                self._tell_attached(pending.request, result.investigation_id)

    def _tell_attached(self, request: InvestigationRequest, investigation_id: str) -> None:
        try:
            self.client.chat_postEphemeral(channel=request.origin.channel, user=request.requested_by,
                                           text=f"This is already being investigated in `{investigation_id}`; "
                                                "I added you to it.")
        except Exception:  # noqa: BLE001 - a courtesy note; the thread says it too
            log.warning("could not tell %s about %s", request.requested_by, investigation_id, exc_info=True)

    def _done(self) -> None:
        if self.on_done:
            self.on_done()


def _lookup_key(request: InvestigationRequest) -> str:
    """What a trigger look-up depends on: the trigger, where it came from and the sources asked."""
    return json.dumps([request.trigger, request.origin.kind, request.sources], sort_keys=True, default=str)
