"""👍 / 👎 on the Slack report: the real Bolt app (socket mode) against the stand-in Slack, the real pipeline and
the real embedded ChromaDB. The votes land in the database and in the knowledge base's entry; a 👎 disputes
the root cause; a re-sent envelope counts once; reactions on other messages are ignored."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from store.knowledge import feedback_rows
from store.models import InboundDelivery, Investigation
from tests.bot.test_slack_e2e import _chart_in, _parent, _wait_outbox_drained, running_bot

pytestmark = pytest.mark.integration


def test_thumbs_on_the_report_are_feedback_and_a_thumbs_down_disputes(tmp_path: Path) -> None:
    with running_bot(tmp_path) as (fake, bot):
        fake.wait_ack(fake.slash_command("PAY-44706 fast", user="U1", channel="C1"))
        parent = _parent(fake, "C1")
        _chart_in(fake, "C1", parent["ts"])
        _wait_outbox_drained(fake, bot)
        thread = fake.thread("C1", parent["ts"])
        report = next(m for m in thread if any(b.get("type") == "header" for b in m.get("blocks") or []))
        status = next(m for m in thread if m["text"].startswith("Investigation inv-"))
        with bot.runtime.session() as s:
            inv_id = s.scalars(select(Investigation.id)).one()
        assert bot.runtime.memory.kb().get(inv_id) is not None  # the finished investigation is remembered

        def react(user: str, name: str, ts: str, **kw: str) -> None:
            fake.wait_ack(fake.event({"type": "reaction_added", "user": user, "reaction": name,
                                      "item": {"type": "message", "channel": "C1", "ts": ts}}, **kw))

        def votes() -> list[dict]:
            with bot.runtime.session() as s:
                return feedback_rows(session=s, investigation_id=inv_id)

        react("U2", "+1", report["ts"], event_id="Ev-up-1")
        react("U2", "+1", report["ts"], event_id="Ev-up-1")  # Slack re-sends the same event: counted once
        react("U4", "thumbsup::skin-tone-3", report["ts"])
        def indexed() -> dict:
            return bot.runtime.memory.kb().get(inv_id).feedback

        fake.wait_for(lambda: len(votes()) == 2, 10, "two 👍 recorded")
        # the two votes were handled concurrently: the entry still ends with both
        fake.wait_for(lambda: indexed()["up"] == 2, 10, "the entry's tally")
        assert indexed() == {"up": 2, "down": 0, "comments": [], "disputed": False}

        react("U3", "-1", report["ts"])
        fake.wait_for(lambda: len(votes()) == 3, 10, "the 👎 recorded")
        fake.wait_for(lambda: indexed()["down"] == 1, 10, "the entry's tally")
        assert indexed()["disputed"] is True
        assert [v["user"] for v in votes()] == ["U2", "U4", "U3"]

        # a 👍 on the status message, on the alert parent or a :tada: on the report is not feedback
        react("U5", "+1", status["ts"])
        react("U5", "+1", parent["ts"])
        react("U5", "tada", report["ts"])
        # the 👍 button is feedback too
        fake.wait_ack(fake.interactive({"type": "block_actions", "user": {"id": "U6"}, "channel": {"id": "C1"},
                                        "trigger_id": "trig-fb", "actions": [{"action_id": "pm_feedback_up",
                                                                              "value": inv_id, "action_ts": "1"}]}))
        fake.wait_for(lambda: len(votes()) == 4, 10, "the button's vote recorded")
        assert votes()[-1]["user"] == "U6"
        fake.wait_for(lambda: indexed()["up"] == 3, 10, "the entry's tally")
        assert indexed()["disputed"] is False  # the latest vote is a 👍 again

        def ignored() -> int:
            with bot.runtime.session() as s:
                return len(s.scalars(select(InboundDelivery).where(InboundDelivery.status == "ignored")).all())

        fake.wait_for(lambda: ignored() == 2, 10, "the two 👍 off the report handled (ignored)")
        assert len(votes()) == 4


def test_taking_a_thumb_off_the_report_takes_the_vote_back(tmp_path: Path) -> None:
    with running_bot(tmp_path) as (fake, bot):
        fake.wait_ack(fake.slash_command("PAY-44706 fast", user="U1", channel="C1"))
        parent = _parent(fake, "C1")
        _chart_in(fake, "C1", parent["ts"])
        _wait_outbox_drained(fake, bot)
        thread = fake.thread("C1", parent["ts"])
        report = next(m for m in thread if any(b.get("type") == "header" for b in m.get("blocks") or []))
        with bot.runtime.session() as s:
            inv_id = s.scalars(select(Investigation.id)).one()

        def send(kind: str, user: str, name: str, ts: str, **kw: str) -> None:
            fake.wait_ack(fake.event({"type": kind, "user": user, "reaction": name,
                                      "item": {"type": "message", "channel": "C1", "ts": ts}}, **kw))

        def votes() -> list[tuple[str, int]]:
            with bot.runtime.session() as s:
                return [(v["user"], v["vote"]) for v in feedback_rows(session=s, investigation_id=inv_id)]

        def indexed() -> dict:
            return bot.runtime.memory.kb().get(inv_id).feedback

        def status_of(event_id: str) -> str | None:
            with bot.runtime.session() as s:
                return s.scalars(select(InboundDelivery.status)
                                 .where(InboundDelivery.delivery_key == f"ev:{event_id}")).first()

        send("reaction_added", "U2", "+1", report["ts"])
        fake.wait_for(lambda: len(votes()) == 1, 10, "U2's 👍 recorded")
        send("reaction_added", "U3", "-1", report["ts"])
        fake.wait_for(lambda: indexed()["down"] == 1, 10, "U3's 👎 in the entry")
        assert indexed()["disputed"] is True

        # U3 takes the 👎 off: the vote is gone from the database and the entry, and the dispute with it
        send("reaction_removed", "U3", "-1", report["ts"], event_id="Ev-rm-1")
        fake.wait_for(lambda: votes() == [("U2", 1)], 10, "U3's 👎 taken back")
        fake.wait_for(lambda: indexed()["down"] == 0, 10, "the entry's tally")
        assert indexed() == {"up": 1, "down": 0, "comments": [], "disputed": False}
        fake.wait_for(lambda: status_of("Ev-rm-1") == "feedback_removed", 10, "the removal's delivery handled")

        # U2 voted twice (a 👍 reaction and the 👍 button); one removal, re-sent by Slack, takes back one vote
        fake.wait_ack(fake.interactive({"type": "block_actions", "user": {"id": "U2"}, "channel": {"id": "C1"},
                                        "trigger_id": "trig-rm", "actions": [{"action_id": "pm_feedback_up",
                                                                              "value": inv_id, "action_ts": "1"}]}))
        fake.wait_for(lambda: votes() == [("U2", 1), ("U2", 1)], 10, "the button's 👍")
        send("reaction_removed", "U2", "thumbsup::skin-tone-2", report["ts"], event_id="Ev-rm-2")
        send("reaction_removed", "U2", "thumbsup::skin-tone-2", report["ts"], event_id="Ev-rm-2")
        fake.wait_for(lambda: status_of("Ev-rm-2") == "feedback_removed", 10, "the removal handled")
        fake.wait_for(lambda: indexed()["up"] == 1, 10, "the entry's tally")

        # a removal by someone who never voted, of another emoji, or on another message takes nothing back
        send("reaction_removed", "U9", "-1", report["ts"], event_id="Ev-rm-3")
        send("reaction_removed", "U2", "tada", report["ts"], event_id="Ev-rm-4")
        send("reaction_removed", "U2", "+1", parent["ts"], event_id="Ev-rm-5")
        fake.wait_for(lambda: status_of("Ev-rm-3") == "ignored" and status_of("Ev-rm-5") == "ignored", 10,
                      "the removals that take nothing back handled")
        assert status_of("Ev-rm-4") is None  # not a vote: not even journalled
        assert votes() == [("U2", 1)]
        assert indexed() == {"up": 1, "down": 0, "comments": [], "disputed": False}


def test_a_note_in_the_thread_is_a_comment_not_a_question(tmp_path: Path) -> None:
    """`note: …` in the report's thread is kept as a comment (database and knowledge base), said as kept,
    and shown with the incident the next time it is seen; a question in the same thread is still answered."""
    from publishers.markdown import feedback_note

    with running_bot(tmp_path) as (fake, bot):
        fake.wait_ack(fake.slash_command("PAY-44706 fast", user="U1", channel="C1"))
        parent = _parent(fake, "C1")
        _chart_in(fake, "C1", parent["ts"])
        _wait_outbox_drained(fake, bot)
        with bot.runtime.session() as s:
            inv_id = s.scalars(select(Investigation.id)).one()

        def say(text: str) -> dict:
            msg = fake.add_message("C1", text, user="U7", thread_ts=parent["ts"])
            fake.wait_ack(fake.event({"type": "message", "channel": "C1", "user": "U7", "text": text,
                                      "ts": msg["ts"], "thread_ts": parent["ts"]}))
            return msg

        def reply_to(msg: dict) -> str:
            return fake.wait_for(lambda: next((m["text"] for m in fake.thread("C1", parent["ts"])
                                               if m.get("user") == "UBOT" and float(m["ts"]) > float(msg["ts"])),
                                              None), 30, "the bot's reply")

        note = say("Note: the real trigger was the <!channel> cron at 02:00, see runbook")
        assert reply_to(note).startswith("<@U7> Noted:")  # to the writer, in the thread
        with bot.runtime.session() as s:
            rows = feedback_rows(session=s, investigation_id=inv_id)
        assert [(r["user"], r["vote"], r["comment"]) for r in rows] == [
            ("U7", 0, "the real trigger was the <!channel> cron at 02:00, see runbook")]
        fake.wait_for(lambda: bot.runtime.memory.kb().get(inv_id).feedback["comments"] or None, 10, "the entry's comments")
        feedback = bot.runtime.memory.kb().get(inv_id).feedback
        assert feedback["comments"] == ["the real trigger was the <!channel> cron at 02:00, see runbook"]
        assert feedback["up"] == feedback["down"] == 0 and feedback["disputed"] is False
        assert "latest comment" in (feedback_note(feedback) or "")

        question = say("why not web-frontend?")  # not a note: answered as before, nothing recorded
        assert "Noted:" not in reply_to(question)
        with bot.runtime.session() as s:
            assert len(feedback_rows(session=s, investigation_id=inv_id)) == 1
