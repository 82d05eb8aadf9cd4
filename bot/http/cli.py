"""`pm serve` (the webhook listener under uvicorn) and `pm schedule run <job>`."""

from __future__ import annotations

import argparse
import json
import logging
import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any

from commands.schedule_names import JOBS

if TYPE_CHECKING:  # `pm --help` must not import pydantic or SQLAlchemy (item 9 of #13)
    from store.config import Settings

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    serve = sub.add_parser("serve", help="run the webhook listener (Jira, PagerDuty, Grafana, Alertmanager, deploy)")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=None, help="default PORT (8080)")
    serve.add_argument("--worker", choices=("auto", "yes", "no"), default="auto",
                       help="run a worker in this process (auto: only with the embedded in-process queue)")
    serve.add_argument("--schedules", choices=("auto", "yes", "no"), default="auto",
                       help="run the scheduled jobs in this process (auto: only in the embedded mode)")
    serve.set_defaults(func=run_serve)

    sched = sub.add_parser("schedule", help="scheduled jobs (for Kubernetes CronJobs)")
    sched_sub = sched.add_subparsers(dest="action", metavar="ACTION", required=True)
    run = sched_sub.add_parser("run", help="run one scheduled job now")
    run.add_argument("job", choices=JOBS)
    run.add_argument("--at", default=None, help="ISO-8601 time to treat as now (sandbox worlds live in the past)")
    run.set_defaults(func=run_schedule)


def _parse_at(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SystemExit(f"--at {value!r} is not an ISO-8601 time; use e.g. 2026-10-02T17:00:00Z") from None


def run_schedule(args: argparse.Namespace, settings: Settings) -> int:
    from bot.http.jobs import run_job
    from bot.http.settings import load_http_settings
    from pipeline import logs, tracing
    from pipeline.runtime import build_runtime
    from store.config import load_cost_settings
    from store.db import upgrade_on_start

    http = load_http_settings()
    if settings.log_format == "json":
        logs.configure(settings, json_logs=True)
    tracing.setup(settings)
    upgrade_on_start(settings)
    runtime = build_runtime(settings, cost=load_cost_settings())
    try:
        summary = run_job(args.job, settings=settings, http=http, runtime=runtime, now=_parse_at(args.at))
    finally:
        runtime.close()
    print(json.dumps({"job": args.job, **summary}, indent=2, default=str))
    return 1 if summary.get("status") == "failed" else 0


def run_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from bot.http.app import create_app
    from bot.http.jobs import run_job
    from bot.http.scheduler import Scheduler
    from bot.http.server import freeze_startup_objects
    from bot.http.settings import load_http_settings
    from bot.http.wiring import configure_runtime
    from pipeline import logs, tracing
    from pipeline.broker import is_in_process
    from pipeline.runtime import build_runtime
    from store.config import load_cost_settings
    from store.db import upgrade_on_start

    http = load_http_settings()
    if settings.log_format == "json":
        logs.configure(settings, json_logs=True)
    tracing.setup(settings)
    upgrade_on_start(settings)
    runtime = build_runtime(settings, cost=load_cost_settings())
    configure_runtime(runtime, settings, http)
    embedded = is_in_process(runtime.broker)
    app = create_app(settings, runtime, http)
    worker = runtime.start_worker() if args.worker == "yes" or (args.worker == "auto" and embedded) else None
    scheduler = None
    if args.schedules == "yes" or (args.schedules == "auto" and embedded):
        lock = threading.Lock()  # one job at a time: they share the runtime

        def job(name: str) -> object:
            with lock:
                return run_job(name, settings=settings, http=http, runtime=runtime)

        scheduler = Scheduler(job).start()
    freeze_startup_objects()  # full GC collections stop walking the built app (bot/http/server.py)
    try:
        # with JSON logs uvicorn's loggers propagate to our root handler instead of printing their own way
        log_config: Any = None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG
        uvicorn.run(app, host=args.host, port=args.port or settings.port, log_level=settings.log_level.lower(),
                    log_config=log_config)
    finally:
        if scheduler is not None:
            scheduler.stop()
        if worker is not None:
            worker.stop()
        runtime.close()
    return 0
