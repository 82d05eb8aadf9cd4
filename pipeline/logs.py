"""Structured logs: one JSON object per line with the investigation id and a correlation id, secrets masked.

``PM_LOG_FORMAT=json`` turns it on in ``pm serve`` and ``pm worker`` (their composition roots call
:func:`configure`). The correlation id is the Dramatiq message id inside a job, the request's
``X-Request-Id`` (or a new one, echoed back) inside an HTTP request.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from pipeline.middleware import CorrelationFilter, current_correlation

# Token shapes worth masking even when they are not one of our configured secrets (a pasted key in
# an error message, a header echoed by a library).
_PATTERNS = re.compile(
    r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"
    r"|xox[abposr]-[A-Za-z0-9-]{8,}|xapp-[A-Za-z0-9-]{8,}"
    r"|sk-ant-[A-Za-z0-9_-]{8,}"
    r"|(password|passwd|secret|token|api[_-]?key)(\"?\s*[:=]\s*\"?)[^\s\",}]{4,}"
    r"|(://[^:/@\s]+:)[^@/\s]+(@)"
)


def _mask_match(m: re.Match[str]) -> str:
    if m.group(1):
        return m.group(1) + "***"
    if m.group(2):
        return m.group(2) + m.group(3) + "***"
    if m.group(4):
        return m.group(4) + "***" + m.group(5)
    return "***"


class Redact(logging.Filter):
    """Masks configured secret values and token-shaped text in the message and exception text.

    Args:
        secrets: the values to mask wherever they appear (API keys, tokens, passwords of settings).
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def mask(self, text: str) -> str:
        """``text`` with every secret and token shape replaced by ``***``."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return _PATTERNS.sub(_mask_match, text)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.mask(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = self.mask(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class CorrelationIdFilter(logging.Filter):
    """Adds ``correlation_id`` to every record ("-" outside a job or request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.correlation_id = current_correlation.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", "investigation_id", "correlation_id", "exception"?}``."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "investigation_id": getattr(record, "investigation_id", "-"),
            "correlation_id": getattr(record, "correlation_id", "-"),
        }
        if record.exc_text:
            out["exception"] = record.exc_text
        elif record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def secret_values(settings: Any) -> list[str]:
    """Every SecretStr value of ``settings`` (plus each key of API_KEYS and the DATABASE_URL password)."""
    from pydantic import SecretStr

    out: list[str] = []
    for name in type(settings).model_fields:
        value = getattr(settings, name, None)
        if isinstance(value, SecretStr):
            raw = value.get_secret_value()
            out.append(raw)
            out += [k.strip().rpartition(":")[0] or k.strip() for k in raw.split(",")] if name == "api_keys" else []
    return out


def configure(settings: Any, *, json_logs: bool, stream: Any = None) -> logging.Handler:
    """Send the root logger's records through one handler: JSON or text, with ids, secrets masked.

    Args:
        settings: store.config.Settings (LOG_LEVEL, the secrets to mask).
        json_logs: one JSON object per line (else the text format of ``pm worker``).
        stream: where to write (default stderr).

    Returns:
        The installed handler.
    """
    handler = logging.StreamHandler(stream)
    handler.addFilter(CorrelationFilter())
    handler.addFilter(CorrelationIdFilter())
    handler.addFilter(Redact(secret_values(settings)))
    handler.setFormatter(JsonFormatter() if json_logs else logging.Formatter(
        "%(asctime)s %(levelname)s [%(investigation_id)s %(correlation_id)s] %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(settings, "log_level", "INFO"))
    return handler
