"""Prometheus metrics (``pm_`` prefix): the contract of docs/metrics.md, recorded at a few edges.

Where each is recorded, so the engine's loops stay free of instrumentation:

* :class:`JobMetrics` (Dramatiq middleware around every investigation job): started (when a worker
  first takes it), finished by status/verdict/trigger/domain, duration, cost, confidence,
  hypothesis rounds, phase durations (from the checkpoints), agent durations and tokens/cost by
  model (from the agent runs) — read from the database once when the job ends the investigation —
  and worker utilisation.
* :func:`observe_mcp_call`: the MCP gateway's ``on_call`` hook (pipeline/tools.py).
* :class:`CountedPublisher`: wraps each registered publisher (Slack, Jira, callback).
* bot/http: HTTP requests and webhook deliveries (a middleware), and the scrape-time gauges
  (open investigations by status, queue depth per priority) through :class:`ScrapeCollector`.

Several processes: with ``PROMETHEUS_MULTIPROC_DIR`` set (before the process starts; one empty
directory per pod), prometheus-client writes every process's samples there and
:func:`exposition` merges them (its multiprocess mode).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

from dramatiq.middleware import Middleware
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

log = logging.getLogger(__name__)

PHASE_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600)

INVESTIGATIONS = Counter("pm_investigation", "Investigations started (first taken by a worker)",
                         ["trigger", "priority", "domain"])
FINISHED = Counter("pm_investigation_finished", "Investigations that reached a terminal status",
                   ["status", "verdict", "trigger", "domain"])
DURATION = Histogram("pm_investigation_duration_seconds", "Creation to terminal status", ["trigger"],
                     buckets=(30, 60, 120, 300, 600, 900, 1200, 1800, 3600))
COST = Histogram("pm_investigation_cost_dollars", "An investigation's LLM cost when it finishes", ["domain"],
                 buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20))
PHASE = Histogram("pm_phase_duration_seconds", "One phase of the state machine", ["phase"], buckets=PHASE_BUCKETS)
AGENT = Histogram("pm_agent_execution_duration_seconds", "One agent run", ["agent"], buckets=PHASE_BUCKETS)
TOKENS = Counter("pm_agent_tokens", "LLM tokens consumed", ["agent", "model", "direction"])
LLM_COST = Counter("pm_llm_cost_dollars", "Estimated LLM cost in US dollars", ["model", "domain"])
MCP_LATENCY = Histogram("pm_mcp_call_duration_seconds", "MCP tool calls through the gateway",
                        ["server", "capability"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30))
MCP_ERRORS = Counter("pm_mcp_call_errors", "MCP tool calls that failed", ["server", "capability", "reason"])
ITERATIONS = Histogram("pm_hypothesis_iterations", "Hypothesis/verification rounds", buckets=(1, 2, 3, 4, 5))
CONFIDENCE = Histogram("pm_hypothesis_confidence", "Final confidence (0-100)",
                       buckets=(10, 20, 30, 40, 50, 60, 70, 80, 90, 100))
UTILIZATION = Gauge("pm_worker_utilization", "Busy worker threads / worker threads", multiprocess_mode="liveall")
WEBHOOKS = Counter("pm_webhook_deliveries", "Webhook deliveries answered", ["source", "status"])
PUBLISH = Counter("pm_publish", "Results published", ["target", "outcome"])
HTTP = Counter("pm_http_requests", "HTTP requests answered by pm serve", ["method", "route", "code"])
# Durability (docs/reliability.md): each event is also logged; alerts/rules.yaml's durability group reads them.
FENCED_WRITES = Counter(
    "pm_fenced_writes", "Writes refused because the run no longer held the investigation's lease")
LEASES_LOST = Counter("pm_leases_lost", "Runs stopped because their lease was lost")
REQUEUED = Counter("pm_reconciler_requeued", "Investigations the reconciler re-enqueued")
OUTBOX_CLAIMS_LOST = Counter(
    "pm_outbox_claims_lost", "Outbox deliveries a drainer found claimed by another drainer")
OUTBOX_DEAD = Counter("pm_outbox_dead_letters", "Outbox deliveries moved to the dead-letter state", ["sink"])
# Budgets (docs/budgets.md; pipeline/budgets.py). Like the durability counters, not in docs/metrics.md's
# contract table: the dashboard and the alert rules compute budget use from pm_llm_cost_dollars_total.
BUDGET_USED = Gauge("pm_budget_used_ratio", "Share of a monthly LLM budget spent (1 = all of it)",
                    ["scope", "domain"], multiprocess_mode="mostrecent")
BUDGET_NOTICES = Counter("pm_budget_notices", "Budget thresholds crossed, once per limit and month",
                         ["scope", "level"])
BUDGET_REFUSED = Counter("pm_budget_refused", "Investigations a budget kept from starting", ["scope", "level"])
WEBHOOK_DEAD = Counter("pm_webhook_dead_letters",
                       "Stored webhook deliveries dead-lettered after failing processing PM_WEBHOOK_MAX_ATTEMPTS times",
                       ["source"])

PRIORITIES = ("P1", "P2", "P3")
VERDICTS = ("CONFIRMED", "LIKELY", "INCONCLUSIVE")
OPEN = ("QUEUED", "RUNNING")
TERMINAL = ("COMPLETE", "FAILED", "CANCELLED")


def prime(*, domains: list[str] | tuple[str, ...] = (), triggers: tuple[str, ...] = ("api",)) -> None:
    """Create the label children of known values at 0, so a series' first increment shows in rate().

    Args:
        domains: the configured domains (PM_DOMAINS values); ``none`` is always added.
        triggers: the origin kinds this process serves.
    """
    for trigger in triggers:
        for priority in PRIORITIES:
            for domain in (*domains, "none"):
                INVESTIGATIONS.labels(trigger, priority, domain)
    for target in ("slack", "jira", "callback"):
        for outcome in ("ok", "error"):
            PUBLISH.labels(target, outcome)
    for sink in ("slack", "jira"):
        OUTBOX_DEAD.labels(sink)


def exposition(extra: list[Any] | None = None) -> tuple[bytes, str]:
    """The text exposition of this process's metrics (all processes' with PROMETHEUS_MULTIPROC_DIR).

    Args:
        extra: collectors read at scrape time (e.g. :class:`ScrapeCollector`).

    Returns:
        ``(body, content_type)``.
    """
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    elif extra:
        registry = CollectorRegistry()
        registry.register(_Everything())
    else:
        registry = REGISTRY
    for collector in extra or []:
        registry.register(collector)
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _Everything:
    """The default registry's samples inside another registry (so scrape-time collectors can join)."""

    def collect(self) -> Iterator[Any]:
        from prometheus_client import REGISTRY

        yield from REGISTRY.collect()


class ScrapeCollector:
    """``pm_investigation_status`` and ``pm_queue_depth``, read when Prometheus scrapes.

    Args:
        open_counts: ``() -> {status: n}`` for the open statuses (one grouped query).
        queue_depths: ``() -> {priority: n}``.
    """

    def __init__(self, open_counts: Callable[[], dict[str, int]], queue_depths: Callable[[], dict[str, int]]):
        self._open_counts = open_counts
        self._queue_depths = queue_depths

    def collect(self) -> Iterator[GaugeMetricFamily]:
        status = GaugeMetricFamily("pm_investigation_status", "Investigations in each open status",
                                   labels=["status"])
        try:
            counts = self._open_counts()
        except Exception as exc:  # a scrape must not fail because the database blinked; say so in the log
            log.warning("pm_investigation_status not read: %s", exc)
            counts = None
        if counts is not None:
            for name in OPEN:
                status.add_metric([name], counts.get(name, 0))
        yield status
        depth = GaugeMetricFamily("pm_queue_depth", "Messages waiting per priority queue", labels=["priority"])
        try:
            depths = self._queue_depths()
        except Exception as exc:  # same: the broker may be down; /readyz reports that
            log.warning("pm_queue_depth not read: %s", exc)
            depths = {}
        for priority, n in sorted(depths.items()):
            depth.add_metric([priority], n)
        yield depth


def queue_depths(broker: Any, queues: dict[str, str]) -> dict[str, int]:
    """Messages waiting per priority on ``broker`` (in-process, Redis or RabbitMQ).

    Args:
        queues: priority -> queue name as declared.
    """
    out: dict[str, int] = {}
    for priority, name in queues.items():
        local: Any = getattr(broker, "queues", None)
        if isinstance(local, dict):  # in-process broker: name -> queue.Queue
            out[priority] = int(local[name].qsize()) if name in local else 0
        elif hasattr(broker, "client") and hasattr(broker, "namespace"):  # Redis: ids wait in a list
            out[priority] = int(broker.client.llen(f"{broker.namespace}:{name}"))
        elif hasattr(broker, "get_queue_message_counts"):  # RabbitMQ: (ready, delayed, dead)
            out[priority] = int(broker.get_queue_message_counts(name)[0])
    return out


def serve(port: int, host: str = "0.0.0.0") -> Any:  # noqa: S104 - Prometheus scrapes from outside the pod
    """Serve :func:`exposition` on ``port`` in a daemon thread (``pm worker``'s metrics port).

    With several worker processes in one pod sharing PROMETHEUS_MULTIPROC_DIR, the first one binds
    the port and exposes every process's samples; the others log that and go on.

    Returns:
        The server, or None when the port is taken.
    """
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404, "only /metrics is served here")
                return
            body, content_type = exposition()
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - scrapes are not news
            return

    try:
        server = ThreadingHTTPServer((host, port), Handler)
    except OSError as exc:
        log.warning("metrics port %d not served (%s); with PROMETHEUS_MULTIPROC_DIR another process of this "
                    "pod serves every process's metrics", port, exc)
        return None
    threading.Thread(target=server.serve_forever, name="pm-metrics", daemon=True).start()
    log.info("metrics on :%d/metrics%s", port, " (multiprocess)" if os.environ.get("PROMETHEUS_MULTIPROC_DIR") else "")
    return server


def process_exited() -> None:
    """Tell multiprocess mode this process is gone (its live gauges stop counting)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())


def observe_mcp_call(record: dict[str, Any]) -> None:
    """The gateway's ``on_call`` hook: latency of every call, errors by reason."""
    server = str(record.get("server") or "none")
    capability = str(record.get("capability") or "none")
    MCP_LATENCY.labels(server, capability).observe(float(record.get("duration_ms") or 0.0) / 1000)
    if not record.get("ok"):
        error = str(record.get("error") or "").lower()
        reason = "circuit_open" if "circuit" in error else "timeout" if "timed out" in error or "timeout" in error \
            else "error"
        MCP_ERRORS.labels(server, capability, reason).inc()


class CountedPublisher:
    """A publisher whose ``deliver`` calls are counted in ``pm_publish_total`` (other attributes pass)."""

    def __init__(self, target: str, inner: Any) -> None:
        self._target = target if target in ("slack", "jira", "callback") else "callback"
        self._inner = inner

    def deliver(self, *args: Any, **kwargs: Any) -> Any:
        try:
            result = self._inner.deliver(*args, **kwargs)
        except Exception:
            PUBLISH.labels(self._target, "error").inc()
            raise
        PUBLISH.labels(self._target, "ok").inc()
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class JobMetrics(Middleware):
    """Dramatiq middleware: investigation-level metrics when a job starts or ends an investigation.

    Two small reads per investigation job (its status before and after) and, when the job ends it,
    one read of its checkpoints and agent runs. Publishing jobs are not looked at.

    Args:
        session: ``() -> context manager yielding a Session`` (the runtime's).
        threads: worker threads of this process (for utilisation).
    """

    def __init__(self, session: Callable[[], Any], threads: int) -> None:
        self._session = session
        self._threads = max(1, threads)
        self._busy = 0
        self._lock = threading.Lock()
        self._before = threading.local()

    def _utilisation(self, delta: int) -> None:
        with self._lock:
            self._busy += delta
            UTILIZATION.set(self._busy / self._threads)

    def before_process_message(self, broker: Any, message: Any) -> None:
        self._utilisation(1)
        self._before.status = None
        if message.actor_name.startswith("run_investigation") and message.args:
            try:
                self._before.status = self._status(str(message.args[0]))
            except Exception as exc:  # metrics never stop a job
                log.warning("metrics: status of %s not read: %s", message.args[0], exc)

    def after_process_message(self, broker: Any, message: Any, *, result: Any = None,
                              exception: Any = None) -> None:
        self._utilisation(-1)
        before = getattr(self._before, "status", None)
        self._before.status = None
        if before is None or before not in OPEN:
            return
        try:
            self._record(str(message.args[0]), before)
        except Exception as exc:  # metrics never fail a job
            log.warning("metrics: %s not recorded: %s", message.args[0], exc)

    def after_skip_message(self, broker: Any, message: Any) -> None:
        self._utilisation(-1)
        self._before.status = None

    def _status(self, investigation_id: str) -> str | None:
        from store.models import Investigation

        with self._session() as s:
            inv = s.get(Investigation, investigation_id)
            return inv.status if inv is not None else None

    def _record(self, investigation_id: str, before: str) -> None:
        from store import agent_runs, checkpoints
        from store.models import Investigation

        with self._session() as s:
            inv = s.get(Investigation, investigation_id)
            if inv is None:
                return
            trigger = str((inv.origin or {}).get("kind") or "none")
            domain = inv.domain or "none"
            if before == "QUEUED" and inv.status != "QUEUED" and inv.started_at is not None:
                INVESTIGATIONS.labels(trigger, inv.priority or "P2", domain).inc()
            if inv.status not in TERMINAL:
                return
            verdict = inv.verdict if inv.status == "COMPLETE" and inv.verdict in VERDICTS else "none"
            FINISHED.labels(inv.status, verdict, trigger, domain).inc()
            DURATION.labels(trigger).observe(max(0.0, (inv.finished_at or inv.updated_at).timestamp()
                                                 - inv.created_at.timestamp()))
            COST.labels(domain).observe(float(inv.cost_usd or 0.0))
            if inv.status == "COMPLETE":
                ITERATIONS.observe(max(1, inv.round or 0))
                if inv.confidence is not None:
                    CONFIDENCE.observe(inv.confidence)
            for cp in checkpoints.list_for(session=s, investigation_id=investigation_id):
                if cp.finished_at is not None and cp.started_at is not None:
                    PHASE.labels(cp.phase).observe(max(0.0, (cp.finished_at - cp.started_at).total_seconds()))
            for run in agent_runs.list_for(session=s, investigation_id=investigation_id):
                model = run.model or "none"
                if run.duration_ms is not None:
                    AGENT.labels(run.agent).observe(run.duration_ms / 1000)
                TOKENS.labels(run.agent, model, "input").inc(run.tokens_in or 0)
                TOKENS.labels(run.agent, model, "output").inc(run.tokens_out or 0)
                LLM_COST.labels(model, domain).inc(float(run.cost_usd or 0.0))
