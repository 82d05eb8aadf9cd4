"""The message broker: Redis, RabbitMQ, or a real in-process queue for the embedded mode."""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq.brokers.stub import StubBroker, _StubConsumer
from dramatiq.middleware import CurrentMessage

from pipeline.errors import BrokerUnavailable


class _InProcessConsumer(_StubConsumer):
    """The stub consumer plus ``requeue``, so a stopping worker hands its prefetched messages back."""

    def requeue(self, messages) -> None:  # noqa: ANN001 - iterable of MessageProxy
        for message in messages:
            self.queue.put(message._message.encode())
            self.queue.task_done()
            self.prefetch_semaphore.release()


class InProcessBroker(StubBroker):
    """An in-memory broker that really delivers, acks, retries (delay queues) and requeues.

    Used for the embedded mode: the worker runs as threads of the same process. Messages do not
    survive the process; :func:`pipeline.recovery.requeue_stale` rebuilds them from the database.
    """

    def __init__(self, middleware: list | None = None) -> None:
        super().__init__(middleware, fail_fast_default=False)

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 100) -> _InProcessConsumer:
        consumer = super().consume(queue_name, prefetch, timeout)
        return _InProcessConsumer(consumer.queue, consumer.dead_letters, prefetch, timeout)  # type: ignore[attr-defined]


def _check_redis(broker: Any, url: str) -> None:
    import redis

    try:
        broker.client.ping()
    except redis.RedisError as exc:
        raise BrokerUnavailable(
            f"cannot reach Redis at REDIS_URL={_hide_password(url)} ({exc}); start Redis or unset REDIS_URL "
            "for the embedded queue"
        ) from None


def _check_rabbitmq(url: str) -> None:
    import pika

    try:
        pika.BlockingConnection(pika.URLParameters(url)).close()
    except Exception as exc:  # pika raises many AMQP/socket error types
        raise BrokerUnavailable(
            f"cannot reach RabbitMQ at RABBITMQ_URL={_hide_password(url)} ({type(exc).__name__}); "
            "start RabbitMQ, fix the URL, or unset RABBITMQ_URL"
        ) from None


def _hide_password(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return url


def make_broker(
    settings: Any,
    *,
    namespace: str | None = None,
    middleware: list | None = None,
    redis_options: dict[str, Any] | None = None,
) -> dramatiq.Broker:
    """The broker the settings ask for, checked reachable, with our middleware added.

    Args:
        settings: a :class:`store.config.Settings` (REDIS_URL, then RABBITMQ_URL, else in-process).
        namespace: Redis key prefix (tests use a unique one); RabbitMQ/in-process ignore it.
        middleware: extra dramatiq middleware (timing, correlation ids, session cleanup).
        redis_options: extra RedisBroker options, e.g. ``heartbeat_timeout`` (ms) for fast redelivery.

    Raises:
        BrokerUnavailable: naming REDIS_URL / RABBITMQ_URL and what to do.

    Returns:
        The broker (not yet set as dramatiq's global broker).
    """
    if settings.redis_url:
        from dramatiq.brokers.redis import RedisBroker

        broker: dramatiq.Broker = RedisBroker(
            url=settings.redis_url, namespace=namespace or getattr(settings, "queue_namespace", "pm"), **(redis_options or {})
        )
        _check_redis(broker, settings.redis_url)
    elif settings.rabbitmq_url:
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        _check_rabbitmq(settings.rabbitmq_url)
        broker = RabbitmqBroker(url=settings.rabbitmq_url)
    else:
        broker = InProcessBroker()
    broker.add_middleware(CurrentMessage())
    for mw in middleware or []:
        broker.add_middleware(mw)
    return broker


def is_in_process(broker: dramatiq.Broker) -> bool:
    """Whether messages live only in this process (so a restart must rebuild them)."""
    return isinstance(broker, StubBroker)
