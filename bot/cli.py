"""`pm`: the command-line front door and a composition root.

Settings are read here (and in the other entry points) and nowhere else. Known
errors print one line that says what to do and exit non-zero; set PM_DEBUG=1
for a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence

from bot.errors import EXIT_USAGE, exit_code_for, friendly_errors

# Front doors that live in their own packages register their subcommands here.
COMMAND_MODULES: list[str] = [
    "bot.cli_investigate",
    "bot.cli_admin",
    "bot.cli_sources",
    "bot.http.cli",
    "bot.slack.cli",
]

Handler = Callable[[argparse.Namespace, object], int]


def build_parser() -> argparse.ArgumentParser:
    """The whole `pm` argument tree, from every module in COMMAND_MODULES."""
    parser = argparse.ArgumentParser(prog="pm", description="Production Master: investigates production incidents.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _quiet_libraries(debug: bool) -> None:
    """Keep library log noise (worker tracebacks, retries) off a user's terminal.

    Failures reach the user as one line through the progress events; PM_DEBUG=1 shows everything.
    """
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not debug:
        for name in ("dramatiq", "pika", "mcp", "httpx", "botocore", "alembic"):
            logging.getLogger(name).setLevel(logging.CRITICAL)


def _one_blas_thread() -> None:
    """Run numpy's BLAS on one thread unless the operator chose otherwise (set before numpy loads).

    Our matrix products are small (one report's embedding: ~300 x 384 @ 384 x 1536), where OpenBLAS's
    spinning threads only fight the worker threads for the cores: on the 2-core machine, shared, one
    embedding took 3.3-6.8 s with the default threads and 0.42-0.56 s with one (bench/scale.py notes).
    """
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `pm` console script."""
    _one_blas_thread()
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Handler | None = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    debug = os.environ.get("PM_DEBUG", "") not in ("", "0")
    _quiet_libraries(debug)
    with friendly_errors(debug=debug) as outcome:
        from store.config import load_settings

        settings = load_settings()
        from pipeline.logs import install_redaction

        install_redaction(settings)  # before anything can log or print a secret
        code = func(args, settings)
        if argv is None and getattr(args, "fast_exit", False):
            _fast_exit(code)
        return code
    return exit_code_for(outcome.error)


def _fast_exit(code: int) -> None:
    """End the process now, without freeing the heap object by object.

    For commands that hold a large world in memory and have written everything (database committed,
    worker stopped, report printed): tearing down ~200,000 parsed log lines, the embedding model and
    Chroma's client took a second or more at exit. Only from the console script (``argv`` None), never
    when ``main`` is called in-process. The same idea as mypy's ``--fast-exit``.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
