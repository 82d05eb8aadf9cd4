"""`pm sources check` and `pm mcp serve KIND`: real sources from a sources.yaml (docs/sources.md)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from commands.errors import BadRequest

if TYPE_CHECKING:  # `pm --help` must not import pydantic (item 9 of #13)
    from store.config import Settings


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    s = sub.add_parser("sources", help="real sources (sources.yaml): check that each answers")
    s_sub = s.add_subparsers(dest="action", metavar="ACTION", required=True)
    chk = s_sub.add_parser("check", help="reach every source, run a small query, say what to fix")
    chk.add_argument("--sources", type=Path, help="the sources.yaml (default PM_SOURCES)")
    chk.add_argument("--json", action="store_true", help="one JSON object per source")
    chk.set_defaults(func=run_check)

    m = sub.add_parser("mcp", help="our MCP servers over real sources")
    m_sub = m.add_subparsers(dest="action", metavar="ACTION", required=True)
    serve = m_sub.add_parser("serve", help="serve one source as MCP tools (stdio or streamable HTTP)")
    serve.add_argument("kind", help="prometheus, files, loki, alertmanager, events, github, git, kubernetes, "
                       "file, jira, slack, mcp")
    serve.add_argument("--sources", type=Path, help="take the entry's settings from this sources.yaml")
    serve.add_argument("--entry", help="with --sources: which entry, as section.index (e.g. logs.0)")
    serve.add_argument("--section", help="without --sources: the section to answer (default: the kind's first)")
    serve.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="a setting (repeatable; VALUE is YAML), e.g. --set url=http://127.0.0.1:9090")
    serve.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="HTTP port (0: any free port, printed on stderr)")
    serve.set_defaults(func=run_serve)


def _sources_path(args: argparse.Namespace, settings: Settings) -> Path:
    path = args.sources or settings.sources_file
    if path is None:
        raise BadRequest("no sources file: pass --sources sources.yaml or set PM_SOURCES (docs/sources.md)")
    return Path(path)


def check_entries(path: Path) -> list[dict[str, Any]]:
    """Build and probe every entry of ``path``: ``[{entry, kind, name, ok, latency_ms, detail}]``.

    Raises:
        ConfigError: the file itself cannot be read or parsed.
    """
    from sources.registry import build_provider
    from sources.server import secrets_from_env
    from store.sources_file import load_sources

    doc = load_sources(path)
    rows = []
    for entry in doc.entries:
        row: dict[str, Any] = {"entry": entry.ref, "kind": entry.kind, "name": entry.name, "ok": False,
                               "latency_ms": None, "detail": ""}
        t0 = time.perf_counter()
        provider = None
        try:
            provider = build_provider(entry, doc, secrets=secrets_from_env())
            row["detail"] = provider.check()
            row["ok"] = True
        except Exception as exc:  # noqa: BLE001 - every failure is reported on its row, the others go on
            row["detail"] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        finally:
            row["latency_ms"] = round((time.perf_counter() - t0) * 1000, 1)
            if provider is not None:
                provider.close()
        rows.append(row)
    return rows


def run_check(args: argparse.Namespace, settings: Settings) -> int:
    rows = check_entries(_sources_path(args, settings))
    if args.json:
        for row in rows:
            print(json.dumps(row))
    else:
        width = max(len(f"{r['entry']} {r['kind']}") for r in rows)
        print(f"{'source':<{width}}  {'status':<6} {'latency':>9}  detail")
        for r in rows:
            status = "ok" if r["ok"] else "FAILED"
            print(f"{r['entry'] + ' ' + r['kind']:<{width}}  {status:<6} {r['latency_ms']:>7.0f}ms  {r['detail']}")
    failed = [r for r in rows if not r["ok"]]
    if failed and not args.json:
        print(f"{len(failed)} of {len(rows)} sources failed; fix what each line says and run again", file=sys.stderr)
    return 1 if failed else 0


def _settings_from_flags(pairs: list[str]) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise BadRequest(f"--set {pair!r}: expected KEY=VALUE, e.g. --set url=http://127.0.0.1:9090")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def run_serve(args: argparse.Namespace, settings: Settings) -> int:
    import anyio

    from sources.registry import build_provider
    from sources.server import provider_server, secrets_from_env, single_entry
    from store.sources_file import load_sources

    if args.sources:
        if not args.entry:
            raise BadRequest("--sources needs --entry section.index (e.g. --entry logs.0); `pm sources check` lists them")
        doc = load_sources(args.sources)
        entry = doc.entry(args.entry)
        if entry.kind != args.kind:
            raise BadRequest(f"entry {args.entry} is a {entry.kind!r} source, not {args.kind!r}")
    else:
        doc, ref = single_entry(args.kind, _settings_from_flags(args.set), section=args.section)
        entry = doc.entry(ref)
    server = provider_server(build_provider(entry, doc, secrets=secrets_from_env()))
    if args.transport == "stdio":
        anyio.run(server.run_stdio_async)
        return 0
    import uvicorn

    app = server.streamable_http_app(streamable_http_path="/mcp", host=args.host)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning")
    srv = uvicorn.Server(config)
    print(f"pm mcp serve {args.kind}: listening on http://{args.host}:{args.port or '<free port>'}/mcp",
          file=sys.stderr, flush=True)
    try:
        srv.run()
    except KeyboardInterrupt:
        pass
    return 0
