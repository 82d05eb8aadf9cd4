"""The report as Markdown, for the terminal, the report page and artifacts."""

from __future__ import annotations

from typing import Any


def feedback_note(feedback: dict[str, Any] | None) -> str | None:
    """What people said of a past incident, as plain text (callers escape it), or None: how its Jira
    ticket was resolved and the latest comment left on it (a ``note: …`` reply in its Slack thread).

    E.g. ``ticket OPS-7 resolved as Fixed, fix version 4.2.1: "rolled back"; latest comment: "pool size"``
    (each quoted text cut at 120).
    """
    parts = []
    res = (feedback or {}).get("resolution")
    if isinstance(res, dict) and res.get("name"):
        text = f"ticket {res.get('ticket') or '?'} resolved as {res['name']}"
        if res.get("fix_versions"):
            text += ", fix version " + ", ".join(map(str, res["fix_versions"][:3]))
        if res.get("comment"):
            text += f": {_quoted(res['comment'])}"
        parts.append(text)
    comments = (feedback or {}).get("comments")
    if isinstance(comments, list) and comments:
        parts.append(f"latest comment: {_quoted(comments[-1])}")
    return "; ".join(parts) or None


def _quoted(value: Any, limit: int = 120) -> str:
    text = " ".join(str(value).split())
    return f'"{text[:limit]}{"…" if len(text) > limit else ""}"'


def _items(items: list[dict[str, Any]] | None, limit: int = 8) -> list[str]:
    out = []
    for it in (items or [])[:limit]:
        ref = f" `{it['ref']}`" if it.get("ref") else ""
        out.append(f"  - [{it.get('source', '?')}]{ref} {it.get('summary', '')}".rstrip())
    return out


def render_report(report: dict[str, Any], *, investigation_id: str | None = None) -> str:
    """Render the spec's report JSON (plus fix plan and timeline) as Markdown.

    Args:
        report: the report dict built by the evidence engine.
        investigation_id: shown in the title when given.

    Returns:
        A Markdown document.
    """
    rc = report.get("root_cause") or {}
    title = "# Investigation report" + (f" — {investigation_id}" if investigation_id else "")
    lines = [
        title,
        "",
        f"**Verdict:** {report.get('verdict', 'INCONCLUSIVE')}  ·  **Confidence:** {report.get('confidence', 0)}/100",
        "",
        *([f"> **Partial report:** {report.get('partial_reason') or 'the investigation stopped early'}", ""]
          if report.get("partial") else []),
        "## Root cause",
        "",
        rc.get("summary") or "No root cause could be established.",
        "",
        f"- service: `{rc.get('service') or 'unknown'}`",
        f"- change: `{rc.get('change_id') or 'none'}`",
        f"- category: {rc.get('category') or 'none'}",
    ]
    if report.get("missing_sources"):
        lines += ["", f"_Sources missing from this investigation: {', '.join(report['missing_sources'])}._"]
    notes = (report.get("context") or {}).get("domain_memory")
    if notes:
        # people's notes, shown as a quote so their own Markdown cannot open sections of the report
        lines += ["", "## Context", "", f"Notes of the domain `{(report.get('context') or {}).get('domain')}`:", ""]
        lines += ["> " + line for line in str(notes).splitlines()]
    agents = report.get("agents") or {}
    if agents:
        lines += ["", "## Agents", ""]
        if agents.get("explanation"):
            lines += [str(agents["explanation"]), ""]
        lines.append(f"_{(agents.get('decision') or {}).get('note', '')}_")
        for h in (agents.get("hypotheses") or [])[:3]:
            lines.append(f"- {h.get('statement')} (`{h.get('service')}`, cites {', '.join(h.get('cites') or [])})")
        for f in (agents.get("findings") or [])[:5]:
            lines.append(f"- finding: {f.get('statement')} (cites {', '.join(f.get('cites') or [])})")
        if agents.get("dropped_citations"):
            lines.append(f"- {len(agents['dropped_citations'])} claim(s) cited evidence that does not exist "
                         "and were dropped or trimmed")
        if agents.get("cost_usd") is not None:
            lines.append(f"- tokens in/out {agents.get('tokens_in')}/{agents.get('tokens_out')}, "
                         f"${agents.get('cost_usd')}")
    if report.get("similar_incidents"):
        lines += ["", "## Seen before", ""]
        for m in report["similar_incidents"][:3]:
            rc = m.get("root_cause") or {}
            disputed = " (root cause disputed)" if (m.get("feedback") or {}).get("disputed") else ""
            resolved = feedback_note(m.get("feedback"))
            lines.append(f"- `{m.get('investigation_id')}` (score {m.get('score')}): {m.get('summary', '')}"
                         f" — {rc.get('change_kind') or rc.get('category') or '?'} on `{rc.get('service')}`"
                         f"{disputed}; fix then: {m.get('fix') or 'none recorded'}"
                         f"{f'; {resolved}' if resolved else ''}")
    hyps = report.get("hypotheses") or []
    if hyps:
        lines += ["", "## Hypotheses", ""]
        for h in hyps[:5]:
            change = f", change `{h['change_id']}`" if h.get("change_id") else ""
            lines.append(
                f"{h.get('rank', '?')}. **{h.get('statement', '')}** "
                f"(service `{h.get('service')}`{change}, {h.get('category')}, confidence {h.get('confidence')})"
            )
            if h.get("rank_note"):
                lines.append(f"   - _{h['rank_note']}_")
            ev = _items(h.get("evidence"))
            if ev:
                lines += ["   - evidence:", *["  " + e for e in ev]]
            cev = _items(h.get("counter_evidence"))
            if cev:
                lines += ["   - counter-evidence:", *["  " + e for e in cev]]
    steps = (report.get("fix_plan") or {}).get("steps") or []
    if steps:
        lines += ["", "## Fix plan", "", "_Nothing here is executed without a human's approval._", ""]
        for i, s in enumerate(steps, 1):
            target = f" `{s['target']}`" if s.get("target") else ""
            lines.append(f"{i}. [{s.get('priority', 'follow-up')}] {s.get('action', '')}{target}: {s.get('description', '')}")
            if s.get("risk"):
                lines.append(f"   - risk: {s['risk']}")
            if s.get("verify") and s.get("action") != "verify_recovery":
                lines.append(f"   - verify: {s['verify']}")
    timeline = report.get("timeline") or []
    if timeline:
        lines += ["", "## Timeline", ""]
        for t in timeline[:25]:
            ref = f" `{t['ref']}`" if t.get("ref") else ""
            lines.append(f"- {t.get('ts', '')} — {t.get('kind', '')}{ref}: {t.get('summary', '')}")
    return "\n".join(lines)
