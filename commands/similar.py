"""Similar alerts (issue #17, item 5): a new alert that reads like the alert of an open investigation on the same
service joins that investigation instead of starting another, on top of the exact-fingerprint dedup.

Two monitoring systems (Alertmanager and PagerDuty, say) page for one incident with their own fingerprints and
slightly different titles: "[FIRING:1] High error rate on pricing" and "High error rate on pricing (pd-3975)".
Titles are compared as sets of words, lower-cased, without numbers, ids and filler words (Jaccard index); the
service must be the same, named by both triggers, and the open investigation recent. Only an alert from
*another* source joins: one source's own alerts are already grouped by it (Alertmanager's groups, PagerDuty's
incident keys), so two fingerprints from one source are two alerts it means to keep apart.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from store.models import Investigation, utcnow

#: Word-set similarity of the two alert titles from which the new alert joins the open investigation.
SIMILAR_TITLE = 0.6
#: Only investigations opened this recently are joined (an old one stuck in the queue is not this incident).
WINDOW = timedelta(hours=6)
#: Open investigations of the service looked at, newest first.
CANDIDATES = 20
_STATUSES = ("QUEUED", "RUNNING")
_FILLER = frozenset({"firing", "resolved", "alert", "alerts", "the", "a", "an", "on", "of", "in", "for", "is",
                     "are", "at", "to", "and", "since", "from", "with"})


def title_words(title: str) -> frozenset[str]:
    """The words of an alert title that say what is wrong (no counts, ids, thresholds or filler)."""
    words = re.findall(r"[a-z][a-z0-9_\-]*", str(title).lower())
    return frozenset(w for w in words if w not in _FILLER and not any(c.isdigit() for c in w))


def title_similarity(a: str, b: str) -> float:
    """Jaccard index of the two titles' :func:`title_words` (0 when either has none)."""
    wa, wb = title_words(a), title_words(b)
    if not wa or not wb:
        return 0.0
    return len(wa & wb) / len(wa | wb)


def _source(origin: dict[str, Any] | None) -> str:
    origin = origin or {}
    return str(origin.get("source") or origin.get("kind") or "")


def find_similar_open(*, session: Any, trigger: dict[str, Any], origin: dict[str, Any] | None = None
                      ) -> tuple[str, float] | None:
    """The open investigation an alert ``trigger`` should join, with the title similarity; None if none.

    Only alert triggers with a service and a title take part (``{"alert", "service", "title", ...}``), and
    only open investigations started from another source than ``origin``'s.
    """
    service, title = trigger.get("service"), trigger.get("title")
    if not trigger.get("alert") or not service or not title:
        return None
    rows = session.execute(
        select(Investigation.id, Investigation.trigger, Investigation.origin)
        .where(Investigation.status.in_(_STATUSES), Investigation.created_at >= utcnow() - WINDOW,
               Investigation.trigger["service"].as_string() == str(service))
        .order_by(Investigation.created_at.desc()).limit(CANDIDATES)
    )
    best: tuple[str, float] | None = None
    mine = _source(origin)
    for inv_id, other, other_origin in rows:
        if _source(other_origin) == mine:
            continue
        score = title_similarity(str(title), str((other or {}).get("title") or ""))
        if score >= SIMILAR_TITLE and (best is None or score > best[1]):
            best = (inv_id, round(score, 3))
    return best
