"""The composition of the pipeline: database, broker, artifact store, actors, worker.

``build_runtime(settings)`` is called once per process by a composition root (the CLI, the
worker, the HTTP app, the Slack bot); everything below receives the runtime explicitly.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import dramatiq
from dramatiq import Worker
from dramatiq.errors import Retry
from dramatiq.middleware import CurrentMessage
from sqlalchemy.orm import Session

from agents.pricing import PriceTable
from agents.router import RouterConfig
from agents.router import config_from as router_config
from pipeline import publishing, recovery, tracing
from pipeline.broker import is_in_process, make_broker
from pipeline.budgets import BudgetPolicy, Budgets
from pipeline.errors import LeaseHeld
from pipeline.machine import Machine, retryable_errors
from pipeline.metrics import CountedPublisher, JobMetrics
from pipeline.middleware import CorrelationId, SessionCleanup, Timing
from pipeline.plan import PhaseFn, engine_plan
from pipeline.tools import missing_trigger, open_tools
from pipeline.tracing import JobTracing
from store import investigations as invs
from store import outbox
from store.artifacts import ArtifactStore, make_artifact_store
from store.db import check_reachable, make_engine, make_read_engine, make_session_factory
from store.errors import ConfigError
from store.knowledge import memory_from_settings
from store.models import TERMINAL_STATUSES

log = logging.getLogger(__name__)

#: priority → (queue, dramatiq actor priority; lower runs first when a worker has a choice)
QUEUES: dict[str, tuple[str, int]] = {
    "P1": ("investigations.fast", 0),
    "P2": ("investigations", 10),
    "P3": ("investigations.background", 20),
}
PUBLISH_QUEUE = "publishing"
#: Deliveries one drain round claims (at most one per investigation).
PUBLISH_BATCH = 50
ACTOR_NAMES = {"P1": "run_investigation_fast", "P2": "run_investigation", "P3": "run_investigation_background"}


class WorkerHandle:
    """A dramatiq Worker running as threads of this process, with its reconciler and outbox sweeper."""

    def __init__(self, worker: Worker, *, helpers: list[Any] | None = None) -> None:
        self._worker = worker
        self._helpers = list(helpers or [])

    def stop(self, timeout_ms: int = 30_000) -> None:
        """Stop consuming, let running jobs finish (up to ``timeout_ms``), hand back prefetched ones."""
        for helper in self._helpers:
            helper.stop()
        self._worker.stop(timeout=timeout_ms)


class Runtime:
    """Everything a process needs to create, run and publish investigations.

    Build it with :func:`build_runtime`.
    """

    def __init__(
        self,
        *,
        settings: Any,
        broker: dramatiq.Broker,
        artifacts: ArtifactStore,
        plan: Mapping[str, PhaseFn],
        tools_factory: Callable[[dict[str, Any]], Any] | None,
        lease_s: float,
        max_retries: int,
        min_backoff_ms: int,
        max_backoff_ms: int,
        timing: Timing,
        queue_prefix: str = "",
        cost: Any = None,
    ) -> None:
        self.settings = settings
        self.engine = make_engine(settings.effective_database_url)
        #: single-statement reads of hot paths (the admin API's status view); ``engine`` on SQLite
        self.read_engine = make_read_engine(self.engine)
        self.session_factory = make_session_factory(self.engine)
        self.broker = broker
        self.artifacts = artifacts
        self.timing = timing
        self.max_retries = max_retries
        self.queue_prefix = queue_prefix
        self.publishers: dict[str, Any] = {}
        #: The knowledge base (store.knowledge.Memory) the plan uses, for feedback from the front doors.
        self.memory: Any = None
        self.lease_s = lease_s
        # outbox claims and dead letters (pipeline.publishing reads these)
        self.outbox_claim_s = float(getattr(settings, "outbox_claim_s", 30.0))
        self.outbox_dead_after_s = float(getattr(settings, "outbox_dead_after_s", 6 * 3600.0))
        #: called with the text of an alarm (a dead-lettered delivery); bot wiring sets the admin channel
        self.alarm: Callable[[str], None] | None = None
        self._publish_pool: ThreadPoolExecutor | None = None
        self._sweeper: publishing.OutboxSweeper | None = None  # set by start_worker
        self._pool_lock = threading.Lock()
        self._open = threading.local()
        # Bumped (and waiters woken) after each progress event this process's workers commit.
        self._progress_cv = threading.Condition()
        self._progress_count = 0
        #: budgets and prices (pipeline.budgets): the start gate, the per-call charge, the caps
        self.budgets = make_budgets(self, cost)
        self.tools_factory = tools_factory
        self.machine = Machine(
            session=self.session, artifacts=artifacts, plan=plan, tools_factory=tools_factory,
            lease_s=lease_s, on_progress=self._progress, budgets=self.budgets,
        )
        self._declare_actors(min_backoff_ms, max_backoff_ms)

    def missing_trigger(self, *, trigger: dict[str, Any], origin: dict[str, Any],
                        sources: dict[str, Any]) -> str | None:
        """What to tell a requester whose ticket / alert does not exist (see
        :func:`pipeline.tools.missing_trigger`), or None: record and investigate it."""
        if self.tools_factory is None:
            return None
        with tracing.span("trigger.lookup", **{"pm.origin": str(origin.get("kind") or "")}):
            gone = missing_trigger(self.tools_factory, {"id": "(not recorded)", "trigger": trigger,
                                                        "origin": origin, "sources": sources})
        return str(gone) if gone is not None else None

    def domain_notes(self, domain: str | None) -> str | None:
        """A domain's notes (``pm domains memory edit``) for an investigation's context, or None.

        Agents and prompts may call this to give the model the domain's known quirks, owners and runbooks.
        """
        from store.domains import memory_text

        with self.session() as s:
            return memory_text(session=s, domain=domain)

    # -- sessions -------------------------------------------------------------------------
    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits when the block ends, rolls back when it raises, and closes.

        ``session.info["budgets"]`` carries this runtime's budgets, so the start gate of
        commands.investigate applies whichever front door opened the session.
        """
        s = self.session_factory()
        s.info["budgets"] = self.budgets
        opened = self._open.__dict__.setdefault("sessions", [])
        opened.append(s)
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()
            if s in opened:
                opened.remove(s)

    def close_leftover_sessions(self) -> None:
        """Close any session this thread left open (the SessionCleanup middleware calls it)."""
        for s in list(self._open.__dict__.get("sessions", [])):
            s.rollback()
            s.close()
        self._open.__dict__["sessions"] = []

    # -- actors ---------------------------------------------------------------------------
    def _declare_actors(self, min_backoff_ms: int, max_backoff_ms: int) -> None:
        retryable = retryable_errors()
        max_retries = self.max_retries

        def retry_when(retries: int, exc: BaseException) -> bool:
            if isinstance(exc, Retry):  # another worker holds the lease: wait it out, but not forever
                return retries < 1000
            return isinstance(exc, retryable) and retries < max_retries

        def run(investigation_id: str) -> None:
            message = CurrentMessage.get_current_message()
            retries = (message.options.get("retries", 0) if message else 0) or 0
            try:
                self.machine.advance(investigation_id, final_attempt=retries >= max_retries)
            except LeaseHeld as exc:
                raise Retry(str(exc), delay=int(exc.retry_after_s * 1000)) from None

        self.run_actors: dict[str, dramatiq.Actor] = {}
        for priority, (queue, prio) in QUEUES.items():
            self.run_actors[priority] = dramatiq.actor(
                broker=self.broker, actor_name=ACTOR_NAMES[priority], queue_name=self.queue_prefix + queue,
                priority=prio,
                retry_when=retry_when, min_backoff=min_backoff_ms, max_backoff=max_backoff_ms,
                time_limit=6 * 3600 * 1000,
            )(run)

        def publish(investigation_id: str) -> None:
            if self._sweeper is not None:
                self._sweeper.poke()  # the sweeper thread drains; the worker thread is free at once
            else:
                self.publish_now(investigation_id, one_round=True)

        self.publish_actor = dramatiq.actor(
            broker=self.broker, actor_name="publish_events", queue_name=self.queue_prefix + PUBLISH_QUEUE,
            priority=5,
            max_retries=3, min_backoff=min_backoff_ms, max_backoff=max_backoff_ms,
        )(publish)

    def enqueue(self, investigation_id: str, priority: str = "P2", *, delay_ms: int | None = None) -> None:
        """Queue ``investigation_id`` on its priority's queue.

        Raises:
            ValueError: unknown priority.
        """
        if priority not in QUEUES:
            raise ValueError(f"priority {priority!r} is unknown; use P1, P2 or P3")
        self.run_actors[priority].send_with_options(args=(investigation_id,), delay=delay_ms)

    # -- publishing -----------------------------------------------------------------------
    def register_publisher(self, sink: str, publisher: Any) -> None:
        """Deliver this process's outbox events of ``sink`` through ``publisher``."""
        self.publishers[sink] = CountedPublisher(sink, publisher)

    def _progress(self, investigation_id: str) -> None:
        with self._progress_cv:
            self._progress_count += 1
            self._progress_cv.notify_all()
        if not self.publishers:
            return
        if self._sweeper is not None:  # this process drains on its own thread, not a worker's
            self._sweeper.poke()
        else:
            self.publish_actor.send(investigation_id)

    def _lanes(self, publisher: Any) -> ThreadPoolExecutor | None:
        """A pool for a publisher that can send several deliveries at once (``lanes`` > 1), else None.

        Against a slow sink (Slack answering in 1.5 s) one delivery after another drains ~0.3
        deliveries per second per drainer; the lanes send a batch's deliveries (one per
        investigation, so each thread keeps its order) side by side, as the bot's sweeper does.
        """
        lanes = int(getattr(publisher, "lanes", 1) or 1)
        if lanes <= 1:
            return None
        with self._pool_lock:
            if self._publish_pool is None:
                self._publish_pool = ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="pm-publish")
            return self._publish_pool

    def publish_now(self, investigation_id: str | None = None, *, one_round: bool = False
                    ) -> dict[str, dict[str, int]]:
        """Drain every registered sink until nothing is due; re-schedule itself when a sink asked to wait.

        Args:
            investigation_id: the investigation whose progress asked for this (the publish job's
                argument), or None (the periodic sweep).
            one_round: drain one batch per sink only, and send the job again when the batch was
                full. The publish job does so: it shares the worker's threads with investigations,
                and against a slow sink a drain to the end would hold a thread for minutes.
        """
        if one_round:
            result = {sink: publishing.drain(self, sink, pub, PUBLISH_BATCH, pool=self._lanes(pub))
                      for sink, pub in self.publishers.items()}
            if investigation_id is not None and any(c["done"] + c["failed"] >= PUBLISH_BATCH
                                                    for c in result.values()):
                self.publish_actor.send(investigation_id)
        else:
            result = {sink: publishing.drain_all(self, sink, pub, PUBLISH_BATCH, pool=self._lanes(pub))
                      for sink, pub in self.publishers.items()}
        if any(c["retry"] for c in result.values()) and investigation_id is not None:
            # Come back when the slowest sink said to (Retry-After), plus a little so the
            # delivery is due by then; never sooner than 1 s.
            wait_ms = max(c.get("wait_ms", 0) for c in result.values())
            self.publish_actor.send_with_options(args=(investigation_id,), delay=max(1000, wait_ms + 250))
        return result

    # -- worker ---------------------------------------------------------------------------
    def start_worker(self, threads: int | None = None, *, recover: bool = True,
                     stale_after_s: float | None = None, reconcile_interval_s: float | None = None,
                     sweep_interval_s: float | None = None, poll_ms: int = 200) -> WorkerHandle:
        """Start a dramatiq Worker in this process (embedded mode, ``pm worker``, the bot, the listener).

        With ``recover`` (the default), the queue is rebuilt from the database at once (every open
        investigation without a live lease for the in-process queue, which starts empty; those
        without progress for ``stale_after_s``, default the lease, for Redis/RabbitMQ), and then by
        a :class:`~pipeline.recovery.Reconciler` every PM_RECONCILE_INTERVAL_S. Due outbox
        deliveries are drained every PM_OUTBOX_SWEEP_S by an
        :class:`~pipeline.publishing.OutboxSweeper` (when publishers are registered).

        ``poll_ms`` is how often the worker's idle threads look up from their queues; stopping waits
        up to two of these (its worker threads, then its consumers). A long-lived worker keeps the
        default; ``pm investigate``, which stops its worker as soon as the report is in, passes less.
        """
        stale = stale_after_s if stale_after_s is not None else self.lease_s
        helpers: list[Any] = []
        if recover:
            fresh = is_in_process(self.broker)  # an in-process queue starts empty: rebuild all of it
            recovery.requeue_stale(self, stale_after_s=0.0 if fresh else stale, force=fresh)
            interval = reconcile_interval_s or float(getattr(self.settings, "reconcile_interval_s", 30.0))
            helpers.append(recovery.Reconciler(self, interval_s=interval, stale_after_s=stale).start())
        sweep = sweep_interval_s or float(getattr(self.settings, "outbox_sweep_s", 5.0))
        self._sweeper = publishing.OutboxSweeper(self, sweep).start()
        helpers.append(self._sweeper)
        worker = Worker(self.broker, worker_threads=threads or self.settings.worker_threads,
                        worker_timeout=poll_ms)
        worker.start()
        return WorkerHandle(worker, helpers=helpers)

    def wait(self, investigation_id: str, timeout_s: float = 300.0, poll_s: float = 0.1) -> dict[str, Any]:
        """Block until the investigation is COMPLETE, FAILED or CANCELLED.

        Raises:
            TimeoutError: it did not finish in ``timeout_s``; it keeps running.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            with self.session() as s:
                inv = invs.get(session=s, investigation_id=investigation_id)
                if inv.status in TERMINAL_STATUSES:
                    return invs.to_dict(inv)
                phase = inv.phase
            if time.monotonic() > deadline:
                raise TimeoutError(f"{investigation_id} still {phase} after {timeout_s:.0f}s; check `pm worker` runs")
            time.sleep(poll_s)

    def progress_mark(self) -> int:
        """How many progress events this process's workers have committed so far (see :meth:`wait_progress`)."""
        with self._progress_cv:
            return self._progress_count

    def wait_progress(self, mark: int, timeout_s: float) -> int:
        """Block until a worker of this process commits a progress event after ``mark``, or ``timeout_s`` passes.

        Lets an embedded caller (``pm investigate``) read new events as they are committed instead of
        polling the database on a timer. Events committed by workers in other processes do not wake it:
        such a caller reads the database again when the timeout passes.

        Returns:
            The new mark.
        """
        with self._progress_cv:
            self._progress_cv.wait_for(lambda: self._progress_count != mark, timeout=timeout_s)
            return self._progress_count

    def events(self, investigation_id: str, after_seq: int = 0) -> list[dict[str, Any]]:
        """The investigation's progress events after ``after_seq``, as dicts."""
        with self.session() as s:
            return [outbox.event_to_dict(e) for e in outbox.events(session=s, investigation_id=investigation_id,
                                                                   after_seq=after_seq)]

    def close(self) -> None:
        """Release the broker's and the database's connections (and the publishing lanes)."""
        try:
            if self._publish_pool is not None:
                self._publish_pool.shutdown(wait=False)
            self.broker.close()
        finally:
            if self.read_engine is not self.engine:
                self.read_engine.dispose()
            self.engine.dispose()


def _team(settings: Any) -> Any:
    """The LLM agent team when a model is configured (ANTHROPIC_API_KEY / OPENAI_API_KEY), else None."""
    if not getattr(settings, "llm_enabled", False):
        return None
    from agents.team import make_team

    return make_team(settings)


def make_budgets(runtime: Runtime, cost: Any = None) -> Budgets:
    """The runtime's :class:`~pipeline.budgets.Budgets` from :class:`store.config.CostSettings`
    (``cost``; None: the defaults of docs/budgets.md). Notices go to ``runtime.alarm`` (the admins'
    Slack channel when the bot wiring set it)."""
    try:
        policy = BudgetPolicy.from_settings(cost) if cost is not None else BudgetPolicy()
        prices = PriceTable.parse(cost.prices) if cost is not None else PriceTable()
        router = RouterConfig() if cost is None else router_config(
            {"fast": cost.model_fast, "balanced": cost.model_balanced, "deep": cost.model_deep},
            escalate_below=cost.escalate_below, tight_below=cost.tight_below)
    except ValueError as exc:  # PM_BUDGET_DOMAINS, PM_PRICES or the thresholds: the message names it
        raise ConfigError(str(exc)) from None
    return Budgets(session=runtime.session, policy=policy, prices=prices, alarm=lambda: runtime.alarm,
                   on_usage=runtime._progress,
                   usage_event_s=float(cost.usage_event_s) if cost is not None else 5.0, router_config=router)


def build_runtime(
    settings: Any,
    *,
    plan: Mapping[str, PhaseFn] | None = None,
    tools_factory: Callable[[dict[str, Any]], Any] | None = None,
    artifacts: ArtifactStore | None = None,
    namespace: str | None = None,
    redis_options: dict[str, Any] | None = None,
    lease_s: float | None = None,
    max_retries: int = 3,
    min_backoff_ms: int = 1000,
    max_backoff_ms: int = 60_000,
    check_db: bool = True,
    cost: Any = None,
    memory: Any = None,
) -> Runtime:
    """Compose the pipeline from ``settings`` and set its broker as dramatiq's global broker.

    Args:
        settings: a :class:`store.config.Settings`.
        plan: phase → function; default the evidence engine (:func:`pipeline.plan.engine_plan`).
        tools_factory: ``fn(investigation) -> ToolSource``; default the MCP gateway on its world.
        artifacts: default from settings (S3_BUCKET, else PM_HOME/artifacts).
        namespace: Redis key prefix (default PM_QUEUE_NAMESPACE); on RabbitMQ a queue-name prefix.
        redis_options: extra RedisBroker options (heartbeat_timeout, maintenance_chance, ...).
        lease_s: how long a worker's claim on an investigation lasts between renewals (default PM_LEASE_S).
        max_retries: retries of a phase that raised a ToolError before the investigation FAILS.
        check_db: fail fast when the database is unreachable.
        cost: :class:`store.config.CostSettings` (prices, budgets); None: their defaults.
        memory: the knowledge base the plan uses (a :class:`store.knowledge.Memory` or one of its stand-ins,
            e.g. :class:`store.knowledge_proc.RemoteMemory`); None: opened in this process from settings.

    Raises:
        DatabaseUnavailable, BrokerUnavailable: naming the variable to fix.

    Returns:
        The runtime.
    """
    timing = Timing()
    holder: dict[str, Runtime] = {}
    broker = make_broker(
        settings, namespace=namespace, redis_options=redis_options,
        middleware=[CorrelationId(), timing, SessionCleanup(lambda: holder["rt"].close_leftover_sessions()),
                    JobMetrics(lambda: holder["rt"].session(), settings.worker_threads),
                    JobTracing(lambda: holder["rt"].session())],
    )
    dramatiq.set_broker(broker)
    if memory is None:
        memory = memory_from_settings(settings)
    runtime = Runtime(
        settings=settings, broker=broker, artifacts=artifacts or make_artifact_store(settings),
        plan=plan if plan is not None else engine_plan(memory=memory, team=_team(settings),
                                                       notes=lambda domain: holder["rt"].domain_notes(domain)),
        tools_factory=tools_factory if tools_factory is not None else (lambda inv: open_tools(inv, settings)),
        lease_s=lease_s if lease_s is not None else float(getattr(settings, "lease_s", 60.0)),
        max_retries=max_retries, min_backoff_ms=min_backoff_ms, max_backoff_ms=max_backoff_ms,
        timing=timing,
        # Redis keys carry the namespace already; RabbitMQ queues are global, so prefix their names
        queue_prefix=f"{namespace}." if namespace and settings.rabbitmq_url and not settings.redis_url else "",
        cost=cost,
    )
    holder["rt"] = runtime
    runtime.memory = memory
    if check_db:
        check_reachable(runtime.engine)
    return runtime
