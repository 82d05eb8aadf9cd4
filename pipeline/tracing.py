"""OpenTelemetry spans when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (OTLP over gRPC).

One span per investigation job (``investigation.job``), and one per look-up of a typed ticket or
alert id before an investigation exists (``trigger.lookup``); inside them, one span per MCP tool call
(``mcp <capability>``, from the gateway's ``on_call`` hook, timed by the gateway) and, when the job
ends, one span per phase (``phase <PHASE>``, from its checkpoint's times) and per agent run
(``agent <name>``, with the model and its token counts as ``gen_ai.*`` attributes) that finished
during the job. The engine is not touched: phases and agents are drawn from what the store
records, with their real start and end times. A model call is not timed on its own (the agent run
records its tokens, not each call's times), so model usage is an attribute of the agent span.

:func:`setup` runs in the composition roots (``pm serve``, ``pm worker``); until then every hook
here does nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from dramatiq.middleware import Middleware

log = logging.getLogger(__name__)

# The process's tracer, set once by setup() in a composition root (OpenTelemetry's providers are
# per process by design); None means tracing is off.
_state: dict[str, Any] = {"tracer": None}


def setup(settings: Any, *, exporter: Any = None) -> bool:
    """Turn tracing on when OTEL_EXPORTER_OTLP_ENDPOINT is set (or an ``exporter`` is given, for tests).

    Args:
        settings: store.config.Settings.
        exporter: a span exporter to use instead of OTLP (e.g. the SDK's InMemorySpanExporter).

    Returns:
        Whether tracing is on.
    """
    endpoint = getattr(settings, "otel_exporter_otlp_endpoint", None)
    if exporter is None and not endpoint:
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "production-master"}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        log.info("tracing to %s", endpoint)
    _state["tracer"] = provider.get_tracer("production-master")
    _state["provider"] = provider
    return True


def shutdown() -> None:
    """Flush and stop the exporter (end of process); tracing is off afterwards."""
    provider = _state.pop("provider", None)
    _state["tracer"] = None
    if provider is not None:
        provider.shutdown()


def _ns(value: datetime | str | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return int(value.timestamp() * 1e9)


@contextmanager
def span(name: str, **attributes: Any) -> Iterator[None]:
    """A span around work done outside a job (the look-up of a typed ticket before anything is recorded):
    the tool-call spans inside it become its children. Nothing when tracing is off."""
    tracer = _state["tracer"]
    if tracer is None:
        yield
        return
    with tracer.start_as_current_span(name, attributes=attributes):
        yield


def record_tool_call(record: dict[str, Any]) -> None:
    """The gateway's ``on_call`` hook: a span for the call, a child of the job's span."""
    tracer = _state["tracer"]
    if tracer is None:
        return
    from opentelemetry.trace import Status, StatusCode

    start = _ns(record.get("started_at")) or time.time_ns()
    span = tracer.start_span(f"mcp {record.get('capability')}", start_time=start, attributes={
        "mcp.server": str(record.get("server") or ""), "mcp.tool": str(record.get("tool") or ""),
        "mcp.capability": str(record.get("capability") or ""), "mcp.attempts": int(record.get("attempts") or 0),
        "mcp.bytes": int(record.get("bytes") or 0)})
    if not record.get("ok"):
        span.set_status(Status(StatusCode.ERROR, str(record.get("error") or "")[:500]))
    span.end(end_time=start + int(float(record.get("duration_ms") or 0.0) * 1e6))


class JobTracing(Middleware):
    """Dramatiq middleware: the job span, and at its end the spans of the phases and agents it ran.

    Args:
        session: ``() -> context manager yielding a Session`` (the runtime's).
    """

    def __init__(self, session: Callable[[], Any]) -> None:
        self._session = session
        self._local = threading.local()

    def before_process_message(self, broker: Any, message: Any) -> None:
        tracer = _state["tracer"]
        self._local.job = None
        if tracer is None or not message.actor_name.startswith("run_investigation") or not message.args:
            return
        from opentelemetry import context, trace

        span = tracer.start_span("investigation.job", attributes={
            "pm.investigation_id": str(message.args[0]), "messaging.message.id": message.message_id,
            "messaging.destination.name": message.queue_name})
        token = context.attach(trace.set_span_in_context(span))
        self._local.job = (span, token, datetime.now().astimezone(), str(message.args[0]))

    def after_process_message(self, broker: Any, message: Any, *, result: Any = None, exception: Any = None) -> None:
        job = getattr(self._local, "job", None)
        self._local.job = None
        if job is None:
            return
        from opentelemetry import context
        from opentelemetry.trace import Status, StatusCode

        span, token, started, investigation_id = job
        try:
            self._children(span, started, investigation_id)
        except Exception as exc:  # tracing never fails a job
            log.warning("tracing: spans of %s not recorded: %s", investigation_id, exc)
        if exception is not None:
            span.set_status(Status(StatusCode.ERROR, f"{type(exception).__name__}: {exception}"[:500]))
        context.detach(token)
        span.end()

    after_skip_message = after_process_message

    def _children(self, parent: Any, started: datetime, investigation_id: str) -> None:
        from opentelemetry import trace

        from store import agent_runs, checkpoints

        tracer = _state["tracer"]
        ctx = trace.set_span_in_context(parent)
        with self._session() as s:
            for cp in checkpoints.list_for(session=s, investigation_id=investigation_id):
                if cp.finished_at is None or cp.finished_at < started:
                    continue
                span = tracer.start_span(f"phase {cp.phase}", context=ctx, start_time=_ns(cp.started_at),
                                         attributes={"pm.phase": cp.phase, "pm.round": cp.round,
                                                     "pm.status": cp.status, "pm.attempts": cp.attempts})
                span.end(end_time=_ns(cp.finished_at))
            for run in agent_runs.list_for(session=s, investigation_id=investigation_id):
                if run.finished_at is None or run.finished_at < started:
                    continue
                span = tracer.start_span(f"agent {run.agent}", context=ctx, start_time=_ns(run.started_at),
                                         attributes={"pm.agent": run.agent, "pm.phase": run.phase,
                                                     "gen_ai.request.model": run.model or "none",
                                                     "gen_ai.usage.input_tokens": run.tokens_in or 0,
                                                     "gen_ai.usage.output_tokens": run.tokens_out or 0,
                                                     "pm.cost_usd": float(run.cost_usd or 0.0),
                                                     "pm.tool_calls": len(run.tool_calls or [])})
                span.end(end_time=_ns(run.finished_at))
