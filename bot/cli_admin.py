"""Operator subcommands: `pm worker`, `pm db upgrade`, `pm outbox list|retry`, `pm deliveries list|retry`,
`pm sandbox serve`,
`pm worlds generate|replay`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # `pm --help` must not import pydantic (item 9 of #13)
    from store.config import Settings

T = TypeVar("T")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    w = sub.add_parser("worker", help="run a Dramatiq worker for investigations (blocks)")
    w.set_defaults(func=run_worker)

    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="action", metavar="ACTION", required=True)
    up = db_sub.add_parser("upgrade", help="apply every migration (SQLite or PostgreSQL)")
    up.set_defaults(func=run_db_upgrade)

    ob = sub.add_parser("outbox", help="progress deliveries to Slack/Jira that were dead-lettered")
    ob_sub = ob.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, helptext, func in (
        ("list", "show dead-lettered deliveries (failed for hours; see docs/reliability.md)", run_outbox_list),
        ("retry", "send dead-lettered deliveries again (a running worker delivers them)", run_outbox_retry),
    ):
        cmd = ob_sub.add_parser(name, help=helptext)
        cmd.add_argument("--investigation", default=None, help="only this investigation's deliveries")
        cmd.add_argument("--sink", default=None, help="only this sink's deliveries (slack, jira)")
        if name == "list":
            cmd.add_argument("--json", action="store_true", help="print JSON")
        cmd.set_defaults(func=func)

    bu = sub.add_parser("budgets", help="monthly LLM budgets: see them, approve spending past them")
    bu_sub = bu.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = bu_sub.add_parser("show", help="this month's spend against the global and per-domain budgets")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=run_budgets_show)
    ap = bu_sub.add_parser("approve", help="let new investigations start past a spent budget (this month)")
    ap.add_argument("scope", choices=("global", "domain"))
    ap.add_argument("domain", nargs="?", default=None, help="the domain (with scope domain)")
    ap.add_argument("--usd", type=float, default=None,
                    help="approve this many more dollars (default: lift the stop for the rest of the month)")
    ap.add_argument("--note", default=None, help="why (kept with the approval)")
    ap.add_argument("--by", default=None, help="who approves (default: $USER)")
    ap.set_defaults(func=run_budgets_approve)

    dl = sub.add_parser("deliveries", help="webhook deliveries whose processing kept failing (dead-lettered)")
    dl_sub = dl.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, helptext, func in (
        ("list", "show dead-lettered webhook deliveries (see docs/webhooks.md)", run_deliveries_list),
        ("retry", "process dead-lettered webhook deliveries again, here and now", run_deliveries_retry),
    ):
        cmd = dl_sub.add_parser(name, help=helptext)
        cmd.add_argument("--source", default=None, help="only this source's (jira, pagerduty, alertmanager, ...)")
        if name == "list":
            cmd.add_argument("--json", action="store_true", help="print JSON")
        else:
            cmd.add_argument("--id", type=int, action="append", default=None, help="only this delivery (repeatable)")
        cmd.set_defaults(func=func)

    sb = sub.add_parser("sandbox", help="the offline stand-in for production systems")
    sb_sub = sb.add_subparsers(dest="action", metavar="ACTION", required=True)
    serve = sb_sub.add_parser("serve", help="serve an incident world as MCP tools")
    serve.add_argument("--world", required=True, type=Path)
    serve.add_argument("--source", default=None, help="observability | changes | tickets | chat (default: all, http)")
    serve.add_argument(
        "--transport", choices=("stdio", "http"), default=None,
        help="default: stdio with --source, else streamable HTTP serving every source",
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8931)
    serve.set_defaults(func=run_sandbox_serve)

    wg = sub.add_parser("worlds", help="incident worlds")
    wg_sub = wg.add_subparsers(dest="action", metavar="ACTION", required=True)
    gen = wg_sub.add_parser("generate", help="generate incident worlds (deterministic by seed)")
    gen.add_argument("--out", required=True, type=Path)
    gen.add_argument("--count", type=int, default=1)
    gen.add_argument("--seed", type=int, default=1)
    gen.add_argument("--family", action="append", help="restrict to these fault families (repeatable)")
    gen.add_argument("--no-decoys", action="store_true")
    gen.set_defaults(func=run_worlds_generate)
    rp = wg_sub.add_parser("replay", help="write a world as what real systems would hold (OpenMetrics, log "
                           "files, change and alert webhooks, sources.yaml)")
    rp.add_argument("world", type=Path, help="the incident world directory")
    rp.add_argument("--out", required=True, type=Path, help="the folder to write (created)")
    rp.add_argument("--prometheus-url", default=None,
                    help="the Prometheus URL written into sources.yaml (default http://127.0.0.1:9090)")
    rp.add_argument("--blocks", action="store_true",
                    help="also build TSDB blocks into OUT/prometheus-data with promtool")
    rp.add_argument("--logs", choices=("per-service", "one-file"), default="per-service",
                    help="log files: one per service (default) or one holding every line in the world's order")
    rp.set_defaults(func=run_worlds_replay)


def run_worker(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline import logs, tracing
    from pipeline.worker import run_worker as _run
    from store.db import upgrade_on_start

    if settings.log_format == "json":
        logs.configure(settings, json_logs=True)
    tracing.setup(settings)
    upgrade_on_start(settings)
    if not (settings.redis_url or settings.rabbitmq_url):
        # Say so rather than wait in silence: no other process can hand this worker anything.
        print("pm worker: no REDIS_URL or RABBITMQ_URL, so no queue is shared with pm serve / pm bot; this worker "
              "only resumes investigations left open in the database. Set REDIS_URL to share one.",
              file=sys.stderr, flush=True)

    def configure(runtime: object) -> None:
        register_publishers(runtime, settings)

    return _run(settings, configure=configure)


def register_publishers(runtime: object, settings: Settings) -> list[str]:
    """Register what a worker process runs besides investigations (see bot.http.wiring).

    Returns:
        The registered sink names.
    """
    from bot.http.settings import load_http_settings
    from bot.http.wiring import configure_runtime

    configure_runtime(runtime, settings, load_http_settings())
    return sorted(getattr(runtime, "publishers", {}))


def run_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from store.db import upgrade

    upgrade(settings.effective_database_url)
    print(f"database at {settings.effective_database_url.split('@')[-1]} is up to date")
    return 0


def _in_db(settings: Settings, work: Callable[[Any], T], *, commit: bool = False) -> T:
    """``work(session)`` in one session of the configured database (migrated first, so a fresh
    directory gets its embedded database), committed when ``commit``; the engine is disposed after."""
    from store.db import make_engine, make_session_factory, upgrade

    upgrade(settings.effective_database_url)
    engine = make_engine(settings.effective_database_url)
    try:
        with make_session_factory(engine)() as s:
            out = work(s)
            if commit:
                s.commit()
            return out
    finally:
        engine.dispose()


def _print_dead(rows: list[dict[str, Any]], *, as_json: bool, none: str, line: Callable[[dict[str, Any]], str],
                footer: str) -> int:
    """A dead-letter listing: JSON, or one line per row and a footer saying what to do."""
    import json

    if as_json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print(none)
    else:
        for r in rows:
            print(line(r))
        print(f"{len(rows)} dead-lettered; {footer}")
    return 0


def _budgets_runtime(settings: Settings):  # noqa: ANN202 - pipeline.runtime.Runtime, imported lazily
    from pipeline.runtime import build_runtime
    from store.config import load_cost_settings
    from store.db import upgrade

    upgrade(settings.effective_database_url)
    return build_runtime(settings, cost=load_cost_settings())


def _money(st: dict) -> str:
    limit = f"${st['limit_usd']:,.2f}" if st["limit_usd"] > 0 else "no limit"
    extra = " (stop lifted)" if st["lifted"] else (f" (incl. ${st['extra_usd']:,.2f} approved)" if st["extra_usd"] else "")
    return f"${st['spent_usd']:,.2f} of {limit}{extra} · {st['used']:.0%} · {st['level']}"


def run_budgets_show(args: argparse.Namespace, settings: Settings) -> int:
    import json

    from commands import budgets

    rt = _budgets_runtime(settings)
    try:
        out = budgets.show(runtime=rt)
    finally:
        rt.close()
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    t = out["thresholds"]
    print(f"budgets for {out['month']} (warn at {t['warn']:.0%}, only P1 from {t['p1_only']:.0%}, "
          f"stop at {t['stop']:.0%}; each investigation ${out['investigation_usd']:,.2f})")
    print(f"  global           {_money(out['global'])}")
    for d in out["domains"]:
        print(f"  domain {d['key']:<9} {_money(d)}")
    for a in out["approvals"]:
        what = f"+${a['extra_usd']:,.2f}" if a["extra_usd"] else "stop lifted"
        print(f"  approved {a['scope']} {a['key']}: {what} by {a['approved_by'] or '?'} at {a['at']}")
    return 0


def run_budgets_approve(args: argparse.Namespace, settings: Settings) -> int:
    import getpass

    from commands import budgets

    if args.scope == "domain" and not args.domain:
        print("name the domain: pm budgets approve domain NAME [--usd AMOUNT]", file=sys.stderr)
        return 2
    body = {"scope": args.scope, "domain": args.domain, "usd": args.usd, "note": args.note}
    rt = _budgets_runtime(settings)
    try:
        out = budgets.approve(runtime=rt, body=body, by=args.by or getpass.getuser())
    finally:
        rt.close()
    st = out["budget"]
    print(f"approved: {args.scope}{' ' + args.domain if args.domain else ''} now {_money(st)}; "
          "new investigations may start")
    return 0


def run_outbox_list(args: argparse.Namespace, settings: Settings) -> int:
    from store import outbox

    rows = _in_db(settings, lambda s: outbox.dead_letters(session=s, sink=args.sink,
                                                          investigation_id=args.investigation))
    return _print_dead(rows, as_json=args.json, none="no dead-lettered deliveries",
                       line=lambda r: f"{r['delivery_id']:>8} {r['sink']:<6} {r['investigation_id']:<48} "
                                      f"#{r['seq']:<3} {r['kind']:<14} {r['attempts']} tries: "
                                      f"{str(r['error'] or '')[:120]}",
                       footer="send them again with `pm outbox retry`")


def run_outbox_retry(args: argparse.Namespace, settings: Settings) -> int:
    from store import outbox

    n = _in_db(settings, lambda s: outbox.retry_dead(session=s, sink=args.sink, investigation_id=args.investigation),
               commit=True)
    if not n:
        print("no dead-lettered deliveries to retry")
        return 0
    print(f"{n} deliveries put back; a running worker (`pm worker`, `pm bot`, `pm serve`) sends them within "
          "PM_OUTBOX_SWEEP_S (5 s by default)")
    return 0


def run_deliveries_list(args: argparse.Namespace, settings: Settings) -> int:
    from store import inbound

    rows = _in_db(settings, lambda s: inbound.dead_letters(session=s, source=args.source))
    return _print_dead(rows, as_json=args.json, none="no dead-lettered webhook deliveries",
                       line=lambda r: f"{r['delivery_id']:>8} {r['source']:<12} {r['status']:<6} {r['received_at']} "
                                      f"{r['attempts']} tries: {str(r['error'] or '')[:120]}",
                       footer="process them again with `pm deliveries retry` once the cause is fixed "
                              "(status failed: stored by an older listener, the body no longer validates; not retried)")


def run_deliveries_retry(args: argparse.Namespace, settings: Settings) -> int:
    from bot.http.jobs import run_job
    from bot.http.settings import load_http_settings
    from pipeline.runtime import build_runtime
    from store import inbound
    from store.models import InboundDelivery

    ids = _in_db(settings, lambda s: inbound.retry_dead(session=s, source=args.source, delivery_ids=args.id),
                 commit=True)
    if not ids:
        print("no dead-lettered webhook deliveries to retry")
        return 0
    runtime = build_runtime(settings)
    try:
        run_job("resume-deliveries", settings=settings, http=load_http_settings(), runtime=runtime)
        with runtime.session() as s:
            statuses = {r.id: r.status for r in s.query(InboundDelivery).filter(InboundDelivery.id.in_(ids))}
    finally:
        runtime.close()
    for delivery_id in ids:
        print(f"{delivery_id:>8} {statuses.get(delivery_id, 'missing')}")
    still = [i for i in ids if statuses.get(i) in ("accepted", "dead")]
    print(f"{len(ids) - len(still)} of {len(ids)} processed" + (
        f"; {len(still)} failed again (see `pm deliveries list`)" if still else ""))
    return 1 if still else 0


def run_sandbox_serve(args: argparse.Namespace, settings: Settings) -> int:
    from sandbox.serve import serve

    access_key = settings.mcp_access_key.get_secret_value() if settings.mcp_access_key else None
    transport = args.transport or ("stdio" if args.source else "http")
    serve(args.world, args.source, transport=transport, host=args.host, port=args.port, access_key=access_key)
    return 0


def run_worlds_generate(args: argparse.Namespace, settings: Settings) -> int:
    from sandbox.generator import generate_suite

    paths = generate_suite(args.out, count=args.count, seed=args.seed, families=args.family, decoys=not args.no_decoys)
    for p in paths:
        print(p)
    return 0


def run_worlds_replay(args: argparse.Namespace, settings: Settings) -> int:
    from sandbox.replay import DEFAULT_PROMETHEUS_URL, replay

    manifest = replay(args.world, args.out, prometheus_url=args.prometheus_url or DEFAULT_PROMETHEUS_URL,
                      blocks=args.blocks, logs=args.logs)
    lines = sum(manifest["logs"]["lines"].values())
    print(f"{args.out}: {manifest['metrics']['samples']} samples, {lines} log lines, "
          f"{manifest['changes']['count']} changes, {manifest['alerts']['count']} alerts; see REPLAY.md")
    return 0
