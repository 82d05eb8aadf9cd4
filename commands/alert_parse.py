"""Turn an alert posted in Slack (PagerDuty, Grafana, Alertmanager, plain text) into a trigger.

A reaction on a message asks us to investigate that message. Alerting tools post
in three shapes: plain ``text``, legacy ``attachments`` (title, text, fields) and
Block Kit ``blocks``. We flatten all of them to lines of text once, then read the
alert id, service, title, time and source from those lines with a few patterns
modelled on the default Slack templates of each tool (PagerDuty's Slack app,
Grafana's Slack contact point, Alertmanager's ``slack_configs`` default template).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from commands.errors import BadRequest

# Alert ids as the sandbox and the tools print them: "pd-3975", "alert-12", "am-ab12".
_ALERT_ID = re.compile(r"\b((?:pd|alert|am|gf|grafana|alertmanager|inc)-[A-Za-z0-9]+)\b", re.IGNORECASE)
# PagerDuty incident links carry the incident id (e.g. .../incidents/Q1ABCDEF).
_PD_URL = re.compile(r"pagerduty\.com/incidents/([A-Z0-9]+)")
# "service = pricing", "service: `pricing`", "*service:* pricing", service="pricing" (label syntaxes).
_SERVICE_LABEL = re.compile(r"\bservice\b\s*\**\s*[:=]\s*\**\s*[`\"']?([A-Za-z0-9_.\-]+)", re.IGNORECASE)
# "High error rate on pricing" / "latency in checkout": the service is the word after on/in/for.
_SERVICE_PHRASE = re.compile(r"\b(?:on|in|for)\s+([a-z][a-z0-9_\-]{1,40})\b")
# Status prefixes the tools put before a title: "[FIRING:1]", "[Alerting]", "Triggered #123:", "[RESOLVED]".
_TITLE_PREFIX = re.compile(
    r"^\s*(?:\[(?:FIRING|RESOLVED|ALERTING|OK|NO DATA)[^\]]*\]|(?:triggered|acknowledged|resolved)\b"
    r"(?:\s+#\d+)?:?)\s*",
    re.IGNORECASE,
)
_ISO = re.compile(r"\b(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2})?(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?)")
_NOT_SERVICES = {"production", "prod", "staging", "the", "call", "service", "host", "pod", "env"}


def parse_alert_message(message: dict) -> dict:
    """Read one Slack message (as conversations.history returns it) into a trigger.

    Args:
        message: the Slack message dict with any of ``text``, ``attachments``, ``blocks``,
            ``ts``, ``bot_profile``/``username``.

    Returns:
        ``{"alert": id, "service", "title", "ts", "source"}`` when an alert id is present, else
        ``{"text": title, "service", "title", "ts", "source"}``. ``service``/``source`` may be None;
        ``ts`` is ISO-8601 UTC with ``Z`` (from the alert, else the message time).

    Raises:
        BadRequest: when the message holds no text at all.
    """
    lines = message_lines(message)
    if not lines:
        raise BadRequest("that message has no text to investigate; react on an alert or a message describing it")
    blob = "\n".join(lines)
    source = _source(blob, message)
    title = _title(message, lines)
    service = _service(message, blob, title, alert_like=source is not None)
    alert_id = _alert_id(blob)
    trigger: dict = {"service": service, "title": title, "ts": _time(blob, message), "source": source}
    if alert_id:
        trigger["alert"] = alert_id
    else:
        trigger["text"] = title
    return trigger


def message_lines(message: dict) -> list[str]:
    """Every human-readable line in a message: text, attachments (and their fields), blocks.

    Args:
        message: a Slack message dict.

    Returns:
        Non-empty stripped lines in reading order.
    """
    parts: list[str] = [message.get("text") or ""]
    for att in message.get("attachments") or []:
        for key in ("pretext", "title", "text", "fallback"):
            parts.append(att.get(key) or "")
        for fld in att.get("fields") or []:
            parts.append(f"{fld.get('title', '')}: {fld.get('value', '')}")
        parts.append(att.get("title_link") or "")
    _block_texts(message.get("blocks") or [], parts)
    seen: set[str] = set()
    lines: list[str] = []
    for part in parts:
        for line in str(part).splitlines():
            line = line.strip().lstrip("•-* ").strip()
            if line and line not in seen:
                seen.add(line)
                lines.append(line)
    return lines


def _block_texts(node: object, out: list[str]) -> None:
    # Blocks nest (section → fields, rich_text → sections → elements); walk everything with text.
    if isinstance(node, list):
        for item in node:
            _block_texts(item, out)
        return
    if not isinstance(node, dict):
        return
    text = node.get("text")
    if isinstance(text, str):
        out.append(text)
    elif isinstance(text, dict):
        _block_texts(text, out)
    if isinstance(node.get("url"), str):
        out.append(node["url"])
    for key in ("fields", "elements"):
        if key in node:
            _block_texts(node[key], out)


def _source(blob: str, message: dict) -> str | None:
    who = " ".join(
        str(x) for x in (message.get("username"), (message.get("bot_profile") or {}).get("name"), blob)
    ).lower()
    for name in ("pagerduty", "grafana", "alertmanager", "opsgenie", "datadog"):
        if name in who:
            return name
    if re.search(r"\[(FIRING|RESOLVED)(:\d+)?\]", blob):
        return "alertmanager"
    if re.search(r"\bpd-\d+", blob, re.IGNORECASE):
        return "pagerduty"
    return None


def _title(message: dict, lines: list[str]) -> str:
    for att in message.get("attachments") or []:
        if att.get("title"):
            return _clean_title(att["title"])
    for block in message.get("blocks") or []:
        if block.get("type") == "header" and isinstance(block.get("text"), dict):
            return _clean_title(block["text"].get("text", ""))
    return _clean_title(lines[0])


def _clean_title(raw: str) -> str:
    title = _TITLE_PREFIX.sub("", raw).strip()
    # Drop a trailing "(pd-3975)" or "#123" reference: the id travels separately.
    title = re.sub(r"\s*\((?:[a-z]+-[A-Za-z0-9]+|#\d+)\)\s*$", "", title, flags=re.IGNORECASE)
    title = re.sub(r"^\[#?\d+\]\s*", "", title)
    return title[:200] or raw.strip()[:200]


def _service(message: dict, blob: str, title: str, *, alert_like: bool) -> str | None:
    for att in message.get("attachments") or []:
        for fld in att.get("fields") or []:
            if str(fld.get("title", "")).strip().lower() in {"service", "impacted service", "services"}:
                value = str(fld.get("value", "")).strip().strip("`*")
                if value:
                    return value.split()[0].lower()
    labelled = _SERVICE_LABEL.search(blob)
    if labelled:
        return labelled.group(1).lower()
    # "... on pricing" names a service in alert titles; in a person's sentence it rarely does.
    for candidate in _SERVICE_PHRASE.findall(title) if alert_like else []:
        if candidate not in _NOT_SERVICES:
            return candidate
    return None


def _alert_id(blob: str) -> str | None:
    found = _ALERT_ID.search(blob)
    if found:
        return found.group(1).lower()
    pd = _PD_URL.search(blob)
    if pd:
        return f"pd-{pd.group(1).lower()}"
    return None


def _time(blob: str, message: dict) -> str | None:
    iso = _ISO.search(blob)
    if iso:
        raw = iso.group(1).replace(" ", "T")
        try:
            parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            pass
    for att in message.get("attachments") or []:
        if att.get("ts"):
            return slack_ts_to_iso(att["ts"])
    if message.get("ts"):
        return slack_ts_to_iso(message["ts"])
    return None


def slack_ts_to_iso(ts: str | float | int) -> str:
    """Convert a Slack ``ts`` ("1708531800.123456") to ISO-8601 UTC with ``Z``.

    Args:
        ts: Slack timestamp (seconds since the epoch, as string or number).

    Returns:
        e.g. ``"2024-02-21T16:10:00Z"``.

    Raises:
        BadRequest: when ``ts`` is not a number.
    """
    try:
        seconds = float(ts)
    except (TypeError, ValueError):
        raise BadRequest(f"bad Slack timestamp {ts!r}; expected seconds like '1708531800.123456'") from None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
