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
from collections.abc import Iterator
from typing import Any

from sqlalchemy import select

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

    Args:
        question: free text.
        inv: store.investigations.to_dict of the investigation.
        cps: its checkpoints (``output`` holds each phase's JSON).
        events: its progress events.

    Returns:
        Slack mrkdwn text.
    """
    q = question.lower().strip()
    report = inv.get("report") or {}
    evidence = _Evidence(report, cps)
    if re.search(r"\bwhy\s+not\b|\bwhat about\b|\bruled out\b|\bisn'?t it\b", q):
        return _why_not(q, inv, report, evidence)
    if re.search(r"\b(what|which)\b.*\bchang|\bchanges?\b|\bdeploy(s|ed|ments?)?\b|\brollouts?\b", q):
        return _changes(q, evidence)
    if re.search(r"\berrors?\b|\bexceptions?\b|\blogs?\b|\bfail(ing|ures?)\b", q):
        return _errors(q, evidence)
    if re.search(r"\bstatus\b|\bprogress\b|\bdone\b|\bhow long\b|\bphase\b", q):
        return _status(inv, events)
    if re.search(r"\broot cause\b|\bwhy\b|\bcause\b|\bverdict\b|\bconfiden", q):
        return _root_cause(inv, report)
    if re.search(r"\bfix\b|\bremediat|\bmitigat|\brollback\b|\bwhat (should|do) we do\b", q):
        return _fix(report)
    return (_root_cause(inv, report) + "\n\nAsk me e.g. _what changed in <service>?_, _show the errors_, "
            "_why not the <service> deploy?_, _status_ or _what's the fix?_")


class _Evidence:
    """Changes, error lines and hypotheses found anywhere in the report and the checkpoints."""

    def __init__(self, report: dict[str, Any], cps: list[dict[str, Any]]) -> None:
        self.hypotheses: list[dict[str, Any]] = list(report.get("hypotheses") or [])
        self.changes: dict[str, dict[str, Any]] = {}
        self.errors: list[dict[str, Any]] = []
        self.items: list[dict[str, Any]] = []
        for source in [report, *[cp.get("output") for cp in cps]]:
            for d in _dicts(source):
                self._classify(d)
        for entry in report.get("timeline") or []:
            if entry.get("kind") in _CHANGE_KINDS or str(entry.get("ref", "")).startswith("chg-"):
                ref = str(entry.get("ref"))
                self.changes.setdefault(ref, {"id": ref, "ts": entry.get("ts"), "kind": entry.get("kind"),
                                              "summary": entry.get("summary"), "service": entry.get("service")})

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


def _words(q: str) -> list[str]:
    return [w for w in re.findall(r"[a-z0-9][a-z0-9_.\-]*", q) if w not in _STOP and len(w) > 1]


def _change_line(c: dict[str, Any]) -> str:
    return (f"• `{c.get('id')}` {c.get('ts', '')} *{c.get('service', '?')}* {c.get('kind', '')}: "
            f"{c.get('summary', '')}").rstrip()


def _changes(q: str, ev: _Evidence) -> str:
    changes = sorted(ev.changes.values(), key=lambda c: str(c.get("ts") or ""))
    words = _words(q)
    if words:
        picked = [c for c in changes if any(w in str(c.get("service", "")).lower() or w == str(c.get("id"))
                                            for w in words)]
        scope = ", ".join(words)
        if not picked:
            known = sorted({str(c.get("service")) for c in changes if c.get("service")})
            return (f"I found no change on {scope} in this investigation's window. Changes I saw were on: "
                    f"{', '.join(known) or 'no service at all'}.")
    else:
        picked, scope = changes, "all services"
    lines = [_change_line(c) for c in picked[:MAX_ITEMS]]
    more = f"\n…and {len(picked) - MAX_ITEMS} more" if len(picked) > MAX_ITEMS else ""
    return f"*Changes ({scope}) in the investigation window:*\n" + "\n".join(lines) + more


def _errors(q: str, ev: _Evidence) -> str:
    words = _words(q)
    lines: list[str] = []
    for item in ev.items:
        lines.append(f"• {item.get('summary')}" + (f" (`{item.get('ref')}`)" if item.get("ref") else ""))
    for e in ev.errors:
        text = e.get("template") or e.get("message")
        count = e.get("count") or e.get("total")
        svc = e.get("service")
        lines.append(f"• {'*' + svc + '* ' if svc else ''}{text}" + (f" ×{count}" if count else ""))
    if words:
        lines = [ln for ln in lines if any(w in ln.lower() for w in words)] or lines
    lines = list(dict.fromkeys(lines))
    if not lines:
        return "I have no error evidence for this investigation yet (the log analysis has not finished)."
    more = f"\n…and {len(lines) - MAX_ITEMS} more" if len(lines) > MAX_ITEMS else ""
    return "*Errors behind this incident:*\n" + "\n".join(lines[:MAX_ITEMS]) + more


def _why_not(q: str, inv: dict[str, Any], report: dict[str, Any], ev: _Evidence) -> str:
    words = _words(q)
    if not words:
        return "Why not what? Name a service or a change id, e.g. _why not the checkout deploy?_"
    rc = report.get("root_cause") or {}
    for rank, h in enumerate(ev.hypotheses, 1):
        blob = " ".join(str(h.get(k, "")) for k in ("service", "change_id", "statement")).lower()
        if any(w in blob for w in words):
            if rank == 1:
                return f"It *is* my top hypothesis ({h.get('confidence', '?')}%): {h.get('statement', '')}"
            counter = [f"• [{c.get('source')}] {c.get('summary')}" for c in (h.get("counter_evidence") or [])[:4]]
            return (f"I ranked it #{rank} ({h.get('confidence', '?')}%): {h.get('statement', '')}\n"
                    + ("*Against it:*\n" + "\n".join(counter) if counter else
                       "It has no direct counter-evidence; the top hypothesis simply explains more.")
                    + f"\nTop instead: {rc.get('summary') or (ev.hypotheses[0].get('statement', ''))}")
    onset = _onset(report)
    for c in ev.changes.values():
        blob = f"{c.get('service', '')} {c.get('id', '')} {c.get('summary', '')}".lower()
        if any(w in blob for w in words):
            why = f"`{c.get('id')}` ({c.get('service')} {c.get('kind')}, {c.get('ts')}) was considered"
            if onset and c.get("ts") and str(c["ts"]) > onset:
                return why + f" but it landed *after* the onset ({onset}), so it cannot have caused it."
            return why + (" but no error or metric shift on that service lines up with it; "
                          f"the evidence points to {rc.get('service') or 'another service'}"
                          + (f" (`{rc.get('change_id')}`)" if rc.get("change_id") else "") + ".")
    return (f"Nothing in this investigation's evidence mentions {', '.join(words)}; "
            f"the root cause I found is: {rc.get('summary') or 'not determined yet'}.")


def _onset(report: dict[str, Any]) -> str | None:
    for entry in report.get("timeline") or []:
        if entry.get("kind") in ("onset", "anomaly", "error_spike"):
            return str(entry.get("ts"))
    return report.get("onset") if isinstance(report.get("onset"), str) else None


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
