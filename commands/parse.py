"""Turn what a person typed into a trigger."""

from __future__ import annotations

import re

from commands.errors import BadRequest
from commands.requests import MODES

# Jira-style keys: a project key of capitals/digits, a dash, a number (SCHED-45895).
_TICKET = re.compile(r"^[A-Z][A-Z0-9_]{1,19}-\d{1,9}$")
# Alert ids as PagerDuty / Grafana / Alertmanager hand them out in our sources:
# a short lowercase prefix and a number or hex (pd-7781, am-2d06975d, gr-12).
_ALERT = re.compile(r"^(?:pd|am|gr|alert|grafana|pagerduty|alertmanager)[-_:][0-9a-z]{2,40}$", re.I)

# Text in straight or curly quotes (Slack turns "x" into “x” on some clients).
_QUOTED = re.compile(r'^["\u201c\u201d\'](.*)["\u201c\u201d\']$', re.S)


def parse_trigger_text(text: str) -> dict[str, str]:
    """Classify free input as a ticket key, an alert id or free text.

    Raises:
        BadRequest: when the text is empty.
    """
    text = (text or "").strip()
    if not text:
        raise BadRequest("say what to investigate: a ticket key (SCHED-45895), an alert id (pd-7781) or a sentence")
    quoted = _QUOTED.match(text)
    if quoted and quoted.group(1).strip():
        # "NOPE-99999" in quotes: the person asks for the words themselves, not a ticket look-up.
        return {"text": quoted.group(1).strip()[:2000]}
    if _TICKET.match(text):
        return {"ticket": text}
    if _ALERT.match(text):
        return {"alert": text}
    return {"text": text[:2000]}


def split_mode(words: list[str], default: str = "balanced") -> tuple[list[str], str]:
    """Pull a trailing ``fast|balanced|deep`` off a list of words."""
    if words and words[-1].lower() in MODES:
        return words[:-1], words[-1].lower()
    return words, default
