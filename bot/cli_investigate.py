"""`pm investigate` and `pm investigations list|show`."""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from commands.requests import MODES, InvestigationRequest, Origin

if TYPE_CHECKING:  # imported where used, so `pm --help` stays fast (item 9 of #13)
    from bot.progress import ProgressView
    from store.config import Settings

#: How often the in-process worker's idle threads look up from their queues: stopping it once the
#: report is in waits up to two of these (200 ms each cost ~0.4 s at the end of every run).
WORKER_POLL_MS = 40

#: With an in-process worker every committed event wakes the follower at once; this is only the
#: backstop (events written by another process, a failure that woke nobody).
RECHECK_S = 1.0

TERMINAL_EVENTS = ("report", "failed", "cancelled")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("investigate", help="investigate an incident (a bundled world offline, or real sources) "
                       "and print the report")
    p.add_argument("--world", type=Path, help="an incident world directory (see docs/worlds.md)")
    p.add_argument("--sources", type=Path, help="a sources.yaml of real systems (docs/sources.md); default PM_SOURCES")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--text", help="with --sources: what is wrong, in words")
    what.add_argument("--ticket", help="with --sources: a ticket key (from the tickets: source)")
    what.add_argument("--alert", help="with --sources: an alert id (from the alerts: source)")
    p.add_argument("--at", help="with --sources: when it happened (ISO-8601, e.g. 2026-12-06T08:10:00Z); default "
                   "the ticket's or alert's time, else now")
    p.add_argument("--start", help="with --sources: the window to read starts here (ISO-8601)")
    p.add_argument("--end", help="with --sources: the window to read ends here (ISO-8601); both or neither")
    p.add_argument("--domain", help="with --sources: the owning domain (free text)")
    p.add_argument("--mode", choices=MODES, default="balanced")
    p.add_argument("--json", action="store_true", help="print only the report JSON on stdout")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the report")
    p.add_argument(
        "--no-worker",
        action="store_true",
        help="only enqueue; a separate `pm worker` runs it (needs REDIS_URL or RABBITMQ_URL)",
    )
    p.set_defaults(func=run_investigate, fast_exit=True)

    inv = sub.add_parser("investigations", help="list or show recorded investigations")
    inv_sub = inv.add_subparsers(dest="action", metavar="ACTION", required=True)
    lp = inv_sub.add_parser("list", help="the most recent investigations")
    lp.add_argument("--limit", type=int, default=20)
    lp.add_argument("--json", action="store_true")
    lp.set_defaults(func=run_list)
    sp = inv_sub.add_parser("show", help="one investigation, with its report")
    sp.add_argument("investigation_id")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=run_show)


def check_world(world_dir: Path) -> dict[str, Any]:
    """Load the whole world once, so a malformed file fails here, before anything is recorded.

    Raises:
        WorldError: a file is malformed, or the trigger names a ticket/alert the world does not hold.
    """
    from sandbox.errors import WorldError
    from sandbox.servers import shared_tools

    world = shared_tools(world_dir).world  # the in-process sandbox servers reuse this load
    trigger = world.trigger
    if trigger.get("ticket") and trigger["ticket"] not in {t.get("key") for t in world.tickets}:
        raise WorldError(
            f"{world_dir / 'world.yaml'}: trigger ticket {trigger['ticket']!r} is not in tickets.jsonl; "
            "add the ticket or change the trigger"
        )
    if trigger.get("alert") and trigger["alert"] not in {a.get("id") for a in world.alerts}:
        raise WorldError(
            f"{world_dir / 'world.yaml'}: trigger alert {trigger['alert']!r} is not in alerts.jsonl; "
            "add the alert or change the trigger"
        )
    return world.meta()


def _runtime(settings: Settings, memory: Any = None) -> Any:
    from pipeline.runtime import build_runtime
    from store.db import upgrade

    upgrade(settings.effective_database_url)
    from store.config import load_cost_settings

    return build_runtime(settings, cost=load_cost_settings(), memory=memory)


def _world_request(args: argparse.Namespace) -> tuple[InvestigationRequest, str]:
    world_dir = args.world.resolve()
    meta = check_world(world_dir)  # raises WorldError before anything is written
    gc.freeze()  # see run_investigate: what is loaded now lives to the end and is left out of later passes
    trigger: dict[str, Any] = dict(meta["trigger"])
    trigger["window"] = meta["window"]
    request = InvestigationRequest(
        trigger=trigger,
        origin=Origin(kind="cli", user="cli"),
        mode=args.mode,
        domain=meta.get("domain"),
        sources={"world": str(world_dir)},
        requested_by="cli",
    )
    return request, str(meta["name"])


def _sources_request(args: argparse.Namespace, path: Path) -> tuple[InvestigationRequest, str]:
    from commands.live import live_trigger
    from store.sources_file import load_sources

    sources = load_sources(path)  # raises ConfigError (one line naming the entry) before anything is written
    trigger = live_trigger(text=args.text, ticket=args.ticket, alert=args.alert, at=args.at, start=args.start,
                           end=args.end, lookback_s=sources.lookback_s, lookahead_s=sources.lookahead_s)
    request = InvestigationRequest(
        trigger=trigger,
        origin=Origin(kind="cli", user="cli"),
        mode=args.mode,
        domain=args.domain,
        sources={"sources_file": str(path.resolve())},
        requested_by="cli",
    )
    label = args.ticket or args.alert or (args.text or "")[:40]
    return request, f"{path.name}: {label}"


def run_investigate(args: argparse.Namespace, settings: Settings) -> int:
    """Validate the world or the sources file, record and enqueue the investigation, follow it, print the report."""
    # The imports and a loaded world are millions of objects that live until the process ends; each of
    # the cyclic collector's full passes over them cost 0.05-0.2 s (two or three during the imports and
    # the load, more during the engine). None runs until the world is in (_world_request freezes it all:
    # later passes leave it out; reference counting still frees whatever is dropped).
    collecting = gc.isenabled()
    if args.world and collecting:
        gc.disable()
    # The knowledge base opens in a helper process on the other core while this one loads the world and
    # runs the engine (store/knowledge_proc.py); only an in-process worker uses it here.
    memory = None
    try:
        memory = None if args.no_worker else _knowledge_helper(settings)
        return _investigate(args, settings, memory, resume_gc=collecting)
    finally:
        gc.unfreeze()  # a caller in the same process (tests) gets its collector back as it was
        if collecting:
            gc.enable()
        if memory is not None:
            memory.close()


def _knowledge_helper(settings: Settings) -> Any:
    import logging

    from store import knowledge_proc

    # PM_DEBUG (bot.cli) set the root logger to DEBUG: the helper logs as much
    return knowledge_proc.start(settings, debug=logging.getLogger().isEnabledFor(logging.DEBUG))


def _investigate(args: argparse.Namespace, settings: Settings, memory: Any, *, resume_gc: bool) -> int:
    from bot.progress import ProgressView
    from commands import investigate as investigate_cmd
    from commands.errors import BadRequest
    from publishers.markdown import render_report

    live = any(getattr(args, k) for k in ("text", "ticket", "alert", "at", "start", "end"))
    sources_path = args.sources or (None if args.world else settings.sources_file)
    if args.world and args.sources:
        raise BadRequest("give --world (a recorded incident) or --sources (real systems), not both")
    if args.world:
        if live:
            raise BadRequest("--text/--ticket/--alert/--at/--start/--end go with --sources; a world has its own trigger")
        request, title = _world_request(args)
        if resume_gc:
            gc.enable()
    elif sources_path:
        if not (args.text or args.ticket or args.alert):
            raise BadRequest("say what to investigate: --text \"checkout is failing\", --ticket KEY or --alert ID")
        request, title = _sources_request(args, Path(sources_path))
    else:
        raise BadRequest("nothing to investigate: pass --world DIR (e.g. examples/worlds/demo-deploy) or "
                         "--sources sources.yaml --text \"...\" (docs/sources.md)")
    runtime = _runtime(settings, memory)
    worker = None if args.no_worker else runtime.start_worker(poll_ms=WORKER_POLL_MS)
    try:
        result = investigate_cmd.start(runtime=runtime, request=request)
        view = ProgressView(enabled=not args.json, stream=sys.stderr, title=f"{result.investigation_id} ({title})")
        final = _follow(runtime, result.investigation_id, view, timeout=args.timeout)
    finally:
        if worker is not None:
            worker.stop()
        runtime.close()
    if final["kind"] != "report":
        reason = final["payload"].get("error") or final["kind"]
        print(f"pm: error: investigation {result.investigation_id} {final['kind']}: {reason}", file=sys.stderr)
        return 1
    report = final["payload"]["report"]
    if args.json:
        sys.stdout.write(json.dumps(report, indent=2, sort_keys=False) + "\n")
    else:
        sys.stdout.write(render_report(report, investigation_id=result.investigation_id) + "\n")
    return 0


def _follow(runtime: Any, investigation_id: str, view: ProgressView, *, timeout: float) -> dict[str, Any]:
    """Read the progress events as the worker commits them, until a terminal one; feed the view.

    An in-process worker wakes this thread after each event it commits (``Runtime.wait_progress``), so
    nothing sleeps on a timer; with ``--no-worker`` the events come from another process and are read
    every RECHECK_S.
    """
    from store import outbox

    after = 0
    deadline = time.monotonic() + timeout
    mark = runtime.progress_mark()
    with view:
        while True:
            with runtime.session() as session:
                events: list[dict[str, Any]] = [
                    {"seq": int(e.seq), "kind": str(e.kind), "payload": dict(e.payload or {})}
                    for e in outbox.events(session=session, investigation_id=investigation_id, after_seq=after)
                ]
            for event in events:
                after = event["seq"]
                view.update(event)
                if event["kind"] in TERMINAL_EVENTS:
                    return event
            left = deadline - time.monotonic()
            if left <= 0:
                return {"kind": "failed", "payload": {"error": f"no report within {timeout:.0f} s (still running)"}}
            mark = runtime.wait_progress(mark, min(RECHECK_S, left))


def run_list(args: argparse.Namespace, settings: Settings) -> int:
    from store import investigations

    runtime = _runtime(settings)
    with runtime.session() as session:
        rows = [investigations.to_dict(i) for i in investigations.list_recent(session=session, limit=args.limit)]
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    if not rows:
        print("no investigations yet; start one with `pm investigate --world DIR`")
        return 0
    for r in rows:
        print(f"{r['id']:<48} {r['status']:<10} {str(r.get('phase') or ''):<18} "
              f"{str(r.get('verdict') or ''):<13} {r.get('confidence') if r.get('confidence') is not None else ''}")
    return 0


def run_show(args: argparse.Namespace, settings: Settings) -> int:
    from commands import investigate as investigate_cmd
    from publishers.markdown import render_report

    runtime = _runtime(settings)
    row = investigate_cmd.status(runtime=runtime, investigation_id=args.investigation_id)
    if args.json:
        print(json.dumps(row, indent=2, default=str))
        return 0
    print(f"{row['id']}  status={row['status']} phase={row.get('phase')} mode={row.get('mode')}")
    if row.get("report"):
        print(render_report(row["report"], investigation_id=row["id"]))
    elif row.get("error"):
        print(f"error: {row['error']}")
    return 0
