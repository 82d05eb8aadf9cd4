"""What the budget gates cost: the start gate (check_start) and the per-call charge, with a month of
agent runs already in the database.

Every model call of an agent goes through ``before_call`` and ``charge`` (which adds to the month's
spend ledger and re-reads the global and the domain row to find threshold crossings), and every new
investigation through the start gate. For reference it also times the report path, the month's
agent runs summed for one domain (what the gates would cost without the ledger). This seeds ``--investigations`` investigations over ``--domains`` domains with
``--runs`` agent runs each (started this month), then times each operation ``--repeat`` times and
prints p50 / p95 in milliseconds, and the ratio to a plain ``SELECT 1`` round trip on the same
database (compare ratios, not absolute times: the machine is shared).

Usage:
    .venv/bin/python bench/budgets.py [--investigations 2000] [--runs 10] [--repeat 200]
    DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/<empty db> .venv/bin/python bench/budgets.py
(SQLite under a temporary directory when DATABASE_URL is unset.)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert, text  # noqa: E402

from agents.pricing import PriceTable, Usage  # noqa: E402
from pipeline import budgets  # noqa: E402
from store import budgets as spend  # noqa: E402
from store.db import make_engine, make_session_factory, upgrade  # noqa: E402
from store.models import AgentRun, Investigation, utcnow  # noqa: E402


def _timed(fn, repeat: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--investigations", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=10, help="agent runs per investigation")
    ap.add_argument("--domains", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=200)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="pm-bench-budgets-")
    url = os.environ.get("DATABASE_URL") or f"sqlite:///{tmp}/pm.sqlite3"
    upgrade(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    now = utcnow()
    with factory() as s:
        invs = [{"id": f"inv-bench-{i}", "trigger": {"text": "x"}, "origin": {}, "sources": {}, "mode": "balanced",
                 "domain": f"d{i % args.domains}", "priority": "P2", "status": "COMPLETE", "phase": "COMPLETE",
                 "round": 0, "created_at": now, "updated_at": now, "tokens_in": 0, "tokens_out": 0,
                 "cost_usd": 0.0, "lease_token": 0, "requeue_count": 0, "cancel_requested": False}
                for i in range(args.investigations)]
        s.execute(insert(Investigation), invs)
        runs = [{"investigation_id": f"inv-bench-{i}", "agent": "hypotheses", "phase": "HYPOTHESES",
                 "model": "claude-sonnet-4-6", "status": "done", "tokens_in": 1000, "tokens_out": 100,
                 "cache_read_tokens": 0, "cache_write_tokens": 0, "cost_usd": 0.001, "tool_calls": [],
                 "started_at": now} for i in range(args.investigations) for _ in range(args.runs)]
        for k in range(0, len(runs), 5000):
            s.execute(insert(AgentRun), runs[k:k + 5000])
        for d in range(args.domains):  # the ledger the same runs would have written when charged
            n = sum(1 for i in range(args.investigations) if i % args.domains == d)
            spend.add_spend(session=s, domain=f"d{d}", usd=0.001 * args.runs * n, at=now)
        s.commit()
    policy, prices = budgets.BudgetPolicy(), PriceTable()
    target = "inv-bench-0"

    def ping() -> None:
        with factory() as s:
            s.execute(text("SELECT 1"))

    def gate() -> None:
        with factory() as s:
            budgets.check_start(session=s, policy=policy, domain="d0", priority="P2")

    def call() -> None:
        with factory() as s:
            budgets.before_call(session=s, policy=policy, investigation_id=target)
            budgets.charge(session=s, policy=policy, prices=prices, investigation_id=target, agent="verifier",
                           phase="VERIFICATION", model="claude-sonnet-4-6", usage=Usage(input=100, output=10))
            s.commit()

    def summed() -> None:  # the report path: the month's agent runs summed for one domain
        with factory() as s:
            spend.month_spend(session=s, month=spend.month_of(now), domain="d0")

    base = _timed(ping, args.repeat)
    m = _timed(summed, args.repeat)
    g = _timed(gate, args.repeat)
    c = _timed(call, args.repeat)
    backend = engine.dialect.name
    print(f"budgets bench on {backend}: {args.investigations} investigations × {args.runs} agent runs this month "
          f"({args.investigations * args.runs} rows), {args.domains} domains, {args.repeat} repeats")
    print(f"  SELECT 1 round trip        p50 {base[0]:7.2f} ms  p95 {base[1]:7.2f} ms")
    print(f"  month_spend over agent runs p50 {m[0]:7.2f} ms  p95 {m[1]:7.2f} ms  ({m[0] / base[0]:.1f}× SELECT 1)"
          "  (reports only; the gates read the ledger)")
    print(f"  start gate (check_start)   p50 {g[0]:7.2f} ms  p95 {g[1]:7.2f} ms  ({g[0] / base[0]:.1f}× SELECT 1)")
    print(f"  before_call + charge       p50 {c[0]:7.2f} ms  p95 {c[1]:7.2f} ms  ({c[0] / base[0]:.1f}× SELECT 1)")
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
