"""How the CLI turns known errors into one line and an exit code."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass

EXIT_FAILURE = 1
EXIT_USAGE = 2


@dataclass
class Outcome:
    error: BaseException | None = None


def _known_errors() -> tuple[type[BaseException], ...]:
    # Imported lazily so `pm --help` stays fast and a broken optional room
    # cannot stop the CLI from reporting its own errors.
    known: list[type[BaseException]] = []
    for mod, name in (
        ("store.errors", "StoreError"),
        ("commands.errors", "CommandError"),
        ("agents.errors", "AgentError"),
        ("sandbox.errors", "SandboxError"),
        ("pipeline.errors", "PipelineError"),
    ):
        try:
            known.append(getattr(__import__(mod, fromlist=[name]), name))
        except (ImportError, AttributeError):
            continue
    return tuple(known)


@contextlib.contextmanager
def friendly_errors(*, debug: bool) -> Iterator[Outcome]:
    """Print known errors as ``pm: error: <message>`` on stderr; re-raise with debug."""
    outcome = Outcome()
    try:
        yield outcome
    except KeyboardInterrupt:
        outcome.error = KeyboardInterrupt()
        print("pm: interrupted", file=sys.stderr)
    except _known_errors() as exc:  # type: ignore[misc]
        if debug:
            raise
        outcome.error = exc
        print(_masked(f"pm: error: {exc}"), file=sys.stderr)
    except Exception as exc:  # noqa: BLE001 - the last line of defence of a CLI
        if debug:
            raise
        outcome.error = exc
        first_line = (str(exc).strip().splitlines() or [""])[0]
        print(
            _masked(f"pm: error: {type(exc).__name__}: {first_line} (unexpected; rerun with PM_DEBUG=1 for details)"),
            file=sys.stderr,
        )


def _masked(line: str) -> str:
    """``line`` with configured secrets and URL passwords masked (pipeline.logs.install_redaction)."""
    from pipeline.logs import mask

    return mask(line)


def exit_code_for(error: BaseException | None) -> int:
    return EXIT_FAILURE if error is not None else 0
