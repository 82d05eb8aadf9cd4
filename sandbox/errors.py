"""Errors of the sandbox room: bad world files and bad tool arguments.

Every message is one line that names the culprit and says what to do.
"""

from __future__ import annotations


class SandboxError(Exception):
    """Base of every sandbox error."""


class WorldError(SandboxError):
    """A world directory or one of its files cannot be read (names the file, and the line for .jsonl)."""


class ToolArgumentError(SandboxError):
    """A tool was called with an unknown capability or bad arguments."""


class NotFoundError(ToolArgumentError):
    """A tool was asked for a ticket or alert the world does not hold."""
