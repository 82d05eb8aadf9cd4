"""A report stopped by its budget says it is partial in Slack, Markdown and Jira, and the Slack
status message shows the cost against the investigation's cap."""

from __future__ import annotations

from publishers.jira import render_report as jira_report
from publishers.markdown import render_report as markdown_report
from publishers.slack import report_blocks, status_blocks

REASON = "budget reached: spent $5.0100 of the investigation's $5.00; published what was found so far."
PARTIAL = {"verdict": "INCONCLUSIVE", "confidence": None, "partial": True, "partial_reason": REASON,
           "phases_done": ["INITIALIZING", "EVIDENCE"], "hypotheses": [{"statement": "pool <exhausted>"}],
           "root_cause": {"summary": "Not verified (the budget ran out first): pool exhausted"}}
INV = {"id": "inv-1", "status": "RUNNING", "phase": "HYPOTHESES", "trigger": {"text": "slow"},
       "tokens_in": 120_000, "tokens_out": 3_000, "cost_usd": 4.2, "budget_usd": 5.0}


def test_slack_marks_the_report_partial_before_anything_else():
    text, blocks = report_blocks(INV, PARTIAL)
    assert text.startswith("PARTIAL INCONCLUSIVE")
    assert blocks[0]["text"]["text"].startswith("PARTIAL · INCONCLUSIVE · confidence ?%")
    note = blocks[1]["elements"][0]["text"]
    assert note.startswith(":warning: *Partial report*: budget reached") and "INITIALIZING, EVIDENCE" in note
    _text, full = report_blocks(INV, {**PARTIAL, "partial": False})
    assert "Partial report" not in str(full)


def test_markdown_and_jira_say_partial():
    assert f"> **Partial report:** {REASON}" in markdown_report(PARTIAL)
    assert "*Partial report:* budget reached" in jira_report(PARTIAL, "inv-1")
    assert "Partial report" not in markdown_report({**PARTIAL, "partial": False})


def test_status_shows_tokens_and_cost_of_the_cap():
    _text, blocks = status_blocks(INV)
    assert ":abacus: 123,000 tokens · $4.20 of $5.00" in str(blocks)
    _text, blocks = status_blocks({**INV, "budget_usd": None})
    assert ":abacus: 123,000 tokens · $4.20\"" in str(blocks).replace("'", '"')
