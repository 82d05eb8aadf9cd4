"""`pm domains memory show|edit DOMAIN`: a domain's notes for investigations (issue #17, docs/knowledge.md).

The notes (known noisy alerts, owners, runbooks, "payments' p95 is always high on Mondays") are stored in
the database and go into every investigation of the domain: the agents' context and the report's "Context".
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from commands.errors import CommandError


def register(sub: Any) -> None:
    """Add ``pm domains`` to the CLI."""
    dom = sub.add_parser("domains", help="per-domain settings and notes")
    dom_sub = dom.add_subparsers(dest="domains_command", metavar="SUBCOMMAND", required=True)
    mem = dom_sub.add_parser("memory", help="the domain's notes, given to every investigation of it")
    mem_sub = mem.add_subparsers(dest="memory_command", metavar="ACTION", required=True)
    show = mem_sub.add_parser("show", help="print the notes")
    show.add_argument("domain")
    show.set_defaults(func=run_show)
    edit = mem_sub.add_parser("edit", help="edit the notes in $EDITOR (or replace them from a file or stdin)")
    edit.add_argument("domain")
    edit.add_argument("--set-file", metavar="FILE", help="replace the notes with this file's text ('-': stdin)")
    edit.add_argument("--user", default=os.environ.get("USER"), help="recorded as the editor (default: $USER)")
    edit.set_defaults(func=run_edit)


def _session_factory(settings: Any) -> Any:
    from store.db import make_engine, make_session_factory, upgrade

    upgrade(settings.effective_database_url)  # a fresh directory gets its embedded database
    return make_session_factory(make_engine(settings.effective_database_url))


def run_show(args: argparse.Namespace, settings: Any) -> int:
    from store import domains

    with _session_factory(settings)() as s:
        got = domains.get_memory(session=s, domain=args.domain)
    if not got["text"]:
        print(f"no notes for domain {args.domain!r}; write some with `pm domains memory edit {args.domain}`",
              file=sys.stderr)
        return 0
    print(got["text"])
    print(f"-- updated {got['updated_at']} by {got['updated_by'] or 'unknown'}", file=sys.stderr)
    return 0


def _from_editor(current: str) -> str:
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR")
    if not editor:
        raise CommandError("no editor: set EDITOR (e.g. EDITOR=nano), or pass --set-file FILE ('-' for stdin)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "domain-notes.md"
        path.write_text(current + ("\n" if current else ""), encoding="utf-8")
        done = subprocess.run([*shlex.split(editor), str(path)], check=False)  # noqa: S603 - the user's own editor
        if done.returncode != 0:
            raise CommandError(f"the editor exited with {done.returncode}; the notes were not changed")
        return path.read_text(encoding="utf-8")


def run_edit(args: argparse.Namespace, settings: Any) -> int:
    from store import domains

    factory = _session_factory(settings)
    with factory() as s:
        current = domains.get_memory(session=s, domain=args.domain)["text"]
    if args.set_file == "-" or (args.set_file is None and not sys.stdin.isatty()):
        text = sys.stdin.read()
    elif args.set_file:
        try:
            text = Path(args.set_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot read {args.set_file}: {exc.strerror}; give a readable text file") from None
    else:
        text = _from_editor(current)
    if text.strip() == current.strip():
        print(f"notes for domain {args.domain!r} unchanged", file=sys.stderr)
        return 0
    with factory() as s:
        try:
            got = domains.set_memory(session=s, domain=args.domain, text=text, user=args.user)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        s.commit()
    print(f"notes for domain {args.domain!r} saved ({len(got['text'])} characters)"
          if got["text"] else f"notes for domain {args.domain!r} cleared", file=sys.stderr)
    return 0
