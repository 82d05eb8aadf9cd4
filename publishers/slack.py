"""Publish an investigation's progress into its Slack thread.

One parent message in the channel (unless the investigation already lives in a
thread, e.g. it was started by a reaction), one status message in the thread that
is edited in place (``chat.update``) as phases go by, a reply per milestone, and the
final report in Block Kit with its timeline chart (``files_upload_v2``).

Exactly-once across a worker crash: every message we post carries Slack message
``metadata`` naming the investigation and the event it answers. Before posting a
message that may already have been posted by an attempt that died before its
Delivery row was marked done, we look for that metadata in the thread (or channel)
and reuse the message instead of posting again. Ids we learn are returned as the
``external_ref`` that the pipeline stores on the Publication row.

A 429 raises :class:`publishers.errors.RetryLater` with Slack's ``Retry-After``.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from publishers.chart import ChartError, has_chart, render_timeline
from publishers.errors import RetryLater
from publishers.escape import mention, mrkdwn
from publishers.markdown import feedback_note

# The pipeline's planned phases in order (pipeline.phases.PLANNED_PHASES; PUBLISHING counts as done).
PHASES = (
    ("INITIALIZING", "Connect tools"),
    ("CONTEXT_GATHERING", "Gather context"),
    ("EVIDENCE", "Logs & metrics"),
    ("CHANGES", "Changes"),
    ("CORRELATION", "Correlate"),
    ("HYPOTHESES", "Hypotheses"),
    ("VERIFICATION", "Verify"),
    ("FIX_PLAN", "Fix plan"),
    ("REPORT", "Report"),
)
META_TYPE = "pm_investigation"
ACTIONS = {
    "rerun": "pm_rerun_deep",
    "cancel": "pm_cancel",
    "up": "pm_feedback_up",
    "down": "pm_feedback_down",
    "jira": "pm_publish_jira",
}
_VERDICT_EMOJI = {"CONFIRMED": ":white_check_mark:", "LIKELY": ":large_yellow_circle:",
                  "INCONCLUSIVE": ":grey_question:", "DECLINED": ":grey_question:"}


#: Events whose only mark in Slack is the status message (coalesced, see SlackPublisher._edit_status).
STATUS_ONLY_EVENTS = frozenset({"phase_started", "phase_finished"})
#: At most one status edit per this many seconds per message (Slack rate-limits chat.update, Tier 3).
MIN_STATUS_EDIT_INTERVAL_S = 2.0


def _status_digest(text: str, blocks: list[dict[str, Any]]) -> str:
    """What the status message shows, minus the elapsed clock (it alone is no reason to edit)."""
    shown = [{**b, "elements": [e for e in b.get("elements") or [] if not str(e.get("text", "")).startswith(
        ":stopwatch:")]} if b.get("type") == "context" else b for b in blocks]
    return hashlib.sha256(json.dumps([text, shown], sort_keys=True, default=str).encode()).hexdigest()[:24]


class SlackPublishError(RuntimeError):
    """Slack refused a post for a reason retrying will not fix (the message names it)."""


def _retry_later(seconds: float) -> Exception:
    return RetryLater(seconds)


def make_web_client(*, token: str, base_url: str, timeout: int = 10) -> WebClient:
    """A WebClient pointed at SLACK_API_URL (the stand-in in tests, slack.com otherwise).

    Args:
        token: the bot token (``xoxb-…``).
        base_url: settings.slack_api_url; a trailing slash is added when missing.
        timeout: per-request timeout in seconds.
    """
    if not base_url.endswith("/"):
        base_url += "/"
    return WebClient(token=token, base_url=base_url, timeout=timeout)


def make_slack_publisher(settings: Any, *, report_link: Callable[[str], str] | None = None) -> SlackPublisher | None:
    """The Slack publisher for a worker's composition root, or None when SLACK_BOT_TOKEN is unset.

    Args:
        settings: store.config.Settings (slack_bot_token, slack_api_url).
        report_link: investigation id -> its report page's URL (PM_PUBLIC_URL), to link from the report.
    """
    if settings.slack_bot_token is None:
        return None
    client = make_web_client(token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url)
    jira_url = getattr(settings, "jira_url", None)
    ticket_url = (lambda key: f"{str(jira_url).rstrip('/')}/browse/{key}") if jira_url else None
    return SlackPublisher(client, report_link=report_link, ticket_url=ticket_url)


def make_slack_alarm(settings: Any) -> Any:
    """``fn(text)`` posting an operational alarm to PM_ADMIN_CHANNEL, or None when it or
    SLACK_BOT_TOKEN is unset (the alarm is then a log line and a counter only).

    Args:
        settings: store.config.Settings (admin_channel, slack_bot_token, slack_api_url).
    """
    channel = getattr(settings, "admin_channel", None)
    if not channel or settings.slack_bot_token is None:
        return None
    client = make_web_client(token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url)

    def alarm(text: str) -> None:
        client.chat_postMessage(channel=channel, text=f":rotating_light: {text}"[:3900])

    return alarm


# -- Block Kit ---------------------------------------------------------------------------------------


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _elapsed(inv: dict[str, Any], now: datetime | None = None) -> str:
    start = _parse_time(inv.get("started_at")) or _parse_time(inv.get("created_at"))
    if start is None:
        return "0s"
    end = _parse_time(inv.get("finished_at")) or now or datetime.now(UTC)
    seconds = max(0, int((end - start).total_seconds()))
    return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def trigger_label(trigger: dict[str, Any]) -> str:
    """A short human label for a trigger (ticket key, alert id or the text), escaped for mrkdwn."""
    if trigger.get("ticket"):
        return f"ticket {mrkdwn(trigger['ticket'])}"
    if trigger.get("alert"):
        title = f" — {mrkdwn(str(trigger['title'])[:150])}" if trigger.get("title") else ""
        return f"alert {mrkdwn(trigger['alert'])}{title}"
    return f"“{mrkdwn(str(trigger.get('text', ''))[:150])}”"


def phase_states(inv: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(phase, label, state)`` for the checklist; state is done | running | pending | failed."""
    names = [p for p, _ in PHASES]
    status, phase = inv.get("status"), inv.get("phase")
    if status == "COMPLETE" or phase in ("PUBLISHING", "COMPLETE"):
        current = len(names)
    elif phase in names:
        current = names.index(phase)
    else:
        current = 0
    out = []
    for i, (name, label) in enumerate(PHASES):
        if i < current:
            state = "done"
        elif i == current and status == "RUNNING":
            state = "running"
        elif i == current and status in ("FAILED", "CANCELLED"):
            state = "failed"
        else:
            state = "pending"
        out.append((name, label, state))
    return out


def progress_bar(done: int, total: int, width: int = 16) -> str:
    """A text progress bar like ``████████░░░░ 50%``."""
    filled = round(width * done / total) if total else 0
    pct = round(100 * done / total) if total else 0
    return "█" * filled + "░" * (width - filled) + f" {pct}%"


def status_blocks(inv: dict[str, Any], now: datetime | None = None) -> tuple[str, list[dict[str, Any]]]:
    """The live status message: title, phase checklist, progress bar, elapsed, tokens and cost.

    Args:
        inv: the investigation dict (store.investigations.to_dict).
        now: the time to measure elapsed against (defaults to now).

    Returns:
        ``(fallback_text, blocks)``.
    """
    states = phase_states(inv)
    done = sum(1 for *_, s in states if s == "done")
    icon = {"done": ":white_check_mark:", "running": ":hourglass_flowing_sand:", "pending": ":white_circle:",
            "failed": ":x:"}
    checklist = "\n".join(f"{icon[s]} {mrkdwn(label)}" for _, label, s in states)
    tokens = int(inv.get("tokens_in") or 0) + int(inv.get("tokens_out") or 0)
    status = inv.get("status", "QUEUED")
    text = f"Investigation {inv['id']}: {status} ({done}/{len(states)} phases)"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn",
                                     "text": f"*:mag: Investigating {trigger_label(inv.get('trigger') or {})}*\n"
                                             f"`{inv['id']}` · mode *{inv.get('mode', 'balanced')}* · *{status}*"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": checklist}},
        {"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"`{progress_bar(done, len(states))}`"},
            {"type": "mrkdwn", "text": f":stopwatch: {_elapsed(inv, now)}"},
            {"type": "mrkdwn", "text": f":abacus: {tokens:,} tokens · ${float(inv.get('cost_usd') or 0):.2f}"
                                       + (f" of ${float(inv['budget_usd']):.2f}" if inv.get("budget_usd") else "")},
        ]},
    ]
    if status in ("QUEUED", "RUNNING"):
        blocks.append({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Cancel"}, "style": "danger",
             "action_id": ACTIONS["cancel"], "value": inv["id"]}]})
    return text, blocks


def _evidence_line(item: dict[str, Any]) -> str:
    ref = str(item.get("ref") or "")
    source = mrkdwn(item.get("source", "?"))
    # A link only when the ref is a plain URL we can vouch for (no markup characters inside it).
    if ref.startswith(("http://", "https://")) and not any(c in ref for c in "<>|& \n"):
        shown = f"<{ref}|{source}>"
    else:
        shown = f"`{mrkdwn(ref)}`"
    return f"• [{source}] {mrkdwn(item.get('summary', ''))} {shown if ref else ''}".rstrip()


def _past(inv_id: str, link: Callable[[str], str] | None) -> str:
    """A past investigation's id, linked to its report page when the URL is safe inside <...|...>."""
    url = link(inv_id) if link else None
    if url and url.startswith(("http://", "https://")) and not any(c in url for c in "<>| \n"):
        return f"<{url}|{mrkdwn(inv_id)}>"
    return f"`{mrkdwn(inv_id)}`"


def report_blocks(inv: dict[str, Any], report: dict[str, Any], page_url: str | None = None, *,
                  link: Callable[[str], str] | None = None) -> tuple[str, list[dict[str, Any]]]:
    """The final report: verdict, root cause, confidence, evidence (with links), fix plan, buttons.

    Args:
        inv: the investigation dict.
        report: the report JSON (docs/contracts.md).
        page_url: the report page (PM_PUBLIC_URL), linked when given.
        link: investigation id -> its report page, to link the "seen before" incidents.

    Returns:
        ``(fallback_text, blocks)`` (at most 50 blocks, texts under Slack's 3000-char limit).
    """
    verdict = str(report.get("verdict") or "INCONCLUSIVE")
    confidence = report.get("confidence")
    rc = report.get("root_cause") or {}
    summary = mrkdwn(rc.get("summary") or "No root cause identified.")
    where = ", ".join(x for x in (rc.get("service") and f"service *{mrkdwn(rc['service'])}*",
                                  rc.get("change_id") and f"change `{mrkdwn(rc['change_id'])}`",
                                  rc.get("category") and f"category {mrkdwn(rc['category'])}") if x)
    partial = bool(report.get("partial"))
    text = f"{'PARTIAL ' if partial else ''}{mrkdwn(verdict)} ({confidence}%): {summary}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text",
                                    "text": f"{'PARTIAL · ' if partial else ''}{verdict} · confidence "
                                            f"{confidence if confidence is not None else '?'}%"}},
        {"type": "section", "text": {"type": "mrkdwn",
                                     "text": f"{_VERDICT_EMOJI.get(verdict, '')} *Root cause:* {summary}"[:2900]
                                     + (f"\n{where}" if where else "")}},
    ]
    agents = report.get("agents") or {}
    if agents:
        # the LLM agents' explanation (grounded in cited evidence) and what the verdict rule decided
        said = mrkdwn(agents.get("explanation") or "")
        note = mrkdwn((agents.get("decision") or {}).get("note") or "")
        body = (f"*Explanation (agents):* {said}\n" if said else "") + f"_{note}_"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": body[:2900]}]})
    if partial:  # stopped by its budget: say so before anything else is read as a conclusion
        blocks.insert(1, {"type": "context", "elements": [{"type": "mrkdwn", "text": (
            ":warning: *Partial report*: " + mrkdwn(report.get("partial_reason") or "the investigation stopped early")
            + (" · phases done: " + ", ".join(mrkdwn(p) for p in report.get("phases_done") or []) if
               report.get("phases_done") else ""))[:2900]}]})
    hyps = report.get("hypotheses") or []
    if hyps:
        top = hyps[0]
        lines = [_evidence_line(e) for e in (top.get("evidence") or [])[:6]]
        counter = [_evidence_line(e) for e in (top.get("counter_evidence") or [])[:3]]
        body = "*Evidence*\n" + ("\n".join(lines) or "• none recorded")
        if counter:
            body += "\n*Counter-evidence*\n" + "\n".join(counter)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": body[:2900]}})
        others = [f"{h.get('rank', i + 2)}. {mrkdwn(h.get('statement', ''))} ({h.get('confidence', '?')}%)"
                  for i, h in enumerate(hyps[1:3])]
        if others:
            blocks.append({"type": "context", "elements": [
                {"type": "mrkdwn", "text": ("Other hypotheses: " + " · ".join(others))[:2900]}]})
    steps = ((report.get("fix_plan") or {}).get("steps") or [])[:8]
    if steps:
        plan = "\n".join(f"{i}. *{mrkdwn(s.get('action', ''))}* {mrkdwn(s.get('target') or '')} — "
                         f"{mrkdwn(s.get('description') or '')} _({mrkdwn(s.get('priority', ''))})_"
                         for i, s in enumerate(steps, 1))
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": ("*Fix plan*\n" + plan)[:2900]}})
    if report.get("similar_incidents"):
        seen = [f"{_past(str(m.get('investigation_id')), link)} ({m.get('score')}): {mrkdwn(m.get('summary') or '')}"
                + (" _(disputed)_" if (m.get("feedback") or {}).get("disputed") else "")
                + (f" — {mrkdwn(resolved)}" if (resolved := feedback_note(m.get("feedback"))) else "")
                for m in report["similar_incidents"][:3]]
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": ("*Seen before:* " + " · ".join(seen))[:2900]}]})
    notes = (report.get("context") or {}).get("domain_memory")
    if notes:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": (
            f"*Domain notes ({mrkdwn((report.get('context') or {}).get('domain') or '')}):* "
            + mrkdwn(" ".join(str(notes).split()))[:600])[:2900]}]})
    if report.get("missing_sources"):
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": ("Missing sources: " + ", ".join(
            mrkdwn(m) for m in report["missing_sources"]))[:2900]}]})
    if page_url and page_url.startswith(("http://", "https://")) and not any(c in page_url for c in "<>| \n"):
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"<{page_url}|Full report: timeline, every hypothesis, trace and cost>"}]})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": (
        "Ask a question in this thread, or reply `note: …` to leave a comment kept with this investigation.")}]})
    inv_id = inv["id"]
    # Only buttons that can apply: a report is a finished investigation (no Cancel), and "Publish to
    # Jira" needs a ticket to publish to.
    buttons = [
        {"type": "button", "text": {"type": "plain_text", "text": "Re-run deep"}, "action_id": ACTIONS["rerun"],
         "value": inv_id},
        {"type": "button", "text": {"type": "plain_text", "text": "👍 helpful"}, "action_id": ACTIONS["up"],
         "value": inv_id},
        {"type": "button", "text": {"type": "plain_text", "text": "👎 not helpful"}, "action_id": ACTIONS["down"],
         "value": inv_id},
    ]
    if ticket_of(inv):
        buttons.append({"type": "button", "text": {"type": "plain_text", "text": "Publish to Jira"},
                        "action_id": ACTIONS["jira"], "value": inv_id})
    blocks.append({"type": "actions", "block_id": f"pm_report:{inv_id}", "elements": buttons})
    return text[:3000], blocks


def ticket_of(inv: dict[str, Any]) -> str | None:
    """The Jira ticket an investigation belongs to: its origin's key, else a ticket trigger."""
    return (inv.get("origin") or {}).get("jira_key") or (inv.get("trigger") or {}).get("ticket") or None


_TICKET_KEY = re.compile(r"^[A-Z][A-Z0-9_]{1,19}-\d{1,9}$")


def _safe_url(url: Any) -> str | None:
    """``url`` when it can sit inside ``<url|label>`` (http(s), no markup characters), else None."""
    if isinstance(url, str) and url.startswith(("http://", "https://")) and not any(c in url for c in "<>| \n"):
        return url
    return None


def parent_text(inv: dict[str, Any], ticket_url: Callable[[str], str | None] | None = None) -> str:
    """The parent message: what is investigated (the ticket or alert linked), who or what started it."""
    trigger = inv.get("trigger") or {}
    origin = inv.get("origin") or {}
    label = trigger_label(trigger)
    key = ticket_of(inv)
    if trigger.get("ticket") and key and _TICKET_KEY.match(str(key)):
        url = _safe_url(ticket_url(key) if ticket_url else None)
        label = f"ticket <{mrkdwn(url)}|{mrkdwn(key)}>" if url else label
    elif trigger.get("alert") and _safe_url(trigger.get("url")):
        title = f" — {mrkdwn(str(trigger['title'])[:150])}" if trigger.get("title") else ""
        # & in a link is written &amp; like everywhere else in mrkdwn; Slack decodes it
        label = f"alert <{mrkdwn(trigger['url'])}|{mrkdwn(trigger['alert'])}>{title}"
    who = mention(origin.get("user") or inv.get("requested_by"))
    if who:
        by = f" for {who}"
    elif origin.get("kind") == "jira":
        by = " · started from Jira"
    elif origin.get("kind") == "webhook":
        by = f" · started by {mrkdwn(origin.get('source') or trigger.get('source') or 'an alert')}"
    elif origin.get("kind") == "schedule":
        by = " · started by a schedule"
    else:
        by = ""
    return f":mag: Investigating {label}{by} · `{inv['id']}` · progress in the thread"


# -- the publisher -------------------------------------------------------------------------------------


class SlackPublisher:
    """Deliver outbox events to the investigation's Slack thread (pipeline.publishing protocol)."""

    sink = "slack"
    #: Deliveries a drainer may send at once (WebClient is thread-safe; a batch holds one event per
    #: investigation, so each thread still gets its messages in order).
    lanes = 4

    def __init__(self, client: WebClient, *, report_link: Callable[[str], str] | None = None,
                 min_edit_interval_s: float = MIN_STATUS_EDIT_INTERVAL_S, clock: Callable[[], float] = time.time,
                 ticket_url: Callable[[str], str | None] | None = None) -> None:
        self.client = client
        self.report_link = report_link
        self.ticket_url = ticket_url
        self.min_edit_interval_s = min_edit_interval_s
        self.clock = clock

    def open_thread(self, event: dict[str, Any], investigation: dict[str, Any],
                    publication: dict[str, Any] | None) -> dict[str, Any]:
        """Post the parent message when the investigation has no thread yet (pipeline.publishing calls
        this for a whole batch before delivering any event, so a burst's threads all open first).

        Returns:
            ``{"channel", "parent_ts", "thread_ts"}`` when a parent was posted (or found), else ``{}``.

        Raises:
            RetryLater, SlackPublishError: as :meth:`deliver`.
        """
        where = self._where(event, investigation, publication)
        if where is None:
            return {}
        ref, origin, channel = where
        if not channel or ref.get("thread_ts") or origin.get("thread_ts"):
            return {}
        try:
            parent = self._ensure_parent(investigation, channel, ref, int(event.get("attempts", 2)) > 1)
        except SlackApiError as exc:
            raise self._translate(exc) from exc
        return {"channel": channel, "parent_ts": parent, "thread_ts": parent}

    def deliver(self, event: dict[str, Any], investigation: dict[str, Any],
                publication: dict[str, Any] | None) -> dict[str, Any]:
        """Post or edit what ``event`` means for the thread.

        Args:
            event: the outbox event (``id``, ``seq``, ``kind``, ``payload``; ``attempts`` if known).
            investigation: the investigation dict as it is now.
            publication: this sink's Publication (``{"external_ref": {...}}``) or None.

        Returns:
            The external ids to remember: channel, thread_ts, parent_ts, status_ts (+ report ids).

        Raises:
            RetryLater: Slack answered 429 (honours Retry-After) or a transient server error.
            SlackPublishError: Slack refused for good (e.g. channel_not_found, not_in_channel).
        """
        where = self._where(event, investigation, publication)
        if where is None:
            return {}
        ref, origin, channel = where
        payload = event.get("payload") or {}
        if not channel:
            raise SlackPublishError(f"{investigation['id']} has no Slack channel in its origin; nothing to post to")
        # Only look for an earlier attempt's message when there may have been one.
        maybe_retry = int(event.get("attempts", 2)) > 1
        try:
            out: dict[str, Any] = {"channel": channel}
            thread_ts = ref.get("thread_ts") or origin.get("thread_ts")
            if not thread_ts:
                thread_ts = self._ensure_parent(investigation, channel, ref, maybe_retry)
                out["parent_ts"] = thread_ts
            out["thread_ts"] = thread_ts
            status_ts = ref.get("status_ts") or self._ensure_status(investigation, channel, thread_ts, maybe_retry)
            out["status_ts"] = status_ts
            kind = event.get("kind")
            if ref.get("status_ts"):  # a status message posted just now is already current
                out.update(self._edit_status(investigation, channel, status_ts, ref, kind))
            elif not maybe_retry:  # posted just now with this content (a found one may show an older state)
                out.update(status_digest=_status_digest(*status_blocks(investigation)), status_at=self.clock())
            key = f"event-{event.get('seq', event.get('id'))}"
            if kind == "milestone":
                # Milestone texts are written by our own code, which escapes the outside text they quote.
                body = payload.get("text") or "milestone"
                if payload.get("followup") and mention(payload.get("user")):
                    body = f"{mention(payload.get('user'))} {body}"
                out[key] = self._reply_once(investigation, channel, thread_ts, key, body, maybe_retry)
            elif kind == "attached":
                who = mention((payload.get("origin") or {}).get("user"))
                body = f":link: {who + ' ' if who else ''}reported the same incident; following along here."
                out[key] = self._reply_once(investigation, channel, thread_ts, key, body, maybe_retry)
            elif kind == "failed" and payload.get("reason") == "trigger_not_found":
                body = f":warning: {mrkdwn(payload.get('error') or investigation.get('error'))}"  # nothing ran
                out[key] = self._reply_once(investigation, channel, thread_ts, key, body, maybe_retry)
            elif kind == "failed":
                body = f":x: The investigation failed: {mrkdwn(payload.get('error') or investigation.get('error'))}"
                out[key] = self._reply_once(investigation, channel, thread_ts, key, body, maybe_retry)
            elif kind == "cancelled":
                by = payload.get("by")
                who = mention(by) or (mrkdwn(by) if by else None)
                body = f":no_entry: Cancelled by {who}." if who else ":no_entry: Cancelled."
                out[key] = self._reply_once(investigation, channel, thread_ts, key, body, maybe_retry)
            elif kind == "report":
                out.update(self._publish_report(investigation, payload, channel, thread_ts, ref, maybe_retry))
            return out
        except SlackApiError as exc:
            raise self._translate(exc) from exc

    def _where(self, event: dict[str, Any], investigation: dict[str, Any], publication: dict[str, Any] | None
               ) -> tuple[dict[str, Any], dict[str, Any], str | None] | None:
        """(ids already posted, origin, channel) for an event, or None when the event is not for this sink."""
        only = (event.get("payload") or {}).get("only_sinks")
        if only and self.sink not in only:
            return None
        ref = dict((publication or {}).get("external_ref", publication or {}) or {})
        origin = investigation.get("origin") or {}
        return ref, origin, ref.get("channel") or origin.get("channel")

    # -- steps -----------------------------------------------------------------------------------------
    def _edit_status(self, inv: dict[str, Any], channel: str, status_ts: str, ref: dict[str, Any],
                     kind: Any) -> dict[str, Any]:
        """Edit the status message, calmly: never the same content twice, at most one edit per
        ``min_edit_interval_s``, and always the final state.

        A phase event that comes too soon after the last edit waits (RetryLater) and then shows the
        state as it is by then, so a burst of phase events becomes one or two edits; the events queued
        behind it find that state already shown and make no call. Other events (a milestone, the
        report) are posted at once and leave the status to the next edit, unless the investigation
        has ended: its final state is sent at once.
        """
        text, blocks = status_blocks(inv)
        digest = _status_digest(text, blocks)
        if digest == ref.get("status_digest"):
            return {}
        now = self.clock()
        since = now - float(ref.get("status_at") or 0.0)
        final = inv.get("status") not in ("QUEUED", "RUNNING")
        if since < self.min_edit_interval_s and not final:
            if kind in STATUS_ONLY_EVENTS:
                raise RetryLater(self.min_edit_interval_s - since, "status edits are coalesced")
            return {}
        self._call("chat_update", channel=channel, ts=status_ts, text=text, blocks=blocks)
        return {"status_digest": digest, "status_at": now}

    def _ensure_parent(self, inv: dict[str, Any], channel: str, ref: dict[str, Any], maybe_retry: bool) -> str:
        if ref.get("parent_ts"):
            return str(ref["parent_ts"])
        if maybe_retry:
            found = self._find_posted(inv["id"], "parent", channel, None)
            if found:
                return found
        text = parent_text(inv, self.ticket_url)
        resp = self._call("chat_postMessage", channel=channel, text=text, metadata=self._meta(inv, "parent"))
        return str(resp["ts"])

    def _ensure_status(self, inv: dict[str, Any], channel: str, thread_ts: str, maybe_retry: bool) -> str:
        if maybe_retry:
            found = self._find_posted(inv["id"], "status", channel, thread_ts)
            if found:
                return found
        text, blocks = status_blocks(inv)
        resp = self._call("chat_postMessage", channel=channel, thread_ts=thread_ts, text=text, blocks=blocks,
                          metadata=self._meta(inv, "status"))
        return str(resp["ts"])

    def _reply_once(self, inv: dict[str, Any], channel: str, thread_ts: str, role: str, text: str,
                    maybe_retry: bool, blocks: list[dict[str, Any]] | None = None) -> str:
        if maybe_retry:
            found = self._find_posted(inv["id"], role, channel, thread_ts)
            if found:
                return found
        kwargs: dict[str, Any] = {"blocks": blocks} if blocks else {}
        resp = self._call("chat_postMessage", channel=channel, thread_ts=thread_ts, text=text[:3900],
                          metadata=self._meta(inv, role), **kwargs)
        return str(resp["ts"])

    def _publish_report(self, inv: dict[str, Any], payload: dict[str, Any], channel: str, thread_ts: str,
                        ref: dict[str, Any], maybe_retry: bool) -> dict[str, Any]:
        report = payload.get("report") or inv.get("report") or {}
        out: dict[str, Any] = {}
        text, blocks = report_blocks(inv, report, self.report_link(inv["id"]) if self.report_link else None,
                                     link=self.report_link)
        out["report_ts"] = ref.get("report_ts") or self._reply_once(
            inv, channel, thread_ts, "report", text, maybe_retry, blocks)
        if has_chart(report) and not ref.get("chart_file"):
            filename = f"timeline-{inv['id']}.png"
            existing = self._find_file(channel, thread_ts, filename) if maybe_retry else None
            if existing:
                out["chart_file"] = existing
            else:
                try:
                    png = render_timeline(report["chart"], title=f"{inv['id']} timeline")
                except ChartError as exc:
                    out["chart_error"] = str(exc)
                    return out
                resp = self._call("files_upload_v2", channel=channel, thread_ts=thread_ts, content=png,
                                  filename=filename, title=filename)
                files = resp.get("files") or [resp.get("file") or {}]
                out["chart_file"] = files[0].get("id")
        return out

    # -- Slack helpers -------------------------------------------------------------------------------
    @staticmethod
    def _meta(inv: dict[str, Any], role: str) -> dict[str, Any]:
        return {"event_type": META_TYPE, "event_payload": {"investigation_id": inv["id"], "role": role}}

    def _find_posted(self, inv_id: str, role: str, channel: str, thread_ts: str | None) -> str | None:
        """The ts of a message we already posted for (inv_id, role), found by its metadata."""
        if thread_ts:
            resp = self._call("conversations_replies", channel=channel, ts=thread_ts, include_all_metadata=True,
                              limit=200)
        else:
            resp = self._call("conversations_history", channel=channel, include_all_metadata=True, limit=100)
        for msg in resp.get("messages") or []:
            meta = msg.get("metadata") or {}
            body = meta.get("event_payload") or {}
            if meta.get("event_type") == META_TYPE and body.get("investigation_id") == inv_id \
                    and body.get("role") == role:
                return str(msg["ts"])
        return None

    def _find_file(self, channel: str, thread_ts: str, filename: str) -> str | None:
        resp = self._call("conversations_replies", channel=channel, ts=thread_ts, limit=200)
        for msg in resp.get("messages") or []:
            for f in msg.get("files") or []:
                if filename in (f.get("name"), f.get("title")):
                    return str(f.get("id"))
        return None

    def _call(self, method: str, **kwargs: Any) -> Any:
        return getattr(self.client, method)(**kwargs)

    @staticmethod
    def _translate(exc: SlackApiError) -> Exception:
        resp = exc.response
        status = getattr(resp, "status_code", 0)
        if status == 429:
            retry = resp.headers.get("Retry-After") or resp.headers.get("retry-after") or "1"
            return _retry_later(float(retry))
        if status >= 500:
            return _retry_later(2.0)
        error = (resp.data or {}).get("error") if isinstance(resp.data, dict) else None
        return SlackPublishError(f"Slack refused the post ({error or status}); invite the bot to the channel "
                                 "or check its scopes in app_manifest.yaml")
