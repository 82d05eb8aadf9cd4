"""Publish an investigation to its Jira ticket: a comment when it starts, the report when it ends.

Uses the `jira` client library. The report comment is found again on later deliveries (the
Publication row's ``report_comment_id``, or on a re-run, a marker line in an earlier report
comment on the same ticket) and edited in place, so a ticket never collects duplicate reports.
429 and 5xx answers are retried here a few times, honouring ``Retry-After``; after that
:class:`RetryLater` hands the retry to the outbox.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from jira import JIRA, JIRAError

from publishers import escape
from publishers.errors import Permanent, RetryLater
from publishers.markdown import feedback_note

REPORT_MARKER = "production-master:report"
START_MARKER = "production-master:start"
_RETRY_STATUSES = {429, 500, 502, 503, 504}
_MAX_INLINE_WAIT_S = 10.0


class JiraPublishError(Exception):
    """Jira refused a request for a reason a retry will not fix (auth, missing ticket, ...)."""


class JiraTicketGone(JiraPublishError, Permanent):
    """Jira answered 404 for the ticket: nothing to comment on, now or later."""


def connect(url: str, user: str, token: str, *, timeout_s: float = 10.0) -> JIRA:
    """A `jira` client that neither probes the server nor retries on its own (we retry here).

    Args:
        url: JIRA_URL, e.g. https://acme.atlassian.net.
        user: JIRA_USER (the account e-mail on Jira Cloud).
        token: JIRA_API_TOKEN.
    """
    return JIRA(server=url, basic_auth=(user, token), get_server_info=False, max_retries=0, timeout=timeout_s)


def _esc(text: Any) -> str:
    """Neutralise wiki-markup control characters in free text taken from reports (publishers.escape.jira)."""
    return escape.jira(text)


def slack_permalink(workspace_url: str | None, channel: str | None, ts: str | None) -> str | None:
    """The web link to a Slack message: ``<workspace>/archives/<channel>/p<ts without dot>``."""
    if not (workspace_url and channel and ts):
        return None
    return f"{workspace_url.rstrip('/')}/archives/{channel}/p{ts.replace('.', '')}"


def render_start(investigation: dict[str, Any], slack_link: str | None) -> str:
    """The 'investigation started' comment in Jira wiki markup."""
    lines = [
        f"(i) *Production Master* is investigating this ticket ({investigation['id']}, "
        f"mode {investigation.get('mode', 'balanced')}, priority {investigation.get('priority', 'P2')}).",
    ]
    if slack_link:
        lines.append(f"Follow progress in [Slack|{slack_link}].")
    lines.append("The report will be posted here when the investigation finishes.")
    lines.append(f"{{color:#97a0af}}{START_MARKER} {investigation['id']}{{color}}")
    return "\n".join(lines)


def _evidence_list(items: list[dict[str, Any]] | None, limit: int = 8) -> list[str]:
    out = []
    for it in (items or [])[:limit]:
        ref = f" {{{{{_esc(it['ref'])}}}}}" if it.get("ref") else ""
        out.append(f"** [{_esc(it.get('source', '?'))}]{ref} {_esc(it.get('summary', ''))}".rstrip())
    return out


def render_report(report: dict[str, Any], investigation_id: str, slack_link: str | None = None,
                  page_url: str | None = None, *, link: Callable[[str], str] | None = None) -> str:
    """The final report in Jira wiki markup: a verdict panel, hypotheses with evidence, the fix plan.

    Args:
        report: the report JSON (docs/contracts.md).
        investigation_id: shown in the footer with the marker that lets re-runs find this comment.
        slack_link: the Slack thread, when there is one.
        page_url: the report page (PM_PUBLIC_URL), when set.
        link: investigation id -> its report page, to link the "seen before" incidents.

    Returns:
        The comment body.
    """
    rc = report.get("root_cause") or {}
    verdict = report.get("verdict", "INCONCLUSIVE")
    colour = {"CONFIRMED": "#E3FCEF", "LIKELY": "#FFFAE6"}.get(verdict, "#F4F5F7")
    lines = [
        f"{{panel:title=Production Master — {verdict} ({report.get('confidence', 0)}/100)|bgColor={colour}}}",
        *([f"*Partial report:* {_esc(report.get('partial_reason') or 'the investigation stopped early')}"]
          if report.get("partial") else []),
        f"*Root cause:* {_esc(rc.get('summary') or 'No root cause could be established.')}",
        f"*Service:* {{{{{_esc(rc.get('service') or 'unknown')}}}}} · *Change:* "
        f"{{{{{_esc(rc.get('change_id') or 'none')}}}}} · *Category:* {_esc(rc.get('category') or 'none')}",
        "{panel}",
    ]
    agents = report.get("agents") or {}
    if agents:
        said = agents.get("explanation")
        note = (agents.get("decision") or {}).get("note") or ""
        lines.append((f"*Explanation (agents):* {_esc(said)} " if said else "") + f"_{_esc(note)}_")
    lines.append("h3. Hypotheses")
    for hyp in (report.get("hypotheses") or [])[:5]:
        lines.append(
            f"# *{_esc(hyp.get('statement', '?'))}* — {{{{{_esc(hyp.get('service') or '?')}}}}}, "
            f"confidence {hyp.get('confidence', 0)}"
        )
        evidence = _evidence_list(hyp.get("evidence"))
        if evidence:
            lines.extend(["** _Evidence:_"] + ["*" + e for e in evidence])
        counter = _evidence_list(hyp.get("counter_evidence"), limit=4)
        if counter:
            lines.extend(["** _Counter-evidence:_"] + ["*" + e for e in counter])
    if not report.get("hypotheses"):
        lines.append("_No hypothesis survived verification._")
    steps = (report.get("fix_plan") or {}).get("steps") or []
    lines.append("h3. Fix plan")
    if steps:
        lines.append("||Priority||Action||Target||Description||Risk||")
        for st in steps:
            lines.append(
                f"|{_esc(st.get('priority', ''))}|{_esc(st.get('action', ''))}|{_esc(st.get('target') or '')}"
                f"|{_esc(st.get('description', '')) or ' '}|{_esc(st.get('risk') or '') or ' '}|"
            )
    else:
        lines.append("_No fix proposed._")
    timeline = report.get("timeline") or []
    if timeline:
        lines.append("h3. Timeline")
        lines.extend(f"* {_esc(t.get('ts'))} — {_esc(t.get('kind'))}: {_esc(t.get('summary'))}" for t in timeline[:12])
    for m in (report.get("similar_incidents") or [])[:3]:
        disputed = " (root cause disputed)" if (m.get("feedback") or {}).get("disputed") else ""
        past = str(m.get("investigation_id"))
        url = link(past) if link else None
        ref = (f"[{_esc(past)}|{url}]" if url and url.startswith(("http://", "https://"))
               and not any(c in url for c in "[]| \n") else _esc(past))
        note = feedback_note(m.get("feedback"))
        lines.append(f"_Seen before:_ {ref} ({m.get('score')}): "
                     f"{_esc(m.get('summary') or '')}{disputed}{f' — {_esc(note)}' if note else ''}")
    if report.get("missing_sources"):
        lines.append(f"_Sources not available:_ {_esc(', '.join(map(str, report['missing_sources'])))}")
    if slack_link:
        lines.append(f"Discussion: [Slack thread|{slack_link}]")
    if page_url and page_url.startswith(("http://", "https://")) and not any(c in page_url for c in "[]| \n"):
        lines.append(f"Full report (timeline, every hypothesis, trace, cost): [report page|{page_url}]")
    lines.append(f"{{color:#97a0af}}{REPORT_MARKER} {investigation_id}{{color}}")
    return "\n".join(lines)


class JiraPublisher:
    """The Jira sink of the outbox: ``deliver(event, investigation, publication) -> external_ref``.

    Args:
        client: a connected ``jira.JIRA`` (see :func:`connect`).
        slack_workspace_url: e.g. https://acme.slack.com, to link the Slack thread.
        report_link: investigation id -> its report page's URL (PM_PUBLIC_URL).
        attempts: tries per request before raising :class:`RetryLater`.
        sleep: how to wait between tries (injectable so tests need not wait for real).
    """

    sink = "jira"

    def __init__(
        self,
        client: JIRA,
        *,
        slack_workspace_url: str | None = None,
        report_link: Callable[[str], str] | None = None,
        attempts: int = 3,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.slack_workspace_url = slack_workspace_url
        self.report_link = report_link
        self.attempts = attempts
        self.sleep = sleep

    @staticmethod
    def target(investigation: dict[str, Any]) -> str | None:
        """The ticket key results go to: the origin's Jira key, else a ticket trigger."""
        origin = investigation.get("origin") or {}
        return origin.get("jira_key") or (investigation.get("trigger") or {}).get("ticket")

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        for attempt in range(1, self.attempts + 1):
            try:
                return fn()
            except JIRAError as exc:
                status = exc.status_code or 0
                if status == 404 and what.startswith("comment on"):
                    raise JiraTicketGone(f"Jira has no ticket to {what} (HTTP 404: a wrong key, a deleted or moved "
                                         "issue, or one JIRA_USER may not see); not retried") from None
                if status not in _RETRY_STATUSES:
                    raise JiraPublishError(
                        f"Jira refused to {what} (HTTP {status}: {exc.text}); check JIRA_URL, JIRA_USER, "
                        "JIRA_API_TOKEN and that the bot may comment on the ticket"
                    ) from None
                wait = _retry_after(exc, attempt)
                if attempt == self.attempts or wait > _MAX_INLINE_WAIT_S:
                    raise RetryLater(wait, f"Jira answered HTTP {status} to {what}") from None
                self.sleep(wait)
        raise AssertionError("unreachable")

    def _slack_link(self, investigation: dict[str, Any], event: dict[str, Any]) -> str | None:
        payload = event.get("payload") or {}
        if payload.get("slack_permalink"):
            return str(payload["slack_permalink"])
        origin = investigation.get("origin") or {}
        thread = investigation.get("slack_thread") or {}  # the thread the Slack publisher opened
        return slack_permalink(self.slack_workspace_url, thread.get("channel") or origin.get("channel"),
                               thread.get("thread_ts") or origin.get("thread_ts"))

    def _wait_for_thread(self, investigation: dict[str, Any]) -> None:
        """The start comment links the Slack thread: when one is about to open (a Slack channel, no
        thread yet), wait a moment for it rather than post a comment without the link."""
        origin = investigation.get("origin") or {}
        if not (self.slack_workspace_url and origin.get("channel") and not origin.get("thread_ts")):
            return
        if investigation.get("slack_thread") != {}:  # known, or no Slack sink in this process
            return
        created = _parse_iso(investigation.get("created_at"))
        if created is not None and (datetime.now(UTC) - created).total_seconds() < THREAD_WAIT_S:
            raise RetryLater(1.0, "waiting for the Slack thread to link it")

    def _find_report_comment(self, key: str) -> str | None:
        comments = self._call(f"list comments of {key}", lambda: self.client.comments(key))
        for comment in reversed(comments):
            if REPORT_MARKER in (comment.body or ""):
                return str(comment.id)
        return None

    def _upsert(self, key: str, comment_id: str | None, body: str) -> str:
        if comment_id:
            try:
                comment = self._call(f"read comment {comment_id} on {key}", lambda: self.client.comment(key, comment_id))
            except JiraPublishError:
                comment = None  # deleted by a person: post a fresh one
            if comment is not None:
                self._call(f"edit comment {comment_id} on {key}", lambda: comment.update(body=body))
                return comment_id
        created = self._call(f"comment on {key}", lambda: self.client.add_comment(key, body))
        return str(created.id)

    def deliver(
        self, event: dict[str, Any], investigation: dict[str, Any], publication: dict[str, Any] | None
    ) -> dict[str, Any]:
        """Publish one progress event; returns the external ref to remember on the Publication row.

        Raises:
            RetryLater: Jira answered 429/5xx on every try (or asked to wait long).
            JiraPublishError: Jira refused for a reason a retry will not fix.
        """
        ref = dict((publication or {}).get("external_ref") or {})
        key = self.target(investigation)
        if key is None:
            return ref
        ref["issue"] = key
        kind = event.get("kind")
        if kind == "created" and not ref.get("start_comment_id"):
            self._wait_for_thread(investigation)
            body = render_start(investigation, self._slack_link(investigation, event))
            ref["start_comment_id"] = self._upsert(key, None, body)
        elif kind == "report":
            report = (event.get("payload") or {}).get("report") or investigation.get("report") or {}
            page = self.report_link(investigation["id"]) if self.report_link else None
            body = render_report(report, investigation["id"], self._slack_link(investigation, event), page,
                                 link=self.report_link)
            existing = ref.get("report_comment_id") or self._find_report_comment(key)
            ref["report_comment_id"] = self._upsert(key, existing, body)
        elif kind in ("failed", "cancelled"):
            why = (event.get("payload") or {}).get("error") or kind
            by = (event.get("payload") or {}).get("by")
            if kind == "cancelled" and by:
                why = f"cancelled by {by}"
            body = (
                f"(x) *Production Master* investigation {investigation['id']} {kind}: {_esc(why)}\n"
                f"Re-run it from Slack or with `pm investigate {key}`."
            )
            ref["end_comment_id"] = self._upsert(key, ref.get("end_comment_id"), body)
        return ref


#: How long a start comment waits for the Slack thread it should link (then it is posted without).
THREAD_WAIT_S = 20.0


def _parse_iso(value: Any) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed is not None and parsed.tzinfo is None else parsed


def _retry_after(exc: JIRAError, attempt: int) -> float:
    """Seconds to wait: the server's Retry-After when given, else exponential backoff (1, 2, 4 s)."""
    response = getattr(exc, "response", None)
    header = response.headers.get("Retry-After") if response is not None else None
    if header:
        try:
            return max(0.0, float(header))
        except ValueError:
            pass  # an HTTP-date; fall back to backoff rather than parse calendars here
    return float(2 ** (attempt - 1))


def ticket_from_jira(raw: dict[str, Any], base_url: str) -> dict[str, Any]:
    """A Jira REST v2 issue as the ``tickets.get`` ticket dict (world-format ticket fields).

    Used by the ticket source of a ticket-triggered investigation (pipeline.tools) and by the
    ``jira`` real source (sources/jira.py).

    Args:
        raw: the issue JSON (``{"key", "fields": {...}}``).
        base_url: JIRA_URL, for the ticket's browse link.

    Returns:
        ``{key, ts, summary, description, labels, components, status, reporter, priority, url, source}``.
    """
    f = raw.get("fields") or {}

    def name(v: Any, attr: str = "name") -> Any:
        return (v.get(attr) or v.get("name")) if isinstance(v, dict) else v

    return {
        "key": raw.get("key"),
        "ts": jira_time(f.get("created")),
        "summary": f.get("summary") or "",
        "description": f.get("description") or "",
        "labels": [str(x) for x in (f.get("labels") or [])],
        "components": [name(c) for c in (f.get("components") or []) if name(c)],
        "status": name(f.get("status")),
        "reporter": name(f.get("reporter"), "displayName"),
        "priority": name(f.get("priority")),
        "url": f"{base_url.rstrip('/')}/browse/{raw.get('key')}",
        "source": "jira",
    }


def jira_time(value: Any) -> str | None:
    """Jira's ``2026-02-15T12:17:00.000+0000`` as ISO-8601 UTC with Z (a naive time is UTC); None if not a time."""
    if not value:
        return None
    try:
        parsed = datetime.strptime(str(value), "%Y-%m-%dT%H:%M:%S.%f%z")
    except ValueError:
        try:
            parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
