"""``python -m sandbox serve --world DIR [--source S] [--transport stdio|http] [--host H] [--port N]``.

The composition root of a standalone sandbox server: settings (MCP_ACCESS_KEY)
are read here, at run time, and passed down.
"""

from __future__ import annotations

import argparse
import sys

from sandbox.errors import SandboxError
from sandbox.world import load_world_meta

# Kept here rather than imported from sandbox.serve: bad input should fail before the MCP stack loads.
SOURCES = ("observability", "changes", "tickets", "chat")
TRANSPORTS = ("stdio", "http")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="Serve an incident world over MCP.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("serve", help="serve one source (stdio/http) or all sources (http) of a world")
    run.add_argument("--world", required=True, help="incident world directory (holds world.yaml)")
    run.add_argument("--source", choices=sorted(SOURCES), default=None,
                     help="which server; required for stdio, omit with http to serve all at /<source>/mcp")
    run.add_argument("--transport", choices=TRANSPORTS, default="stdio")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=0, help="HTTP port (0 = any free port, printed on stderr)")
    run.add_argument("--access-key", default=None,
                     help="HTTP: require 'Authorization: Bearer KEY' (default: MCP_ACCESS_KEY)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (2 with a one-line message on bad input)."""
    args = _parser().parse_args(argv)
    if args.transport == "stdio" and args.source is None:
        print("error: stdio serves one source; pass --source observability|changes|tickets|chat", file=sys.stderr)
        return 2
    try:
        load_world_meta(args.world)
    except SandboxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from sandbox.serve import serve  # the MCP/uvicorn stack takes a while to import

    access_key = args.access_key
    if access_key is None and args.transport == "http":
        from store.config import load_settings  # only the HTTP path needs settings

        secret = load_settings().mcp_access_key
        access_key = secret.get_secret_value() if secret else None
    try:
        serve(args.world, args.source, transport=args.transport, host=args.host, port=args.port,
              access_key=access_key)
    except SandboxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
