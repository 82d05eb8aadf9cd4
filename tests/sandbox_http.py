"""Run a sandbox MCP server over streamable HTTP in a subprocess, for tests that need a real one."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def serving(command: Sequence[str], env: dict[str, str] | None = None) -> Iterator[list[str]]:
    """Start ``command`` (a `serve --transport http --port 0` invocation) and yield the MCP URLs it
    reports on its first stderr line; terminate it afterwards."""
    proc = subprocess.Popen(list(command), cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline() if proc.stderr else ""
        assert "listening on" in line, line
        yield line.split("listening on ", 1)[1].split()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if proc.stderr:
            proc.stderr.close()


def base_url(mcp_url: str) -> str:
    """``http://host:port`` of an ``http://host:port/<source>/mcp`` URL."""
    return mcp_url.rsplit("/", 2)[0]
