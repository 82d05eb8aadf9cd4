"""Calling the tools defensively: a failing or absent source degrades the investigation, never ends it."""

from __future__ import annotations

from typing import Any


def safe_call(tools: Any, capability: str, missing: list[str], source: str, *,
              raise_on: tuple[type[BaseException], ...] = (), **args: Any) -> dict[str, Any]:
    """Call ``tools.call(capability, **args)``; on any failure record ``source`` as missing.

    Params: tools — a ToolSource; capability — e.g. ``logs.search``; missing —
    list that collects unavailable sources (appended once); source — the name
    to record (``logs``, ``metrics``, ...); args — tool arguments (None values
    are dropped); raise_on — exception types passed to the caller instead of recorded.
    Returns: the tool's dict, or {} when it failed. A partial answer's notes are recorded too:
    its ``missing_sources`` (providers of a merged answer that failed) and its ``truncated`` note
    (a bound cut the answer short), so the report says what it did not see.
    """
    clean = {k: v for k, v in args.items() if v is not None}
    try:
        result = tools.call(capability, **clean)
    except raise_on:
        raise
    except Exception as exc:  # noqa: BLE001 — any tool failure is a missing source, by design
        note = f"{source} ({capability} failed: {str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__})"
        if not any(m.split(" ")[0] == source for m in missing):
            missing.append(note)
        return {}
    if not isinstance(result, dict):
        return {}
    notes = [n for n in (result.get("missing_sources") or []) if isinstance(n, str)]
    if result.get("truncated"):
        notes.append(f"{source} (truncated: {str(result['truncated'])[:200]})")
    for note in notes:
        if note not in missing:
            missing.append(note)
    return result
