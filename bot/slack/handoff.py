"""Work a listener hands off after its ack: a thread pool beside the socket-mode threads.

A listener acks, normalises and calls :meth:`Handoff.defer`; the slow part (recording the
investigation, enqueueing it, ephemerals, views.open) runs here, so the next envelope's ack
never waits behind it. The delivery was committed to ``inbound_deliveries`` before the ack
(:mod:`bot.slack.journal`); when the deferred work finishes the row is marked
``processed``. A row still ``accepted`` after a crash is replayed at start-up
(:mod:`bot.slack.replay`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bot.slack import gate

log = logging.getLogger(__name__)


class Handoff:
    """Two pools: ``work`` (database writes, enqueue) and ``ui`` (views.open, ephemerals).

    ``ui`` is separate because a ``trigger_id`` dies 3 s after the click: views.open must not
    queue behind a burst of investigation starts.

    Args:
        journal: the :class:`~bot.slack.journal.InboundJournal` (marks rows processed).
        threads: size of the work pool. SQLite has one writer, so more threads mostly wait;
            PostgreSQL takes more (keep it under the engine's pool size).
        on_done: called after each successful piece of work (the sweeper's ``poke``).
        pressure: an :class:`~bot.slack.pressure.AckPressure`; ``work`` steps aside while acks are due
            (the ``ui`` lane does not: a ``views.open`` is as urgent as an ack).
    """

    def __init__(self, journal: Any, threads: int = 4, on_done: Callable[[], None] | None = None,
                 pressure: Any = None) -> None:
        self.journal = journal
        self.on_done = on_done
        self.pressure = pressure
        self._work = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="pm-slack-work",
                                        initializer=gate.join, initargs=("low",))
        self._ui = ThreadPoolExecutor(max_workers=2, thread_name_prefix="pm-slack-ui",
                                      initializer=gate.join, initargs=("low",))

    def defer(self, context: Any, fn: Callable[..., Any], *args: Any, ui: bool = False, **kwargs: Any) -> None:
        """Run ``fn(*args, **kwargs)`` after the ack; mark the request's delivery processed when it returns.

        Args:
            context: the Bolt context of the request (carries ``delivery_key``).
            fn: the work; an exception leaves the delivery ``accepted`` for the next start-up replay.
            ui: use the small pool for quick Slack calls that must not wait behind a burst.
        """
        key = context.get("delivery_key")
        context["handed_off"] = True
        replay = bool(context.get("replay"))
        if ui:
            self._ui.submit(self._run, key, fn, args, kwargs, False, replay)
        else:
            self._work.submit(self._run, key, fn, args, kwargs, True, replay)

    def _run(self, key: str | None, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
             yield_to_acks: bool, replay: bool = False) -> None:
        if yield_to_acks and self.pressure is not None:
            self.pressure.wait_quiet()
        try:
            fn(*args, **kwargs)
        except Exception:  # noqa: BLE001 - a pool thread has nobody to raise to
            log.exception("deferred Slack work %s failed; delivery %s stays accepted for replay",
                          getattr(fn, "__name__", fn), key)
            if key and replay:
                # A replayed row is ``replaying``, which the replay never picks up: hand it back.
                self.journal.mark(key, "accepted")
            return
        if key:
            self.journal.mark(key)
        if self.on_done:
            self.on_done()

    def stop(self) -> None:
        """Finish the queued work (so nothing acked is dropped on a clean stop)."""
        self._ui.shutdown(wait=True)
        self._work.shutdown(wait=True)
