"""Merging the answers of several providers of one capability (docs/contracts.md, docs/sources.md).

When ``sources.yaml`` lists two log sources (files and Loki) or two change sources (our stored
events and GitHub), the gateway asks each and merges here: lists are joined and ordered by time,
records with an ``id``/``key`` are kept once (the first provider listed wins), counts are added,
topologies united, and ``*.get`` takes the first provider that knows the key. A provider that
failed while others answered is named in the result's ``missing_sources``; a provider whose
answer was cut short passes its ``truncated`` note on. Paging over several log sources uses a
composite cursor holding each source's own cursor.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from agents.errors import ToolError

#: Capabilities whose answer is one record: the first provider (in file order) that has it wins.
SINGLE = frozenset({"tickets.get", "alerts.get", "world.describe"})
_LIST_KEY = {"changes.list": ("changes", "id"), "alerts.list": ("alerts", "id"), "chat.search": ("messages", None),
             "tickets.search": ("tickets", "key"), "metrics.list": ("metrics", None),
             "metrics.series": ("series", None)}
_CURSOR_PREFIX = "multi:"


def split_cursor(cursor: Any, count: int) -> list[str | None] | None:
    """Per-provider cursors from a composite ``logs.search`` cursor; None when ``cursor`` is not one of ours.

    A provider that has no entry is finished (it is not asked again).

    Raises:
        ToolError: a composite cursor that does not decode.
    """
    if not isinstance(cursor, str) or not cursor.startswith(_CURSOR_PREFIX):
        return None
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor[len(_CURSOR_PREFIX):].encode()).decode())
        return [raw.get(str(i)) for i in range(count)]
    except (ValueError, AttributeError):
        raise ToolError("logs.search: 'cursor' is not one we issued; pass next_cursor as is",
                        capability="logs.search") from None


def _join_cursor(cursors: dict[int, str]) -> str | None:
    if not cursors:
        return None
    packed = json.dumps({str(i): c for i, c in cursors.items()}, separators=(",", ":"))
    return _CURSOR_PREFIX + base64.urlsafe_b64encode(packed.encode()).decode()


def _ts(item: Any) -> str:
    return str(item.get("ts") or "") if isinstance(item, dict) else ""


def merge(capability: str, answers: list[tuple[str, dict[str, Any] | BaseException]]) -> dict[str, Any]:
    """Merge ``[(provider name, result or the exception it raised)]`` in configured order.

    Returns:
        The merged result, plus ``missing_sources`` naming providers that failed (when some answered)
        and ``truncated`` joining the notes of providers that cut their answer short.

    Raises:
        ToolError: every provider failed (the message names each and why).
    """
    ok = [(name, r) for name, r in answers if isinstance(r, dict)]
    failed = [(name, r) for name, r in answers if isinstance(r, BaseException)]
    if not ok:
        reasons = "; ".join(f"{name}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                            for name, exc in failed)
        raise ToolError(f"{capability}: every source failed ({reasons})", capability=capability)
    if capability in SINGLE:
        merged = dict(ok[0][1])
        failed = []  # another provider not knowing a key is no failure
    elif capability == "logs.search":
        merged = _merge_logs([r for _, r in ok])
    elif capability == "logs.counts":
        merged = _merge_counts([r for _, r in ok])
    elif capability == "topology.get":
        merged = _merge_topology([r for _, r in ok])
    elif capability in _LIST_KEY:
        key, ident = _LIST_KEY[capability]
        merged = _merge_list([r for _, r in ok], key, ident, capability)
    else:
        merged = dict(ok[0][1])
    notes = [f"{name} ({capability} failed: {str(exc).splitlines()[0][:400] if str(exc) else type(exc).__name__})"
             for name, exc in failed]
    notes += [n for _, r in ok for n in (r.get("missing_sources") or []) if isinstance(n, str)]
    if notes:
        merged["missing_sources"] = notes
    truncated = [f"{name}: {r['truncated']}" for name, r in ok if r.get("truncated")]
    if truncated:
        merged["truncated"] = "; ".join(truncated)
    else:
        merged.pop("truncated", None)
    return merged


def _merge_list(results: list[dict[str, Any]], key: str, ident: str | None, capability: str) -> dict[str, Any]:
    seen: set[Any] = set()
    items: list[Any] = []
    for r in results:
        for item in r.get(key) or []:
            if capability in ("metrics.list", "metrics.series") and isinstance(item, dict):
                mark: Any = (item.get("service"), item.get("name"))
            elif ident and isinstance(item, dict):
                mark = item.get(ident)
            else:
                mark = None
            if mark is not None:
                if mark in seen:
                    continue
                seen.add(mark)
            items.append(item)
    if capability not in ("metrics.list", "metrics.series"):
        items.sort(key=_ts)
    return {key: items}


def _merge_logs(results: list[dict[str, Any]]) -> dict[str, Any]:
    lines = [line for r in results for line in (r.get("lines") or [])]
    lines.sort(key=_ts)
    total = sum(int(r.get("total") or 0) for r in results)
    return {"lines": lines, "next_cursor": None, "total": total}


def _merge_counts(results: list[dict[str, Any]]) -> dict[str, Any]:
    counts: dict[tuple, int] = {}
    fields: dict[tuple, dict[str, Any]] = {}
    for r in results:
        for b in r.get("buckets") or []:
            mark = (b.get("ts"), b.get("service"), b.get("level"))
            counts[mark] = counts.get(mark, 0) + int(b.get("count") or 0)
            fields.setdefault(mark, {k: v for k, v in b.items() if k != "count"})
    buckets = [{**fields[m], "count": counts[m]} for m in sorted(counts, key=lambda m: tuple(str(x) for x in m))]
    return {"step_s": results[0].get("step_s"), "buckets": buckets}


def _merge_topology(results: list[dict[str, Any]]) -> dict[str, Any]:
    by_name: dict[str, dict[str, Any]] = {}
    for r in results:
        for svc in r.get("services") or []:
            if not isinstance(svc, dict) or not svc.get("name"):
                continue
            have = by_name.setdefault(svc["name"], {"name": svc["name"], "calls": []})
            for callee in svc.get("calls") or []:
                if callee not in have["calls"]:
                    have["calls"].append(callee)
            for k, v in svc.items():
                if k not in ("name", "calls"):
                    have.setdefault(k, v)
    return {"services": list(by_name.values())}


def merge_logs_page(answers: list[tuple[int, str, dict[str, Any] | BaseException]]) -> dict[str, Any]:
    """Merge one ``logs.search`` page of several providers: ``[(route index, name, result)]``.

    The merged ``next_cursor`` is composite: it keeps, for each provider with more lines, its own cursor.
    """
    merged = merge("logs.search", [(name, r) for _, name, r in answers])
    cursors = {i: r["next_cursor"] for i, _, r in answers if isinstance(r, dict) and r.get("next_cursor")}
    merged["next_cursor"] = _join_cursor(cursors)
    return merged
