"""Answer a follow-up question in an investigation's thread from its evidence (no LLM).

"what changed in payments?", "show the errors", "why not the checkout deploy?",
"what's the root cause?", "status?" are answered from the investigation's report,
its phase checkpoints and its progress events. The answer is deterministic: the same
question on the same evidence gives the same text. When the composition root passes an
``answerer`` (``agents.followup.make_answerer(settings)``, i.e. ANTHROPIC_API_KEY is set), Claude
writes the answer from the same evidence instead; its tokens and cost are stored on an AgentRun
(agent ``followup``) and the investigation. If Claude fails (API error, timeout, budget), the
deterministic answer is posted with a note saying so.

The answer goes back through the outbox as a ``milestone`` event flagged ``followup``,
so it reaches Slack exactly once, with the same 429 handling as any progress update.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from typing import Any

from sqlalchemy import select

from agents.evidence.timeutil import fmt_ts
from agents.evidence.timeutil import parse_ts as parse_iso
from agents.llm import Completion, LLMError
from commands.errors import BadRequest
from publishers.escape import mrkdwn
from store import agent_runs, checkpoints, investigations, outbox
from store.errors import NotFound
from store.models import Investigation, Publication

MAX_ITEMS = 8
_CHANGE_KINDS = {"deploy", "config", "feature_flag", "db_migration", "migration", "rollback", "infra"}
_STOP = {"the", "a", "an", "why", "not", "what", "about", "is", "was", "it", "in", "on", "of", "to", "did",
         "does", "show", "me", "change", "changes", "changed", "deploy", "deployment", "and", "or", "this",
         "that", "blame", "you", "we", "isn't", "wasn't", "cause", "root", "errors", "error", "any", "there",
         "how", "please", "for", "with", "from"}


def find_thread_investigation(*, session: Any, channel: str, thread_ts: str) -> str | None:
    """The investigation whose Slack thread is ``(channel, thread_ts)``, or None.

    A thread belongs to an investigation when the investigation started in it (its origin's
    ``thread_ts``, e.g. a reaction) or when the Slack publisher opened it (the Publication's
    ``thread_ts``). The newest match wins (a re-run posts into the same thread).
    """
    by_origin = session.scalars(
        select(Investigation.id)
        .where(Investigation.origin["channel"].as_string() == channel,
               Investigation.origin["thread_ts"].as_string() == thread_ts)
        .order_by(Investigation.created_at.desc())
    ).first()
    by_pub = session.scalars(
        select(Publication.investigation_id)
        .where(Publication.sink == "slack", Publication.external_ref["thread_ts"].as_string() == thread_ts,
               Publication.external_ref["channel"].as_string() == channel)
        .order_by(Publication.created_at.desc())
    ).first()
    if by_origin and by_pub:
        # Both: prefer the newer investigation (ids start with their creation time).
        return max(by_origin, by_pub)
    return by_origin or by_pub


FOLLOWUP_AGENT = "followup"
FOLLOWUP_PHASE = "FOLLOWUP"

log = logging.getLogger(__name__)


def ask(*, runtime: Any, investigation_id: str, question: str, user: str | None = None,
        message_ts: str | None = None, answerer: Any = None) -> str:
    """Answer ``question`` and queue the answer as a ``milestone`` (followup) event.

    Args:
        runtime: the pipeline runtime (``runtime.session()``).
        investigation_id: the thread's investigation.
        question: the user's text (bot mention already removed).
        user: who asked (the answer mentions them).
        message_ts: the question's Slack ts (kept on the event for traceability).
        answerer: an ``agents.followup.FollowupAnswerer`` (Claude), or None for the deterministic answer.

    Returns:
        The answer text.

    Raises:
        BadRequest: unknown investigation id.
    """
    with runtime.session() as session:
        try:
            inv = investigations.get(session=session, investigation_id=investigation_id)
        except NotFound:
            raise BadRequest(f"no investigation {investigation_id!r}; start one with /investigate") from None
        inv_dict = investigations.to_dict(inv)
        cps = [{**checkpoints.to_dict(cp), "output": _output(runtime, cp)}
               for cp in checkpoints.list_for(session=session, investigation_id=inv.id)]
        evs = [outbox.event_to_dict(e) for e in outbox.events(session=session, investigation_id=inv.id)]
        remaining = (inv.budget_usd - (inv.cost_usd or 0.0)) if inv.budget_usd is not None else None
        run_id = None
        if answerer is not None:
            run_id = agent_runs.start(session=session, investigation_id=inv.id, agent=FOLLOWUP_AGENT,
                                      phase=FOLLOWUP_PHASE, model=answerer.model).id
    payload: dict[str, Any] = {"followup": True, "user": user, "question_ts": message_ts}
    done: Completion | None = None
    error: str | None = None
    if answerer is not None:
        # The model call runs outside any database session: it can take seconds.
        try:
            done = answerer.answer(question, inv_dict, cps, budget_usd=remaining)
        except LLMError as exc:  # API error, timeout, or BudgetExceeded: the message says which
            error = str(exc)
        except Exception as exc:  # noqa: BLE001 — a bug in the LLM path must still leave an answer
            log.exception("follow-up answerer failed")
            error = f"{type(exc).__name__} in the Claude answerer"
    if done is not None:
        text = mrkdwn(done.text)  # the model's words quote logs and tickets: they must not ping or link
        payload.update(answered_by="claude", model=done.model, tokens_in=done.tokens_in,
                       tokens_out=done.tokens_out, cost_usd=done.cost_usd)
    else:
        # Evidence quotes outside text (log templates, ticket and alert words): escaped once, here, so the
        # answer's own formatting stays ours and nothing quoted can mention, link or format.
        text = answer(question, _escaped(inv_dict), _escaped(cps), _escaped(evs))
        payload["answered_by"] = "evidence"
        if error is not None:
            text += f"\n\n_(Claude could not answer: {mrkdwn(error)}. This answer comes straight from the evidence.)_"
            payload["llm_error"] = error
    with runtime.session() as session:
        if run_id is not None:
            agent_runs.finish(session=session, run_id=run_id, status="done" if done else "failed",
                              tokens_in=done.tokens_in if done else 0, tokens_out=done.tokens_out if done else 0,
                              cost_usd=done.cost_usd if done else 0.0, error=error,
                              trace_ref=done.message_id if done else None)
        outbox.append(session=session, investigation_id=investigation_id, kind="milestone",
                      payload={"text": text, **payload})
        session.commit()
    return text


def _output(runtime: Any, cp: Any) -> Any:
    """A checkpoint's output: inline, or (when it was too large to keep inline) from the artifact store."""
    if cp.output is not None or not cp.output_ref:
        return cp.output
    artifacts = getattr(runtime, "artifacts", None)
    if artifacts is None:
        return None
    try:
        return artifacts.get_json(cp.output_ref)
    except Exception as exc:  # noqa: BLE001 — a lost artifact narrows the answer, it must not stop it
        log.warning("cannot read %s for a follow-up: %s", cp.output_ref, exc)
        return None


# -- the deterministic answerer ---------------------------------------------------------------------


def answer(question: str, inv: dict[str, Any], cps: list[dict[str, Any]], events: list[dict[str, Any]]) -> str:
    """The answer to ``question`` from an investigation's dict, checkpoints and events.

    The question is read for what it names (services and change ids the investigation saw, change
    kinds) and for time words (before / after the onset, since the deploy); the answer is about
    those only, and says so when the evidence cannot answer it.

    Args:
        question: free text.
        inv: store.investigations.to_dict of the investigation.
        cps: its checkpoints (``output`` holds each phase's JSON).
        events: its progress events.

    Returns:
        Slack mrkdwn text.
    """
    q = " ".join(question.lower().replace("’", "'").split())
    report = inv.get("report") or {}
    ev = _Evidence(report, cps)
    asked = _Asked(q, ev, report)
    if re.search(r"\bwhy\s+not\b|\bwhat about\b|\bruled out\b|\bisn'?t it\b|\bwasn'?t it\b|\bcould it be\b"
                 r"|\bwhy (?:is|was)n'?t\b|\bwhy did you (?:rule out|exclude|dismiss)\b", q):
        return _why_not(asked, inv, report, ev)
    if re.search(r"\bwho\b.*\b(deploy|chang|push|roll|ship|made)", q):
        return _who(asked, ev)
    if re.search(r"\bwhen did\b.*\b(start|begin|began)|\bonset\b|\bstart(ed)? when\b|\bwhat time\b", q) \
            and not re.search(r"\bchang|\bdeploy|\brollouts?\b|\bflags?\b", q):
        return _when(report)
    if re.search(r"\b(what|which)\b.*\bchang|\bchanges?\b|\bdeploy(s|ed|ments?)?\b|\brollouts?\b|\bflags?\b"
                 r"|\bconfig(uration)?s?\b|\bmigrations?\b|\breleases?\b", q):
        return _changes(asked, ev)
    if re.search(r"\berrors?\b|\bexceptions?\b|\blogs?\b|\bfail(ing|ures?)\b|\b5xx\b|\bstack ?traces?\b", q):
        return _errors(asked, ev)
    if re.search(r"\bstatus\b|\bprogress\b|\bdone\b|\bhow long\b|\bphase\b|\bstill running\b", q):
        return _status(inv, events)
    if re.search(r"\bfix\b|\bremediat|\bmitigat|\brollback\b|\broll back\b|\bwhat (should|do|can) we do\b"
                 r"|\bhow do (we|i) (recover|resolve|undo)\b", q):
        return _fix(report)
    if re.search(r"\broot cause\b|\bwhy\b|\bcause[ds]?\b|\bverdict\b|\bconfiden|\bculprit\b|\bwhat happened\b"
                 r"|\bwhat broke\b", q):
        return _root_cause(inv, report)
    return ("I can't answer that from this investigation's evidence. Ask me e.g. _what changed in <service> "
            "before the onset?_, _show the errors_, _why not the <service> deploy?_, _who deployed it?_, "
            "_when did it start?_, _status_ or _what's the fix?_")


class _Evidence:
    """Changes, error lines, hypotheses and services found anywhere in the report and the checkpoints."""

    def __init__(self, report: dict[str, Any], cps: list[dict[str, Any]]) -> None:
        self.hypotheses: list[dict[str, Any]] = list(report.get("hypotheses") or [])
        self.changes: dict[str, dict[str, Any]] = {}
        self.errors: list[dict[str, Any]] = []
        self.items: list[dict[str, Any]] = []
        self.services: set[str] = set()
        #: the end of the investigated window (CONTEXT_GATHERING's): the "now" of "in the last hour"
        self.window_end: str | None = None
        for cp in cps:
            out = cp.get("output")
            if isinstance(out, dict):
                self.services.update(str(s) for s in out.get("known_services") or [] if s)
                window = out.get("window")
                if isinstance(window, dict) and parse_iso(window.get("end")) is not None:
                    self.window_end = str(window["end"])
        for source in [report, *[cp.get("output") for cp in cps]]:
            for d in _dicts(source):
                self._classify(d)
        for entry in report.get("timeline") or []:
            if entry.get("kind") in _CHANGE_KINDS or str(entry.get("ref", "")).startswith("chg-"):
                ref = str(entry.get("ref"))
                self.changes.setdefault(ref, {"id": ref, "ts": entry.get("ts"), "kind": entry.get("kind"),
                                              "summary": entry.get("summary"), "service": entry.get("service")})
        self.services.update(str(c["service"]) for c in self.changes.values() if c.get("service"))
        self.services.update(str(h["service"]) for h in self.hypotheses if h.get("service"))

    def _classify(self, d: dict[str, Any]) -> None:
        if d.get("id") and (d.get("kind") in _CHANGE_KINDS or str(d.get("id")).startswith("chg-")) \
                and d.get("service"):
            self.changes.setdefault(str(d["id"]), d)
        elif d.get("source") == "logs" and d.get("summary"):
            self.items.append(d)
        elif str(d.get("level", "")).upper() in ("ERROR", "FATAL") and (d.get("message") or d.get("template")):
            self.errors.append(d)
        elif d.get("template") and (d.get("count") or d.get("total")):
            self.errors.append(d)


_KIND_WORDS = {"deploy": ("deploy", "release", "rollout"), "config": ("config",), "feature_flag": ("flag",),
               "db_migration": ("migration", "schema"), "infra": ("infra", "scale", "scaling")}


class _Asked:
    """What a question names: services, change ids, change kinds and a time filter."""

    def __init__(self, q: str, ev: _Evidence, report: dict[str, Any]) -> None:
        self.q = q
        self.onset = _onset(report)
        self.culprit = (report.get("root_cause") or {}).get("change_id")
        self.services = sorted({s for s in ev.services if re.search(rf"(?<![\w-]){re.escape(s.lower())}(?![\w-])", q)},
                               key=len, reverse=True)
        # "web-frontend" also names "frontend" if that were a service: keep the longest names only
        self.services = [s for s in self.services if not any(s != o and s in o for o in self.services)]
        self.change_ids = [c for c in re.findall(r"\bchg-[0-9a-z]+\b", q)]
        self.after, self.before, self.time_words, rest = self._time(q, ev)
        if rest != q:  # "before the pricing deploy": pricing names the time, not what to list
            self.services = [x for x in self.services
                             if re.search(rf"(?<![\w-]){re.escape(x.lower())}(?![\w-])", rest)]
        # "since the deploy" is a time, not a wish to see only deploys
        self.kinds = [k for k, words in _KIND_WORDS.items() if any(re.search(rf"\b{w}", rest) for w in words)]
        named = {s.lower() for s in self.services} | set(self.change_ids)
        # words that look like a name the evidence does not know ("payments", "chg-0000")
        self.unknown = [w for w in _words(rest) if w not in named and not any(w in n for n in named)
                        and w not in _TIME_WORDS and not any(w.startswith(x) for words in _KIND_WORDS.values()
                                                             for x in words)]

    def _time(self, q: str, ev: _Evidence) -> tuple[str | None, str | None, str, str]:
        """(only after this ts, only before this ts, how to say it, the question without the time words)."""
        onset = self.onset
        incident = r"(?:the )?(?:onset|incident|outage|it (?:started|began)|(?:the )?(?:errors|problems?) started)"
        m = re.search(rf"\b(before|prior to|leading up to|ahead of) {incident}", q)
        if onset and m:
            return None, onset, f"before the onset ({_hm(onset)})", q[:m.start()] + q[m.end():]
        m = re.search(rf"\b(after|since|following) {incident}", q)
        if onset and m:
            return onset, None, f"after the onset ({_hm(onset)})", q[:m.start()] + q[m.end():]
        span = _span(q, ev.window_end)
        if span is not None:
            return span
        m = _CLOCK.search(q)
        hour = _hour(m) if m else None
        if onset and m and hour is not None:
            # a clock time is read on the onset's day, in UTC (the times every answer shows)
            ts, rest = f"{onset[:10]}T{hour:02d}:{m.group(3) or '00'}:00Z", q[:m.start()] + q[m.end():]
            if m.group(1) == "before":
                return None, ts, f"before {ts[11:16]} UTC", rest
            return ts, None, f"since {ts[11:16]} UTC", rest
        m = re.search(r"\b(since|after|before|prior to) (?:the |that |this |our )?(?:([\w.-]+) )?"
                      r"(deploy\w*|release|rollout|change)\b", q)
        if m:
            ref = self._reference_change(ev, m.group(2))
            if ref is not None and ref.get("ts"):
                ts, word, rest = str(ref["ts"]), m.group(1), q[:m.start()] + q[m.end():]
                if word in ("before", "prior to"):
                    return None, ts, f"before `{ref.get('id')}` ({_hm(ts)})", rest
                return ts, None, f"since `{ref.get('id')}` ({_hm(ts)})", rest
        return None, None, "", q

    def _reference_change(self, ev: _Evidence, word: str | None) -> dict[str, Any] | None:
        """The change "the deploy" means: one named by id, else the named service's last change before the
        onset, else the culprit, else the last deploy before the onset."""
        if self.change_ids and self.change_ids[0] in ev.changes:
            return ev.changes[self.change_ids[0]]
        changes = sorted(ev.changes.values(), key=lambda c: str(c.get("ts") or ""))
        before = [c for c in changes if not self.onset or str(c.get("ts") or "") <= self.onset]
        for svc in self.services + ([word] if word else []):
            mine = [c for c in before if str(c.get("service", "")).lower() == str(svc).lower()]
            if mine:
                return mine[-1]
        if self.culprit and self.culprit in ev.changes:
            return ev.changes[self.culprit]
        deploys = [c for c in before if c.get("kind") == "deploy"]
        return deploys[-1] if deploys else None

    def keep(self, ts: Any) -> bool:
        t = str(ts or "")
        if self.after and not (t > self.after):
            return False
        return not (self.before and not (t and t < self.before))


# "since 10:40", "after 16.05 utc", "before 4pm", "since 9:30 am": hours and minutes, or an hour with am/pm.
_CLOCK = re.compile(r"\b(since|after|before) (\d{1,2})(?:[:.h](\d{2}))?(?::\d{2})?\s*(am|pm|a\.m\.|p\.m\.)?"
                    r"(?:\s*utc)?(?![\w:])")
_NUMBER_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "ten": 10,
                 "fifteen": 15, "twenty": 20, "thirty": 30, "forty": 40, "forty-five": 45, "forty five": 45,
                 "ninety": 90}
_NUMBER = r"\d+(?:\.\d+)?|" + "|".join(sorted((re.escape(w) for w in _NUMBER_WORDS), key=len, reverse=True))
_UNIT = r"hours?|hrs?|h|minutes?|mins?|m"
# "in the last hour", "over the past 15 minutes", "last 2h", "in the last half hour", "the past 90 mins"
_LAST = re.compile(rf"\b(?:(?:in|over|during|within|for) )?(?:the )?(?:last|past|previous) "
                   rf"(?:(half an?|half|{_NUMBER}) ?)?(?:(half[ -]hour)|({_UNIT}))\b")
# "15 minutes ago", "an hour ago", "since 2 hours ago"
_AGO = re.compile(rf"\b(?:(?:since|from|after) )?({_NUMBER}|half an?) ?(?:(half[ -]hour)|({_UNIT})) ago\b")


def _hour(m: re.Match[str]) -> int | None:
    """The 24-hour clock hour of a :data:`_CLOCK` match, or None when it is not a time of day."""
    hour, minutes, half = int(m.group(2)), m.group(3), (m.group(4) or "").replace(".", "")
    if not minutes and not half:
        return None  # "since 2 deploys", "after 3": a bare number is not a clock time
    if minutes and int(minutes) >= 60:
        return None
    if half:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if half == "pm" else 0)
    return hour if hour < 24 else None


def _span_seconds(number: str | None, half_hour: str | None, unit: str | None) -> float | None:
    if half_hour:  # "the last half hour", "half an hour ago"
        n = _amount(number) if number and not number.startswith("half") else 1.0
        return 1800.0 * n if n is not None else None
    n = 0.5 if number and number.startswith("half") else _amount(number)
    if n is None or unit is None:
        return None
    return n * (3600.0 if unit.startswith("h") else 60.0)


def _amount(number: str | None) -> float | None:
    if number is None:
        return 1.0  # "the last hour"
    word = number.strip()
    if word in _NUMBER_WORDS:
        return float(_NUMBER_WORDS[word])
    try:
        return float(word)
    except ValueError:
        return None


def _span(q: str, window_end: str | None) -> tuple[str | None, str | None, str, str] | None:
    """A span back from the investigation's "now" ("in the last hour", "15 minutes ago"), as :meth:`_Asked._time`.

    "Now" is the end of the investigated window (for a live incident, when the investigation read
    its data; a recorded one has no other), else this moment. The answer names the span in UTC.
    """
    m = _LAST.search(q)
    ago = None if m else _AGO.search(q)
    found = m or ago
    if found is None:
        return None
    seconds = _span_seconds(found.group(1), found.group(2), found.group(3))
    if not seconds or seconds <= 0:
        return None
    end = parse_iso(window_end) if window_end else None
    now = end if end is not None else time.time()
    start = fmt_ts(now - seconds)
    length = (f"{seconds / 3600:g} hours" if seconds > 3600 and seconds % 1800 == 0
              else "hour" if seconds == 3600 else f"{seconds / 60:g} min")
    until = "the end of the investigated window" if end is not None else "now"
    if m:
        words = f"in the last {length} ({start[11:16]}–{_hm(fmt_ts(now))}, up to {until})"
    else:
        words = f"since {'an hour' if length == 'hour' else length} ago ({_hm(start)}, counted back from {until})"
    return start, None, words, q[:found.start()] + q[found.end():]


_TIME_WORDS = {"before", "after", "since", "onset", "incident", "outage", "started", "began", "prior", "following",
               "leading", "up", "ahead", "then", "problem", "problems", "which", "were", "made", "happened",
               "recent", "recently", "last", "latest", "new", "did", "anything", "something", "services", "service",
               "list", "all", "do", "have", "had", "has", "tell", "see", "saw", "look", "at", "by", "into",
               "hour", "hours", "minute", "minutes", "today", "yesterday", "ago", "window", "time", "during",
               "around", "when", "who", "anyone", "someone", "other", "others", "else"}


def _hm(ts: str) -> str:
    return ts[11:16] + " UTC" if len(ts) >= 16 else ts


def _words(q: str) -> list[str]:
    return [w for w in re.findall(r"[a-z0-9][a-z0-9_.\-]*", q) if w not in _STOP and len(w) > 1]


def _dicts(node: Any, depth: int = 0) -> Iterator[dict[str, Any]]:
    # Walk a JSON value and yield every object in it (bounded: checkpoints can be large).
    if depth > 8:
        return
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _dicts(value, depth + 1)
    elif isinstance(node, list):
        for value in node[:2000]:
            yield from _dicts(value, depth + 1)


def _escaped(value: Any) -> Any:
    """``value`` with every string escaped for Slack mrkdwn (publishers.escape.mrkdwn), recursively."""
    if isinstance(value, str):
        return mrkdwn(value)
    if isinstance(value, dict):
        return {k: _escaped(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_escaped(v) for v in value]
    return value


def _relative(ts: Any, onset: str | None) -> str:
    """``"9 min before the onset"`` / ``"24 min after the onset"``."""
    a, b = parse_iso(str(ts or "")), parse_iso(onset or "")
    if a is None or b is None:
        return ""
    minutes = round(abs(a - b) / 60)
    if minutes == 0:
        return "at the onset"
    return f"{minutes} min {'before' if a < b else 'after'} the onset"


def _change_line(c: dict[str, Any], onset: str | None = None, culprit: str | None = None) -> str:
    rel = _relative(c.get("ts"), onset)
    mark = " ← *the root cause*" if culprit and c.get("id") == culprit else ""
    return (f"• `{c.get('id')}` {c.get('ts', '')}{f' ({rel})' if rel else ''} *{c.get('service', '?')}* "
            f"{c.get('kind', '')}: {c.get('summary', '')}").rstrip() + mark


def _changes(asked: _Asked, ev: _Evidence) -> str:
    changes = sorted(ev.changes.values(), key=lambda c: str(c.get("ts") or ""))
    scope = []
    picked = changes
    if asked.change_ids:
        picked = [c for c in picked if c.get("id") in asked.change_ids]
        scope.append(", ".join(f"`{c}`" for c in asked.change_ids))
    if asked.services:
        picked = [c for c in picked if str(c.get("service", "")).lower() in {s.lower() for s in asked.services}]
        scope.append(", ".join(asked.services))
    elif asked.unknown and not asked.change_ids and not asked.kinds:
        known = sorted({str(c.get("service")) for c in changes if c.get("service")})
        return (f"I found no change on {', '.join(asked.unknown)} in this investigation's window: it is not a "
                f"service I saw. Changes I saw were on: {', '.join(known) or 'no service at all'}.")
    if asked.kinds and not asked.change_ids:
        picked = [c for c in picked if any(_kind_matches(c, k) for k in asked.kinds)]
        scope.append(" / ".join(k.replace("_", " ") + "s" for k in asked.kinds))
    picked = [c for c in picked if asked.keep(c.get("ts"))]
    what = " on ".join(x for x in (", ".join(scope[::-1]) if scope else "all services",) if x)
    when = f" {asked.time_words}" if asked.time_words else " in the investigation window"
    if not picked:
        return (f"No change ({what}){when}."
                + (f" The onset was {_hm(asked.onset)}." if asked.onset and not asked.time_words else ""))
    lines = [_change_line(c, asked.onset, asked.culprit) for c in picked[:MAX_ITEMS]]
    more = f"\n…and {len(picked) - MAX_ITEMS} more" if len(picked) > MAX_ITEMS else ""
    return f"*Changes ({what}){when}:*\n" + "\n".join(lines) + more


def _kind_matches(c: dict[str, Any], kind: str) -> bool:
    k = str(c.get("kind") or "")
    return k == kind or (kind == "db_migration" and k == "migration")


def _errors(asked: _Asked, ev: _Evidence) -> str:
    lines: list[str] = []
    for item in ev.items:
        lines.append(f"• {item.get('summary')}" + (f" (`{item.get('ref')}`)" if item.get("ref") else ""))
    for e in ev.errors:
        text = e.get("template") or e.get("message")
        count = e.get("count") or e.get("total")
        svc = e.get("service")
        lines.append(f"• {'*' + svc + '* ' if svc else ''}{text}" + (f" ×{count}" if count else ""))
    lines = list(dict.fromkeys(lines))
    if asked.services:
        mine = [ln for ln in lines if any(s.lower() in ln.lower() for s in asked.services)]
        if not mine and lines:
            return f"I have no error evidence on {', '.join(asked.services)} in this investigation."
        lines = mine
    if not lines:
        return "I have no error evidence for this investigation yet (the log analysis has not finished)."
    more = f"\n…and {len(lines) - MAX_ITEMS} more" if len(lines) > MAX_ITEMS else ""
    scope = f" on {', '.join(asked.services)}" if asked.services else " behind this incident"
    # Error evidence is counted over the whole window (templates and counts carry no times): say so
    # rather than pass it off as the span asked for.
    when = (f"\n_Error evidence is counted over the whole investigation window, not by time: I cannot show "
            f"only the errors {asked.time_words}._" if asked.time_words else "")
    return f"*Errors{scope}:*\n" + "\n".join(lines[:MAX_ITEMS]) + more + when


def _evidence_lines(items: list[dict[str, Any]] | None, limit: int) -> list[str]:
    return [f"• [{c.get('source')}] {c.get('summary')}" for c in (items or [])[:limit]]


_VICTIM = re.compile(r"errors name ([\w.-]+), which failed no later|calls ([\w.-]+), which is anomalous as early")


def _why_not(asked: _Asked, inv: dict[str, Any], report: dict[str, Any], ev: _Evidence) -> str:
    if not asked.services and not asked.change_ids:
        if asked.unknown:
            return (f"I can't answer that: nothing in this investigation's evidence is called "
                    f"{', '.join(asked.unknown)} (no service or change of that name). Services I saw: "
                    f"{', '.join(sorted(ev.services)) or 'none'}.")
        return "Why not what? Name a service or a change id, e.g. _why not the checkout deploy?_"
    rc = report.get("root_cause") or {}
    top = rc.get("summary") or (ev.hypotheses[0].get("statement", "") if ev.hypotheses else "not determined yet")
    parts: list[str] = []
    for cid in asked.change_ids:
        parts.append(_why_not_change(cid, ev, asked, rc))
    asked_kind = bool(asked.kinds) or re.search(r"\bchange\b", asked.q) is not None
    for svc in asked.services:
        if asked.change_ids and any(str(ev.changes.get(c, {}).get("service")) == svc for c in asked.change_ids):
            continue
        if asked_kind:
            mine = [c for c in sorted(ev.changes.values(), key=lambda c: str(c.get("ts") or ""))
                    if c.get("service") == svc and (not asked.kinds or any(_kind_matches(c, k) for k in asked.kinds))]
            if mine:
                parts.extend(_why_not_change(str(c["id"]), ev, asked, rc) for c in mine[:3])
                continue
        parts.append(_why_not_service(svc, ev, asked, rc))
    return "\n\n".join(parts) + (f"\n\n*Root cause instead:* {top}" if top and not all(
        p.startswith("It *is*") for p in parts) else "")


def _why_not_service(svc: str, ev: _Evidence, asked: _Asked, rc: dict[str, Any]) -> str:
    if svc == rc.get("service") and not rc.get("change_id"):
        return f"It *is* the origin I found: {rc.get('summary', '')}"
    hyps = [(rank, h) for rank, h in enumerate(ev.hypotheses, 1) if h.get("service") == svc]
    if svc == rc.get("service") and hyps and hyps[0][0] == 1:
        return (f"It *is* where I found the root cause ({hyps[0][1].get('confidence', '?')}%): "
                f"{hyps[0][1].get('statement', '')}")
    victim_of = sorted({a or b for h in hyps for c in (h[1].get("counter_evidence") or [])
                        for a, b in _VICTIM.findall(str(c.get("summary") or ""))})
    callers = re.search(r"its callers ([\w., -]+?) degraded", str(rc.get("summary") or ""))
    is_caller = bool(callers and svc in [x.strip() for x in callers.group(1).split(",")])
    lines = []
    if victim_of or is_caller:
        origin = ", ".join(victim_of) or rc.get("service") or "the origin"
        lines.append(f"*{svc}* is a victim, not the origin: it depends on *{origin}*, which failed first, "
                     "and its symptoms follow from that.")
    if hyps:
        rank, h = hyps[0]
        lines.append(f"I ranked it #{rank} of {len(ev.hypotheses)} ({h.get('confidence', '?')}%): "
                     f"{h.get('statement', '')}")
        pro = _evidence_lines(h.get("evidence"), 3)
        con = _evidence_lines(h.get("counter_evidence"), 4)
        if pro:
            lines.append("*What pointed at it:*\n" + "\n".join(pro))
        lines.append("*Against it:*\n" + "\n".join(con) if con else
                     "It has no direct counter-evidence; the root cause explains more of the evidence.")
    elif not lines:
        lines.append(f"*{svc}* showed no anomaly of its own in this investigation's window, so it was never a "
                     "candidate.")
    mine = [c for c in ev.changes.values() if c.get("service") == svc]
    if mine:
        rels = [f"`{c.get('id')}` ({_relative(c.get('ts'), asked.onset) or c.get('ts')})"
                for c in sorted(mine, key=lambda c: str(c.get("ts") or ""))[:4]]
        lines.append(f"Its changes: {', '.join(rels)}.")
    return "\n".join(lines)


def _why_not_change(cid: str, ev: _Evidence, asked: _Asked, rc: dict[str, Any]) -> str:
    c = ev.changes.get(cid)
    if c is None:
        return f"I can't answer for `{cid}`: it is not a change this investigation saw."
    if cid == rc.get("change_id"):
        return f"It *is* the root cause I found: {rc.get('summary', '')}"
    head = f"`{cid}` ({c.get('service')} {c.get('kind')}, {c.get('ts')}: {c.get('summary', '')})"
    onset = asked.onset
    if onset and c.get("ts") and str(c["ts"]) > onset:
        return head + f" landed *after* the onset ({_relative(c.get('ts'), onset)}), so it cannot have caused it."
    hyps = [(rank, h) for rank, h in enumerate(ev.hypotheses, 1) if h.get("change_id") == cid]
    if hyps:
        rank, h = hyps[0]
        con = _evidence_lines(h.get("counter_evidence"), 4)
        return (head + f" was considered: I ranked it #{rank} ({h.get('confidence', '?')}%).\n"
                + ("*Against it:*\n" + "\n".join(con) if con else
                   "It has no direct counter-evidence; the root cause explains more of the evidence."))
    implicated = any(h.get("service") == c.get("service") for h in ev.hypotheses)
    rel = _relative(c.get("ts"), onset)
    return head + (f" came {rel}" if rel else "") + (
        ", but the evidence does not tie it to the failure: no error or metric shift that starts with it."
        if implicated else f", but *{c.get('service')}* showed no anomaly of its own, so nothing points at it.")


def _who(asked: _Asked, ev: _Evidence) -> str:
    changes = sorted(ev.changes.values(), key=lambda c: str(c.get("ts") or ""))
    if asked.change_ids:
        changes = [c for c in changes if c.get("id") in asked.change_ids]
    elif asked.services:
        changes = [c for c in changes if c.get("service") in asked.services]
    elif asked.culprit:
        changes = [c for c in changes if c.get("id") == asked.culprit]
    changes = [c for c in changes if asked.keep(c.get("ts"))]
    if not changes:
        return "I can't say: no change of that description is in this investigation's evidence."
    lines = [f"• `{c.get('id')}` *{c.get('service')}* {c.get('kind')} by "
             f"{c.get('author') or '_(author not recorded)_'} at {c.get('ts')}" for c in changes[:MAX_ITEMS]]
    return "\n".join(lines)


def _when(report: dict[str, Any]) -> str:
    onset = _onset(report)
    if not onset:
        return "I can't say when it started: the investigation found no onset yet."
    return f"It started at {onset} (the onset the evidence shows)."


def _onset(report: dict[str, Any]) -> str | None:
    if isinstance(report.get("onset"), str):
        return str(report["onset"])
    for entry in report.get("timeline") or []:
        if entry.get("kind") in ("onset", "anomaly", "error_spike"):
            return str(entry.get("ts"))
    return None


def _status(inv: dict[str, Any], events: list[dict[str, Any]]) -> str:
    last = events[-1]["kind"] if events else "none"
    return (f"`{inv['id']}` is *{inv.get('status')}* (phase {inv.get('phase')}, round {inv.get('round', 0)}); "
            f"{len(events)} progress events, the last one `{last}`.")


def _root_cause(inv: dict[str, Any], report: dict[str, Any]) -> str:
    if not report:
        return f"No report yet: `{inv['id']}` is {inv.get('status')} (phase {inv.get('phase')})."
    rc = report.get("root_cause") or {}
    return (f"*{report.get('verdict', '?')}* ({report.get('confidence', '?')}%): {rc.get('summary', 'no summary')}"
            + (f" — service *{rc['service']}*" if rc.get("service") else "")
            + (f", change `{rc['change_id']}`" if rc.get("change_id") else ""))


def _fix(report: dict[str, Any]) -> str:
    steps = (report.get("fix_plan") or {}).get("steps") or []
    if not steps:
        return "No fix plan yet."
    return "*Fix plan:*\n" + "\n".join(
        f"{i}. *{s.get('action')}* {s.get('target') or ''} — {s.get('description') or ''}"
        for i, s in enumerate(steps[:MAX_ITEMS], 1))
