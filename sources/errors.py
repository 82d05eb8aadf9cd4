"""Errors of the real-source providers. Each message names the source and what to change."""

from __future__ import annotations

from sandbox.errors import SandboxError


class SourceError(SandboxError):
    """A source could not answer: unreachable, refused, timed out, or answered garbage.

    The message names the source (kind and URL or path) and says what to check; it reaches the
    report's ``missing_sources`` and ``pm sources check``.
    """


class QueryError(SourceError):
    """A configured query (a PromQL/LogQL template) failed; the message names the metric and the template."""
