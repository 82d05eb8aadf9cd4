"""A terminal view of an investigation's progress events.

On a terminal it draws a progress bar (rich); elsewhere it writes one plain
line per phase, so logs of CI runs stay readable.
"""

from __future__ import annotations

import time
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.progress import Progress

# The checklist the user sees; HYPOTHESES and VERIFICATION may repeat (rounds).
PLAN = (
    "INITIALIZING",
    "CONTEXT_GATHERING",
    "EVIDENCE",
    "CHANGES",
    "CORRELATION",
    "HYPOTHESES",
    "VERIFICATION",
    "FIX_PLAN",
    "REPORT",
    "PUBLISHING",
)


class ProgressView:
    """Consumes progress events; shows a bar on a TTY, plain lines otherwise, nothing when disabled."""

    def __init__(self, *, enabled: bool, stream: IO[str], title: str) -> None:
        self.enabled = enabled
        self.stream = stream
        self.title = title
        self._done: set[str] = set()
        self._started = time.monotonic()
        # rich only for a terminal: `--json` and CI logs do not pay for importing it
        self._tty = enabled and stream.isatty()
        self._progress: Progress | None = None
        self._task: Any = None

    def __enter__(self) -> ProgressView:
        if self._tty:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TimeElapsedColumn(),
                console=Console(file=self.stream, stderr=True),
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.title, total=len(PLAN))
        elif self.enabled:
            self._line(f"investigating {self.title}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def _line(self, text: str) -> None:
        self.stream.write(f"[{time.monotonic() - self._started:6.1f}s] {text}\n")
        self.stream.flush()

    def update(self, event: dict[str, Any]) -> None:
        """Reflect one progress event."""
        if not self.enabled:
            return
        kind, payload = event["kind"], event.get("payload") or {}
        phase = str(payload.get("phase") or "")
        label = phase + (f" (round {payload['round']})" if payload.get("round") else "")
        if kind == "phase_started":
            if self._progress is not None:
                self._progress.update(self._task, description=f"{self.title}: {label}")
            else:
                self._line(f"{label} ...")
        elif kind == "phase_finished":
            self._done.add(phase)
            if self._progress is not None:
                self._progress.update(self._task, completed=len(self._done & set(PLAN)))
            else:
                self._line(f"{label} done")
        elif kind == "milestone":
            text = payload.get("text", "")
            if self._progress is not None:
                self._progress.console.print(f"  • {text}")
            else:
                self._line(f"• {text}")
        elif kind in ("failed", "cancelled"):
            self._line(f"{kind}: {payload.get('error') or payload.get('reason') or ''}")
        elif kind == "report" and self._progress is not None:
            self._progress.update(self._task, completed=len(PLAN), description=f"{self.title}: COMPLETE")
