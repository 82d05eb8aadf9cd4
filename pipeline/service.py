"""The pipeline's front door for commands/: enqueue an investigation."""

from __future__ import annotations

from typing import Any


def enqueue(investigation_id: str, *, runtime: Any, priority: str = "P2") -> None:
    """Send ``investigation_id`` to the queue of its priority (P1 fast, P2 normal, P3 background)."""
    runtime.enqueue(investigation_id, priority=priority)
