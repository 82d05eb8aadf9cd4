"""The delayed post-deploy health check as a Dramatiq actor on the runtime's broker.

The check itself (compare metrics, maybe start an investigation) belongs to ``commands``, which
the pipeline may not import; so ``commands.deploy_check.register`` hands its handler in here and
this module only declares the actor and sends the delayed message (the deploy dict, no objects
beyond JSON).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dramatiq

from pipeline.errors import PipelineError

ACTOR_NAME = "deploy_health_check"
QUEUE = "deploy_checks"


def declare(runtime: Any, handler: Callable[[dict[str, Any]], Any], *, max_retries: int = 3) -> dramatiq.Actor:
    """Declare the check actor on ``runtime.broker`` (once; later calls return the same actor).

    Declare it before ``runtime.start_worker()`` so the worker consumes its queue.

    Args:
        runtime: the pipeline runtime.
        handler: ``fn(deploy) -> result`` run when the delay has passed.
        max_retries: retries when the handler raises (e.g. the metrics tool is down).
    """
    if ACTOR_NAME in runtime.broker.actors:
        return runtime.broker.get_actor(ACTOR_NAME)

    def deploy_health_check(deploy: dict[str, Any]) -> None:
        handler(deploy)

    return dramatiq.actor(
        broker=runtime.broker, actor_name=ACTOR_NAME, queue_name=QUEUE,
        max_retries=max_retries, min_backoff=5_000, max_backoff=300_000,
    )(deploy_health_check)


def enqueue_check(runtime: Any, deploy: dict[str, Any], *, delay_ms: int) -> None:
    """Send the check of ``deploy`` to run after ``delay_ms``.

    Raises:
        PipelineError: the actor was not declared in this process.
    """
    if ACTOR_NAME not in runtime.broker.actors:
        raise PipelineError(
            "the deploy health check is not set up in this process; build the listener with "
            "bot.http.create_app (it calls commands.deploy_check.register)"
        )
    runtime.broker.get_actor(ACTOR_NAME).send_with_options(args=(deploy,), delay=delay_ms or None)
