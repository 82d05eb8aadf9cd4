"""Outside text, escaped for the medium it goes to — one place per medium (issue #12).

Tickets, alert titles, log lines, chat and user-typed text are data. In Slack mrkdwn, ``<…>``
makes mentions (``<!channel>``, ``<@U123>``, ``<!subteam^S1>``) and links (``<https://x|click>``),
so ``&``, ``<`` and ``>`` are escaped as Slack's formatting guide says (``&amp;``, ``&lt;``,
``&gt;``); the text then shows as typed and pings nobody. Block Kit ``plain_text`` is not parsed
and needs no escaping. In Jira wiki markup, the characters that start markup (``*`` bold,
``_`` italics, ``{`` macros, ``[`` links, ``|`` tables, …) are escaped with a backslash.
"""

from __future__ import annotations

import re
from typing import Any

_SLACK = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_USER_ID = re.compile(r"^[UW][A-Z0-9]{1,20}$")
_JIRA_SPECIAL = set("*_+^~?-{}[]|!#\\")


def mrkdwn(text: Any) -> str:
    """``text`` safe inside Slack mrkdwn (and in a message's fallback ``text``): shows as typed, pings nobody."""
    return str(text if text is not None else "").translate(_SLACK)


def mention(user: Any) -> str | None:
    """``<@U123>`` for a real Slack user id, else None (a requester like "jira" or "pagerduty" is not a person)."""
    return f"<@{user}>" if isinstance(user, str) and _USER_ID.match(user) else None


def jira(text: Any) -> str:
    """``text`` safe inside Jira wiki markup: every markup character escaped, on one line."""
    s = str(text if text is not None else "")
    out = "".join("\\" + ch if ch in _JIRA_SPECIAL else ch for ch in s)
    return out.replace("\r", " ").replace("\n", " ")
