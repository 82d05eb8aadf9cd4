"""Run the live drill: ``python -m drill.run [FAULT|all] [--json]`` (``bash scripts/drill.sh`` wraps it).

Per fault, on a fresh stack (drill/stack.py): start the shop, its customers, Prometheus,
Alertmanager and ``pm serve``; warm up (the decoys' harmless changes fall in it); inject the fault;
wait for Prometheus's alert to reach ``pm serve`` (its first investigation) and for that
investigation's report; stop everything. Prints, per fault, the culprit the report named against
the truth, the verdict, the confidence, seconds from the fault to the alert reaching ``pm serve``
and from there to the report (and to the first Slack thread message with ``--slack``); with
``--json`` one JSON object per fault run per line.

Nothing in the evidence engine knows about this shop: the drill only reads what ``pm serve`` wrote.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from drill.faults import FAULTS, Fault
from drill.stack import Stack

#: `all` runs the faults in this order.
ORDER = ("bad-deploy", "flag-flip", "config-change", "third-party", "capacity", "decoys")
DONE = ("COMPLETE", "FAILED", "CANCELLED")


def _seconds(a: str | None, b: str | None) -> float | None:
    if not a or not b:
        return None
    return round((datetime.fromisoformat(b.replace("Z", "+00:00"))
                  - datetime.fromisoformat(a.replace("Z", "+00:00"))).total_seconds(), 1)


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _iso_of(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).astimezone().isoformat()


class Reports:
    """Read-only view of ``pm serve``'s investigations (its SQLite database)."""

    def __init__(self, home: Path) -> None:
        from store.db import make_engine, make_session_factory

        self.engine = make_engine(f"sqlite:///{home / 'pm.sqlite3'}")
        self.session = make_session_factory(self.engine)

    def all(self) -> list[dict[str, Any]]:
        from sqlalchemy import select
        from sqlalchemy.exc import SQLAlchemyError

        from store.investigations import to_dict
        from store.models import Investigation

        try:
            with self.session() as s:
                rows = s.execute(select(Investigation).order_by(Investigation.created_at)).scalars()
                return [to_dict(inv) for inv in rows]
        except SQLAlchemyError:
            return []  # pm serve is still migrating, or the file is busy: ask again

    def close(self) -> None:
        self.engine.dispose()


def _wait(predicate: Any, timeout_s: float, what: str, stack: Stack) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        dead = [c.name for c in stack.children.values() if not c.alive()]
        if dead:
            raise RuntimeError(f"{', '.join(dead)} exited while waiting for {what}")
        time.sleep(0.25)
    raise TimeoutError(f"no {what} within {timeout_s:.0f}s")


def run_fault(fault: Fault, *, root: Path, warmup_s: float, alert_timeout_s: float, report_timeout_s: float,
              keep: bool, slack: Any = None, say: Any = print) -> dict[str, Any]:
    """Run ``fault`` once on a fresh stack under ``root``; returns its result row (see the module doc)."""
    work = Path(tempfile.mkdtemp(prefix=f"{fault.name}-", dir=root))
    stack = Stack(work, slack_url=slack.url if slack is not None else None)
    row: dict[str, Any] = {"fault": fault.name, "truth": {"service": fault.service, "change": None},
                           "culprit": None, "right": False, "verdict": None, "confidence": None,
                           "fault_to_alert_s": None, "alert_to_report_s": None}
    reports: Reports | None = None
    began = time.monotonic()
    try:
        stack.start()
        reports = Reports(stack.pm_home)
        say(f"[{fault.name}] Alertmanager, Prometheus, pm serve and the shop up in {time.monotonic() - began:.1f}s; "
            f"{warmup_s:.0f}s of normal traffic before the fault")
        inject_at = time.monotonic() + warmup_s
        decoys = []
        for decoy in sorted(fault.decoys, key=lambda d: -d.before_s):
            time.sleep(max(0.0, inject_at - decoy.before_s - time.monotonic()))
            decoys.append(decoy.apply(stack))
        time.sleep(max(0.0, inject_at - time.monotonic()))
        fault_at = time.time()
        change = fault.inject(stack)
        row["truth"]["change"] = change
        row["decoys"] = decoys
        say(f"[{fault.name}] fault injected at {_iso_of(fault_at)}: {fault.summary}"
            + (f" (change {change})" if change else ""))
        first = _wait(lambda: next((i for i in reports.all() if _epoch(i["created_at"]) >= fault_at), None),
                      alert_timeout_s, "alert reaching pm serve", stack)
        row["fault_to_alert_s"] = round(_epoch(first["created_at"]) - fault_at, 1)
        # Alerts that reached pm serve before the fault are false alarms of the warm-up (a loaded
        # machine slows the shop): said, not scored.
        row["false_alarms"] = [{"alert_service": i["trigger"].get("service"),
                                "before_fault_s": round(fault_at - _epoch(i["created_at"]), 1)}
                               for i in reports.all() if _epoch(i["created_at"]) < fault_at]
        row["alert"] = {"id": first["trigger"].get("alert"), "service": first["trigger"].get("service")}
        say(f"[{fault.name}] alert {row['alert']['id']} ({row['alert']['service']}) reached pm serve "
            f"{row['fault_to_alert_s']}s after the fault; investigating")
        inv = _wait(lambda: next((i for i in reports.all() if i["id"] == first["id"] and i["status"] in DONE), None),
                    report_timeout_s, "report", stack)
        cause = inv.get("root_cause") or {}
        row.update(
            investigation=inv["id"], status=inv["status"], verdict=inv["verdict"], confidence=inv["confidence"],
            culprit={"service": cause.get("service"), "change": cause.get("change_id")},
            alert_to_report_s=_seconds(inv["created_at"], inv["finished_at"]), summary=cause.get("summary"),
        )
        row["right"] = row["culprit"] == row["truth"]
        # What the engine saw: the top hypothesis's evidence and the runner-up, to say why when wrong.
        hypotheses = inv.get("hypotheses") or []
        if hypotheses:
            row["evidence"] = [e.get("summary") for e in hypotheses[0].get("evidence") or []][:6]
            row["counter_evidence"] = [e.get("summary") for e in hypotheses[0].get("counter_evidence") or []][:4]
        if len(hypotheses) > 1:
            row["runner_up"] = {"statement": hypotheses[1].get("statement"),
                                "confidence": hypotheses[1].get("confidence")}
        if slack is not None:
            row["alert_to_slack_s"] = slack.first_message_after(inv["created_at"])
        others = [i for i in reports.all() if i["id"] != inv["id"] and _epoch(i["created_at"]) >= fault_at]
        row["other_investigations"] = [
            {"alert_service": i["trigger"].get("service"), "status": i["status"],
             "culprit": {"service": (i.get("root_cause") or {}).get("service"),
                         "change": (i.get("root_cause") or {}).get("change_id")}} for i in others]
    except (RuntimeError, TimeoutError, OSError, httpx.HTTPError) as exc:
        # One line in the row; everything is stopped below and the next fault still runs.
        row["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        if reports is not None:
            reports.close()
        stack.stop()
        row["pids"] = list(stack.pids)
        row["wall_s"] = round(time.monotonic() - began, 1)
        if keep:
            row["work"] = str(work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return row


def _who(culprit: dict[str, Any] | None) -> str:
    if not culprit or not culprit.get("service"):
        return "nothing"
    return f"{culprit['service']} / {culprit.get('change') or 'no change of ours'}"


def line(row: dict[str, Any]) -> str:
    """One human line per fault run."""
    if row.get("error"):
        return f"{row['fault']:<14} ERROR {row['error']}"
    mark = "RIGHT" if row["right"] else "WRONG"
    slack = f"  alert->slack {row['alert_to_slack_s']}s" if row.get("alert_to_slack_s") is not None else ""
    return (f"{row['fault']:<14} {mark}  named {_who(row['culprit'])}  truth {_who(row['truth'])}  "
            f"{row['verdict']} {row['confidence']}  fault->alert {row['fault_to_alert_s']}s  "
            f"alert->report {row['alert_to_report_s']}s{slack}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bash scripts/drill.sh",
        description="The live drill: a real shop on loopback breaks, Prometheus alerts, pm serve names the culprit.")
    parser.add_argument("fault", nargs="?", default="all", help=f"one of {', '.join(ORDER)}, or all (default)")
    parser.add_argument("--json", action="store_true", help="one JSON object per fault run on stdout")
    parser.add_argument("--runs", type=int, default=1, help="run each fault this many times")
    parser.add_argument("--warmup", type=float, default=55.0, help="seconds of normal traffic before the fault")
    parser.add_argument("--slack", action="store_true",
                        help="run the stand-in Slack and time the alert to the first thread message")
    parser.add_argument("--keep", action="store_true", help="keep each run's directory (logs, configs, databases)")
    args = parser.parse_args(argv)
    if args.fault != "all" and args.fault not in FAULTS:
        parser.error(f"unknown fault {args.fault!r}; use one of {', '.join(ORDER)} or all")
    if args.runs < 1 or args.warmup < 20:
        parser.error("--runs must be at least 1 and --warmup at least 20 (seconds)")
    names = list(ORDER) if args.fault == "all" else [args.fault]

    def stop(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    progress = (lambda text: print(text, file=sys.stderr, flush=True)) if args.json else print
    root = Path(tempfile.mkdtemp(prefix="pm-drill-"))
    slack = None
    rows: list[dict[str, Any]] = []
    started = time.monotonic()
    try:
        if args.slack:
            from drill.slack import StandInSlack

            slack = StandInSlack().start()
        for _ in range(args.runs):
            for name in names:
                row = run_fault(FAULTS[name], root=root, warmup_s=args.warmup, alert_timeout_s=150,
                                report_timeout_s=180, keep=args.keep, slack=slack, say=progress)
                rows.append(row)
                row.pop("pids", None)
                if args.json:
                    print(json.dumps(row), flush=True)
                else:
                    print(line(row), flush=True)
    except KeyboardInterrupt:
        progress("interrupted; everything the drill started is stopped")
        return 130
    finally:
        if slack is not None:
            slack.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    right = sum(1 for r in rows if r.get("right"))
    progress(f"{right} of {len(rows)} right in {time.monotonic() - started:.0f}s"
             + (f" (runs kept under {root})" if args.keep else ""))
    return 0 if right == len(rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
