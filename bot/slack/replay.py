"""Replay Slack deliveries that were acked but whose work never finished (a crash after the ack).

A delivery is acked once it is committed to ``inbound_deliveries`` with status ``accepted``;
the deferred work marks it ``processed`` (or links it to its investigation). A row still
``accepted`` well after it arrived belonged to a process that died in between. It is claimed
with a compare-and-set (``accepted`` → ``replaying``), so two bot processes never replay the same
row, and dispatched through the Bolt app again. The ack of a replay goes nowhere (the envelope
was acked long ago); its ephemeral reply is lost, the thread messages are not.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from slack_bolt.request import BoltRequest
from sqlalchemy import select, update

from bot.slack.inbound import SOURCE
from store.models import InboundDelivery, utcnow

log = logging.getLogger(__name__)


def replay_unfinished(*, app: Any, runtime: Any, journal: Any, older_than_s: float = 60.0,
                      limit: int = 500) -> int:
    """Dispatch again every Slack delivery left ``accepted`` for longer than ``older_than_s``.

    Args:
        app: the Bolt app.
        runtime: the pipeline runtime (``session()``).
        journal: marks replayed rows processed when the listener did not hand work off.
        older_than_s: grace for work still in flight in a live process (this one or a sibling).
        limit: rows per call.

    Returns:
        How many deliveries were replayed.
    """
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    with runtime.session() as s:
        rows = s.execute(select(InboundDelivery.id, InboundDelivery.delivery_key, InboundDelivery.payload)
                         .where(InboundDelivery.source == SOURCE, InboundDelivery.status == "accepted",
                                InboundDelivery.received_at < cutoff)
                         .order_by(InboundDelivery.id).limit(limit)).all()
    replayed = 0
    for row_id, key, payload in rows:
        with runtime.session() as s:
            won = s.execute(update(InboundDelivery).where(InboundDelivery.id == row_id,
                                                          InboundDelivery.status == "accepted")
                            .values(status="replaying")).rowcount
        if won != 1:
            continue
        req = BoltRequest(mode="socket_mode", body=payload, context={"delivery_key": key, "replay": True})
        try:
            app.dispatch(req)
        except Exception:  # noqa: BLE001 - one bad row must not stop the others
            log.exception("replaying Slack delivery %s failed; it stays for the next replay", key)
            with runtime.session() as s:
                s.execute(update(InboundDelivery).where(InboundDelivery.id == row_id).values(status="accepted"))
            continue
        if not req.context.get("handed_off"):
            journal.mark(key)
        replayed += 1
    if replayed:
        log.warning("replayed %d Slack deliveries left unfinished by an earlier process", replayed)
    return replayed
