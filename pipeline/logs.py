"""Structured logs: one JSON object per line with the investigation id and a correlation id, secrets masked.

``PM_LOG_FORMAT=json`` turns it on in ``pm serve`` and ``pm worker`` (their composition roots call
:func:`configure`). The correlation id is the Dramatiq message id inside a job, the request's
``X-Request-Id`` (or a new one, echoed back) inside an HTTP request.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import traceback
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from pipeline.middleware import CorrelationFilter, current_correlation

# Token shapes worth masking even when they are not one of our configured secrets (a pasted key in
# an error message, a header echoed by a library).
_PATTERNS = re.compile(
    r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"
    r"|xox[abposr]-[A-Za-z0-9-]{8,}|xapp-[A-Za-z0-9-]{8,}"
    r"|sk-ant-[A-Za-z0-9_-]{8,}"
    r"|(password|passwd|secret|token|api[_-]?key)(\"?\s*[:=]\s*\"?)[^\s\",}]{4,}"
    r"|(://[^:/@\s]*:)[^@/\s]+(@)"
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
        try:
            message = record.getMessage()
        except Exception:  # a bad format/args pair: mask what there is rather than raise into the caller
            message = f"{record.msg} {record.args}"
        record.msg = self.mask(message)
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


def url_password(url: str) -> list[str]:
    """The password in a URL's user info (as written and percent-decoded), or [] when it has none."""
    if "://" not in url or "@" not in url:
        return []
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # a malformed port or netloc: fall back to the text between ':' and '@'
        password = url.split("://", 1)[1].rpartition("@")[0].partition(":")[2] or None
    if not password:
        return []
    return list({password, unquote(password)})


def secret_values(settings: Any) -> list[str]:
    """Every value of ``settings`` to mask: each SecretStr (and each key of API_KEYS) and the password of
    every URL setting (DATABASE_URL, REDIS_URL, RABBITMQ_URL, VAULT_ADDR, S3_ENDPOINT_URL, ...)."""
    from pydantic import SecretStr

    out: list[str] = []
    for name in type(settings).model_fields:
        value = getattr(settings, name, None)
        if isinstance(value, SecretStr):
            raw = value.get_secret_value()
            out.append(raw)
            out += [k.strip().rpartition(":")[0] or k.strip() for k in raw.split(",")] if name == "api_keys" else []
        elif isinstance(value, str):
            out += url_password(value)
    return [v for v in out if v]


_active: Redact | None = None
_base_factory: Callable[..., logging.LogRecord] | None = None


def mask(text: str) -> str:
    """``text`` with the configured secrets (once :func:`install_redaction` ran) and token shapes masked."""
    return (_active or Redact()).mask(text)


def install_redaction(settings: Any) -> Redact:
    """Mask every configured secret in every log record, whatever handler later writes it.

    One filter for the whole process: it runs when a record is made (the log-record factory), so the
    handlers uvicorn, Dramatiq or a library add after this call are covered as well as ours. Uncaught
    exceptions (``sys.excepthook``, ``threading.excepthook``) print masked tracebacks. Called by the
    composition roots (``pm``, ``python -m pipeline.worker``, :func:`configure`); calling it again
    replaces the secrets.

    Returns:
        The installed filter.
    """
    global _active, _base_factory
    redact = Redact(secret_values(settings))
    _active = redact
    if _base_factory is None:
        _base_factory = logging.getLogRecordFactory()
        base = _base_factory

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = base(*args, **kwargs)
            if _active is not None:
                _active.filter(record)
            return record

        logging.setLogRecordFactory(factory)

        def excepthook(exc_type: Any, exc: Any, tb: Any) -> None:
            text = "".join(traceback.format_exception(exc_type, exc, tb))
            sys.stderr.write(mask(text))

        def thread_excepthook(args: Any) -> None:
            if args.exc_type is SystemExit:
                return
            text = "".join(traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback))
            name = args.thread.name if args.thread is not None else "?"
            sys.stderr.write(mask(f"Exception in thread {name}:\n{text}"))

        sys.excepthook = excepthook
        threading.excepthook = thread_excepthook
    return redact


def configure(settings: Any, *, json_logs: bool, stream: Any = None) -> logging.Handler:
    """Send the root logger's records through one handler: JSON or text, with ids, secrets masked.

    Args:
        settings: store.config.Settings (LOG_LEVEL, the secrets to mask).
        json_logs: one JSON object per line (else the text format of ``pm worker``).
        stream: where to write (default stderr).

    Returns:
        The installed handler.
    """
    install_redaction(settings)
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
