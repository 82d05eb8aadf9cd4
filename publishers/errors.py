"""Errors a publisher raises to the outbox drain (pipeline.publishing)."""

from __future__ import annotations


class RetryLater(Exception):
    """The sink asks to come back later (HTTP 429 Retry-After, a 5xx); deliver again after ``retry_after_s``."""

    def __init__(self, retry_after_s: float, reason: str = "rate limited") -> None:
        super().__init__(f"{reason}; retry in {float(retry_after_s):.1f}s")
        self.retry_after_s = float(retry_after_s)


class Permanent(Exception):
    """The sink answered that this delivery can never succeed (e.g. Jira's 404 for a ticket that does
    not exist): the outbox records it as given up at once, without retries or a dead-letter alarm."""
