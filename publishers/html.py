"""The report page and the list page as server-rendered HTML: no scripts, no build step, no CDN.

Every piece of outside text (tickets, alerts, log lines, hypotheses, model output) goes through
:func:`esc` (``html.escape`` with quotes); links are drawn only for plain http(s) URLs. The
timeline chart is the PNG of :mod:`publishers.chart`, embedded as a ``data:`` URI so the page is
one self-contained document (it can be saved or mailed as it is).
"""

from __future__ import annotations

import base64
import html
from typing import Any
from urllib.parse import quote

from publishers.chart import ChartError, has_chart, render_timeline
from publishers.markdown import feedback_note

_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f6f7f9;color:#172b4d}
main{max-width:1040px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #dfe1e6}
.card{background:#fff;border:1px solid #dfe1e6;border-radius:6px;padding:14px 16px;margin:10px 0}
.verdict{display:inline-block;padding:2px 10px;border-radius:12px;font-weight:600;color:#fff}
.CONFIRMED{background:#36b37e}.LIKELY{background:#ffab00}.INCONCLUSIVE{background:#6b778c}
.FAILED{background:#de350b}.CANCELLED{background:#6b778c}.RUNNING,.QUEUED{background:#0065ff}
.muted{color:#6b778c} table{border-collapse:collapse;width:100%} td,th{text-align:left;padding:4px 8px;
border-bottom:1px solid #ebecf0;vertical-align:top} th{font-weight:600;background:#f4f5f7}
.bar{height:10px;background:#ebecf0;border-radius:5px;overflow:hidden;max-width:240px}
.bar>span{display:block;height:100%;background:#0065ff} img.chart{max-width:100%;border:1px solid #dfe1e6}
ul.ev{margin:4px 0 4px 18px;padding:0} code{background:#f4f5f7;padding:0 3px;border-radius:3px}
"""


def esc(value: Any) -> str:
    """``value`` as text safe inside HTML content and quoted attributes."""
    return html.escape(str(value if value is not None else ""), quote=True)


def _page(title: str, body: str) -> str:
    return ("<!doctype html><html lang=en><head><meta charset=utf-8>"
            "<meta name=viewport content='width=device-width,initial-scale=1'>"
            "<meta http-equiv=Content-Security-Policy content=\"default-src 'none'; img-src data:; "
            "style-src 'unsafe-inline'\">"
            f"<title>{esc(title)}</title><style>{_CSS}</style></head><body><main>{body}</main></body></html>")


def _link(url: Any, text: Any) -> str:
    u = str(url or "")
    if u.startswith(("http://", "https://")):
        return f'<a href="{esc(u)}" rel="noopener noreferrer">{esc(text)}</a>'
    return f"<code>{esc(u)}</code>" if u else ""


def _evidence(items: list[dict[str, Any]] | None, limit: int = 10) -> str:
    lis = []
    for it in (items or [])[:limit]:
        if not isinstance(it, dict):
            it = {"summary": it}
        ref = _link(it.get("ref"), it.get("ref")) if it.get("ref") else ""
        lis.append(f"<li>[{esc(it.get('source', '?'))}] {esc(it.get('summary', ''))} {ref}</li>")
    return f"<ul class=ev>{''.join(lis)}</ul>" if lis else "<p class=muted>none</p>"


def chart_img(report: dict[str, Any] | None) -> str:
    """An ``<img>`` of the timeline chart as a data: URI, or a note when the report has none."""
    if not has_chart(report):
        return "<p class=muted>No metric series to chart.</p>"
    try:
        png = render_timeline((report or {})["chart"])
    except ChartError as exc:
        return f"<p class=muted>Chart not drawn: {esc(exc)}</p>"
    data = base64.b64encode(png).decode()
    return f'<img class=chart alt="Incident timeline: metrics with change and alert markers" src="data:image/png;base64,{data}">'


def _trigger(inv: dict[str, Any]) -> str:
    t = inv.get("trigger") or {}
    return str(t.get("ticket") or t.get("alert") or t.get("text") or "?")


def render_report_page(inv: dict[str, Any], traces: dict[str, Any], cost: dict[str, Any]) -> str:
    """The report page of one investigation.

    Args:
        inv: ``store.investigations.to_dict`` of it.
        traces: ``commands.api.traces`` (phases and agent runs).
        cost: ``commands.api.cost_breakdown``.

    Returns:
        A complete HTML document.
    """
    report = inv.get("report") or {}
    rc = inv.get("root_cause") or report.get("root_cause") or {}
    verdict = inv.get("verdict") or inv.get("status") or "?"
    confidence = inv.get("confidence") if inv.get("confidence") is not None else report.get("confidence")
    parts = [
        "<p class=muted><a href=\"/investigations\">All investigations</a></p>",
        f"<h1>{esc(_trigger(inv))}</h1>",
        f"<p class=muted>{esc(inv.get('id'))} · {esc(inv.get('mode'))} · domain {esc(inv.get('domain') or 'none')}"
        f" · created {esc(inv.get('created_at'))}</p>",
        f"<div class=card><span class='verdict {esc(verdict)}' id=verdict>{esc(verdict)}</span> "
        f"<b>confidence {esc(confidence if confidence is not None else '—')}/100</b> · status {esc(inv.get('status'))}"
        f"<p id=root-cause><b>Root cause:</b> {esc(rc.get('summary') or 'No root cause could be established.')}</p>"
        f"<p class=muted>service <code>{esc(rc.get('service') or 'unknown')}</code> · change "
        f"<code>{esc(rc.get('change_id') or 'none')}</code> · category {esc(rc.get('category') or 'none')}</p></div>",
    ]
    if inv.get("error"):
        parts.append(f"<div class=card><b>Error:</b> {esc(inv['error'])}</div>")
    agents = report.get("agents") or {}
    if agents:
        # the LLM agents: their grounded explanation, claims with citations, and what the verdict rule decided
        items = "".join(f"<li>{esc(h.get('statement'))} <code>{esc(h.get('service'))}</code> "
                        f"<span class=muted>cites {esc(', '.join(h.get('cites') or []))}</span></li>"
                        for h in (agents.get("hypotheses") or [])[:5] + (agents.get("findings") or [])[:5])
        dropped = len(agents.get("dropped_citations") or [])
        parts.append(
            "<div class=card id=agents><h2>Agents</h2>"
            + (f"<p>{esc(agents.get('explanation'))}</p>" if agents.get("explanation") else "")
            + f"<p class=muted>{esc((agents.get('decision') or {}).get('note'))}</p>"
            + (f"<ul>{items}</ul>" if items else "")
            + f"<p class=muted>{dropped} claim(s) with unknown citations dropped or trimmed · tokens "
              f"{esc(agents.get('tokens_in'))}/{esc(agents.get('tokens_out'))} · ${esc(agents.get('cost_usd'))}</p></div>")
    parts += ["<h2>Timeline</h2>", chart_img(report)]
    timeline = report.get("timeline") or []
    if timeline:
        rows = "".join(f"<tr><td>{esc(t.get('ts'))}</td><td>{esc(t.get('kind'))}</td><td>{esc(t.get('summary'))}</td></tr>"
                       for t in timeline[:30])
        parts.append(f"<table><tr><th>time</th><th>kind</th><th>what</th></tr>{rows}</table>")
    notes = (report.get("context") or {}).get("domain_memory")
    if notes:
        parts.append(f"<h2>Context</h2><div class=card id=domain-notes><p class=muted>Notes of the domain "
                     f"{esc((report.get('context') or {}).get('domain'))}</p><pre>{esc(notes)}</pre></div>")
    seen = report.get("similar_incidents") or []
    if seen:
        rows = "".join(
            f"<tr><td><a href=\"/investigations/{esc(m.get('investigation_id'))}\">{esc(m.get('investigation_id'))}</a>"
            f"</td><td>{esc(m.get('score'))}</td><td>{esc(m.get('summary'))}"
            f"{' <b>(root cause disputed)</b>' if (m.get('feedback') or {}).get('disputed') else ''}"
            f"{f'<br><span class=muted>{esc(note)}</span>' if (note := feedback_note(m.get('feedback'))) else ''}</td>"
            f"<td>{esc(m.get('fix') or '—')}</td></tr>" for m in seen[:3])
        parts.append(f"<h2>Seen before</h2><table id=seen-before><tr><th>investigation</th><th>score</th>"
                     f"<th>what it was</th><th>fix then</th></tr>{rows}</table>")
    parts.append("<h2>Hypotheses</h2>")
    hyps = report.get("hypotheses") or inv.get("hypotheses") or []
    for hyp in hyps[:8]:
        conf = hyp.get("confidence", 0) or 0
        parts.append(
            f"<div class=card><b>{esc(hyp.get('statement', '?'))}</b> <span class=muted>· {esc(hyp.get('service') or '?')}"
            f" · {esc(hyp.get('status') or '')}</span><div class=bar><span style=\"width:{max(0, min(100, int(conf)))}%\">"
            f"</span></div><span class=muted>confidence {esc(conf)}</span>"
            f"<p><b>Evidence</b></p>{_evidence(hyp.get('evidence'))}"
            f"<p><b>Counter-evidence</b></p>{_evidence(hyp.get('counter_evidence'), 6)}</div>")
    if not hyps:
        parts.append("<p class=muted>No hypothesis survived verification.</p>")
    steps = (report.get("fix_plan") or inv.get("fix_plan") or {}).get("steps") or []
    if steps:
        rows = "".join(f"<tr><td>{esc(s.get('priority'))}</td><td>{esc(s.get('action'))}</td><td>{esc(s.get('target'))}"
                       f"</td><td>{esc(s.get('description'))}</td></tr>" for s in steps)
        parts.append(f"<h2>Fix plan</h2><table><tr><th>priority</th><th>action</th><th>target</th><th>what</th></tr>"
                     f"{rows}</table>")
    parts.append("<h2>Trace</h2>")
    rows = "".join(f"<tr><td>{esc(p['phase'])}</td><td>{esc(p['round'])}</td><td>{esc(p['status'])}</td>"
                   f"<td>{esc(p['attempts'])}</td><td>{esc(p['started_at'])}</td><td>{esc(p['finished_at'])}</td></tr>"
                   for p in traces.get("phases") or [])
    parts.append(f"<table id=phases><tr><th>phase</th><th>round</th><th>status</th><th>attempts</th><th>started</th>"
                 f"<th>finished</th></tr>{rows}</table>")
    for run in traces.get("agents") or []:
        calls = "".join(f"<tr><td>{esc(c.get('capability'))}</td><td>{esc(c.get('server'))}</td>"
                        f"<td>{esc(c.get('duration_ms'))} ms</td><td>{'ok' if c.get('ok') else esc(c.get('error'))}</td></tr>"
                        for c in run.get("tool_calls") or [])
        mc = run.get("model_calls") or {}
        parts.append(
            f"<div class=card><b>{esc(run.get('agent'))}</b> <span class=muted>{esc(run.get('phase'))} · "
            f"{esc(run.get('status'))} · {esc(run.get('duration_ms'))} ms · model {esc(mc.get('model') or 'none')} · "
            f"tokens {esc(mc.get('tokens_in'))} in / {esc(mc.get('tokens_out'))} out</span>"
            f"<table><tr><th>tool call</th><th>server</th><th>took</th><th>result</th></tr>{calls}</table></div>")
    cb = cost.get("cost_breakdown") or {}
    llm = cb.get("llm_tokens") or {}
    parts.append(
        f"<h2>Cost</h2><table id=cost><tr><th>LLM tokens</th><td>{esc(llm.get('input'))} in / {esc(llm.get('output'))} out"
        f"</td><td>${esc(llm.get('cost_usd'))}</td></tr><tr><th>MCP calls</th><td>{esc((cb.get('mcp_calls') or {}).get('count'))}"
        f"</td><td>$0</td></tr><tr><th>worker time</th><td>{esc((cb.get('compute') or {}).get('worker_seconds'))} s</td>"
        f"<td>—</td></tr><tr><th>total</th><td></td><td><b>${esc(cb.get('total_usd'))}</b></td></tr></table>")
    return _page(f"{verdict} — {_trigger(inv)}", "".join(parts))


def render_list_page(items: list[dict[str, Any]], next_url: str | None) -> str:
    """The list of recent investigations (``commands.api.list_page`` items), newest first."""
    rows = "".join(
        f"<tr><td><a href=\"/investigations/{quote(str(i['id']), safe='')}\">{esc(i['id'])}</a></td>"
        f"<td>{esc(_trigger(i))}</td><td>{esc(i.get('domain') or '')}</td><td>{esc(i['status'])}</td>"
        f"<td>{esc(i.get('verdict') or '')}</td><td>{esc(i.get('confidence') if i.get('confidence') is not None else '')}"
        f"</td><td>{esc(i.get('created_at'))}</td></tr>" for i in items)
    more = f'<p><a href="{esc(next_url)}">Older</a></p>' if next_url else ""
    body = (f"<h1>Investigations</h1><table id=investigations><tr><th>id</th><th>trigger</th><th>domain</th>"
            f"<th>status</th><th>verdict</th><th>confidence</th><th>created</th></tr>{rows}</table>{more}")
    return _page("Investigations", body)
