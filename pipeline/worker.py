"""``pm worker`` / ``python -m pipeline.worker``: run the dramatiq worker until SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from typing import Any

from pipeline import metrics
from pipeline import phases as P
from pipeline.plan import engine_plan, with_delay
from pipeline.runtime import Runtime, build_runtime

log = logging.getLogger(__name__)


def _test_knobs(environ: dict[str, str]) -> dict[str, Any]:
    """Test-only knobs (read here, in the composition root, never elsewhere).

    PM_TEST_PHASE_DELAY_S="EVIDENCE=5" slows one phase (crash tests kill the worker inside it);
    PM_REDIS_NAMESPACE isolates a test's Redis keys; PM_REDIS_HEARTBEAT_MS makes Redis hand a
    dead worker's messages to another worker quickly; PM_LEASE_S shortens the run lease.
    """
    knobs: dict[str, Any] = {}
    delay = environ.get("PM_TEST_PHASE_DELAY_S")
    if delay:
        phase, _, seconds = delay.partition("=")
        if phase not in P.PLANNED_PHASES or not seconds:
            raise SystemExit(f"PM_TEST_PHASE_DELAY_S={delay!r}: use PHASE=SECONDS, e.g. EVIDENCE=5")
        knobs["plan"] = with_delay(engine_plan(), phase, float(seconds))
    if environ.get("PM_REDIS_NAMESPACE"):
        knobs["namespace"] = environ["PM_REDIS_NAMESPACE"]
    if environ.get("PM_REDIS_HEARTBEAT_MS"):
        # maintenance on every fetch so the dead worker's messages come back right after the timeout
        knobs["redis_options"] = {"heartbeat_timeout": int(environ["PM_REDIS_HEARTBEAT_MS"]),
                                  "maintenance_chance": 1_000_000}
    if environ.get("PM_LEASE_S"):
        knobs["lease_s"] = float(environ["PM_LEASE_S"])
    return knobs


def run_worker(settings: Any, *, configure: Callable[[Runtime], None] | None = None,
               threads: int | None = None, environ: dict[str, str] | None = None) -> int:
    """Run a worker in this process until SIGTERM or SIGINT, then stop cleanly.

    Args:
        settings: a :class:`store.config.Settings`.
        configure: called with the runtime before the worker starts (e.g. to register publishers).
        threads: worker threads (default PM_WORKER_THREADS).

    Returns:
        The process exit code (0).
    """
    knobs = _test_knobs(dict(environ if environ is not None else os.environ))
    from store.config import load_cost_settings

    runtime = build_runtime(settings, cost=load_cost_settings(), **knobs)
    if configure is not None:
        configure(runtime)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    metrics_server = metrics.serve(settings.metrics_port) if getattr(settings, "metrics_port", None) else None
    handle = runtime.start_worker(threads)
    log.info("worker started (%s)", type(runtime.broker).__name__)
    try:
        stop.wait()
    finally:
        log.info("worker stopping")
        handle.stop()
        runtime.close()
        if metrics_server is not None:
            metrics_server.shutdown()
        metrics.process_exited()
    return 0


def main() -> int:
    """Entry point of ``python -m pipeline.worker``."""
    from pipeline import logs, tracing
    from store.config import load_settings

    settings = load_settings()
    logs.configure(settings, json_logs=settings.log_format == "json")
    tracing.setup(settings)
    return run_worker(settings)


if __name__ == "__main__":
    raise SystemExit(main())
