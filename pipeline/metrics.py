"""Counters of the durability machinery (Prometheus client, ``pm_`` prefix).

They live in the process's default registry; no endpoint serves them yet (README: "Prometheus
metrics endpoint — not yet"), so for now they are read by tests and shown by nothing else. Each
event they count is also logged.
"""

from __future__ import annotations

from prometheus_client import Counter

FENCED_WRITES = Counter(
    "pm_fenced_writes_total", "Writes refused because the run no longer held the investigation's lease")
LEASES_LOST = Counter("pm_leases_lost_total", "Runs stopped because their lease was lost")
REQUEUED = Counter("pm_reconciler_requeued_total", "Investigations the reconciler re-enqueued")
OUTBOX_CLAIMS_LOST = Counter(
    "pm_outbox_claims_lost_total", "Outbox deliveries a drainer found claimed by another drainer")
OUTBOX_DEAD = Counter("pm_outbox_dead_letters_total", "Outbox deliveries moved to the dead-letter state", ["sink"])
