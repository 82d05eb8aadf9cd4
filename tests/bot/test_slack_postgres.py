"""The bot's front door on PostgreSQL through the real Bolt app and the stand-in Slack (socket mode).

On PostgreSQL the journal records each batch of envelopes with one statement on a connection of its
own (autocommit), and the start batcher links the inbound rows in the transaction that records the
investigations. Nothing accepted may be lost and a re-sent envelope must stay one investigation.
"""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
from sqlalchemy import func, select

from store.models import InboundDelivery, Investigation
from tests.bot.test_slack_e2e import running_bot

pytestmark = pytest.mark.integration


def test_a_burst_on_postgresql_is_acked_recorded_once_and_linked(tmp_path: Path, pg_url: str) -> None:
    with running_bot(tmp_path, worker=False, DATABASE_URL=pg_url) as (fake, bot):
        assert bot.runtime.engine.dialect.name == "postgresql"
        envelopes = [(fake.slash_command(f"checkout is slow {i}", user=f"U{i}", trigger_id=f"trig-{i}"), i)
                     for i in range(40)]
        for env, _i in envelopes:
            assert "Starting an investigation" in fake.wait_ack(env)["text"]
        # Slack re-sends an envelope it thinks was not acked: same trigger_id, a new envelope id
        again = fake.slash_command("checkout is slow 7", user="U7", trigger_id="trig-7")
        assert not (fake.wait_ack(again) or {}).get("text")  # a repeat: acked empty, dropped
        fake.wait_for(lambda: len([m for m in fake.bot_messages("C1") if not m.get("thread_ts")]) >= 40, 30,
                      "40 parent messages")
        assert bot.starts.join(10)

        def linked() -> bool:
            with bot.runtime.session() as s:
                return not s.scalar(select(func.count()).select_from(InboundDelivery)
                                    .where(InboundDelivery.investigation_id.is_(None)))
        fake.wait_for(linked, 10, "every delivery linked to its investigation")
        with bot.runtime.session() as s:
            assert s.scalar(select(func.count()).select_from(Investigation)) == 40
            rows = s.execute(select(InboundDelivery.status, InboundDelivery.payload)).all()
        assert len(rows) == 40 and {status for status, _ in rows} == {"processed"}
        assert sorted(p["trigger_id"] for _, p in rows) == sorted(f"trig-{i}" for i in range(40))
        # the journal writes on a connection of its own, outside the pool's sessions
        assert bot.journal._conn is not None
        # the start-up heap is out of the collector's way while the bot runs, and given back after
        assert gc.get_freeze_count() > 10_000
    assert gc.get_freeze_count() == 0
    assert len([m for m in fake.bot_messages("C1") if not m.get("thread_ts")]) == 40
