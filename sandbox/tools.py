"""The sandbox tools: every capability of docs/contracts.md answered from an in-memory world.

``WorldTools(world_dir_or_World).call(capability, **args) -> dict`` is the
reference implementation that the sandbox MCP servers wrap (they use
``call_json`` to skip a copy). Omitted optional args and args passed as None
mean "no filter". Time filters are half-open: ``start <= ts < end``.
Results are fresh dicts the caller may change.
"""

from __future__ import annotations

import copy
import json
import math
import threading
from bisect import bisect_left
from collections import Counter, OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sandbox.args import opt_int as _int
from sandbox.args import opt_level as _level
from sandbox.args import opt_str as _str
from sandbox.args import opt_str_list as _str_list
from sandbox.args import opt_time as _time
from sandbox.errors import NotFoundError, ToolArgumentError
from sandbox.world import LEVEL_RANK, LEVELS, LogIndex, World, iso, load_world

#: Largest page logs.search serves (the contract's maximum).
MAX_LIMIT = 500_000
_GROUP_BYS = {"service": ("service",), "level": ("level",), "service,level": ("service", "level"),
              "level,service": ("service", "level"), "none": ()}


def _dumps(obj: Any) -> str:
    """Compact JSON: tool results can be tens of megabytes, so no whitespace."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _dumps_lines(obj: dict[str, Any]) -> str:
    """:func:`_dumps` of a logs.search page, by orjson (~10x faster on a multi-megabyte page).

    Pages hold strings and small integers only, where orjson writes the same text as ``json.dumps``
    (compact, non-ASCII kept); anything it refuses (a lone surrogate, a huge integer) or a missing
    orjson (pinned in requirements.lock as a dependency of chromadb) falls back to :func:`_dumps`.
    """
    try:
        import orjson

        return orjson.dumps(obj).decode("utf-8")
    except (ImportError, TypeError):  # orjson.JSONEncodeError is a TypeError
        return _dumps(obj)


def _span(times: list[float], start: float | None, end: float | None) -> tuple[int, int]:
    lo = bisect_left(times, start) if start is not None else 0
    hi = bisect_left(times, end) if end is not None else len(times)
    return lo, max(lo, hi)


class WorldTools:
    """Answer the contract's capabilities from one world.

    Args:
        world: a world directory (loaded once here) or an already loaded :class:`World`.

    Raises:
        WorldError: when given a directory whose files are malformed.
    """

    def __init__(self, world: str | Path | World) -> None:
        self.world = world if isinstance(world, World) else load_world(world)
        self._handlers: dict[str, tuple[Callable[..., Any], frozenset[str]]] = {}
        for cap, method, params in _REGISTRY:
            self._handlers[cap] = (getattr(self, method), frozenset(params))
        # logs.search pages through the same match list; keep the last few so paging is O(page).
        self._matches: OrderedDict[tuple, tuple[LogIndex, list[int]]] = OrderedDict()
        self._lowered: dict[int, list[str]] = {}
        self._lock = threading.Lock()

    def capabilities(self) -> list[str]:
        """Return the capability names this tool set answers, sorted."""
        return sorted(self._handlers)

    def call(self, capability: str, **args: Any) -> dict[str, Any]:
        """Answer one capability.

        Args:
            capability: e.g. ``"logs.search"``.
            **args: the capability's arguments (see docs/contracts.md).

        Returns:
            The result dict (a fresh copy).

        Raises:
            ToolArgumentError: unknown capability, unknown or bad argument.
            NotFoundError: ``tickets.get`` / ``alerts.get`` of a key the world does not hold.
        """
        result, shared = self._dispatch(capability, args)
        if not shared:
            return result
        if capability == "logs.search":  # flat dicts: a shallow copy is enough and much cheaper
            return {**result, "lines": [dict(line) for line in result["lines"]]}
        return copy.deepcopy(result)

    def call_json(self, capability: str, **args: Any) -> str:
        """Like :meth:`call` but return compact JSON text (what the MCP tools send). Same errors."""
        result, _ = self._dispatch(capability, args)
        return _dumps_lines(result) if capability == "logs.search" else _dumps(result)

    def _dispatch(self, capability: str, args: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        entry = self._handlers.get(capability)
        if entry is None:
            raise ToolArgumentError(
                f"unknown capability {capability!r}; use one of {', '.join(self.capabilities())}"
            )
        handler, params = entry
        unknown = sorted(set(args) - params)
        if unknown:
            allowed = ", ".join(sorted(params)) or "none"
            raise ToolArgumentError(f"{capability}: unknown argument(s) {', '.join(unknown)}; allowed: {allowed}")
        return handler(**args), True

    # ------------------------------------------------------------ world / topology

    def _describe(self) -> dict[str, Any]:
        return self.world.meta()

    def _topology(self) -> dict[str, Any]:
        return {"services": self.world.topology}

    # ------------------------------------------------------------ logs

    def _match(self, cap: str, service: Any, level: Any, levels: Any, start: Any, end: Any,
               text: Any) -> tuple[LogIndex, list[int]]:
        """Positions (into the service's or the global index) of the lines passing every filter; memoised."""
        service = _str(cap, "service", service)
        min_level = _level(cap, "level", level)
        level_set = _str_list(cap, "levels", levels)
        if level_set is not None:
            level_set = [lv for lv in (_level(cap, "levels", v) for v in level_set) if lv is not None]
        t0, t1 = _time(cap, "start", start), _time(cap, "end", end)
        needle = (_str(cap, "text", text) or "").lower() or None
        key = (service, min_level, tuple(sorted(level_set)) if level_set else None, t0, t1, needle)
        with self._lock:
            hit = self._matches.get(key)
            if hit is not None:
                self._matches.move_to_end(key)
                return hit
        if service is None:
            idx = self.world.logs
        else:
            idx = self.world.logs_by_service.get(service) or LogIndex([], [])
        lo, hi = _span(idx.times, t0, t1)
        lines = idx.lines
        positions: list[int] = list(range(lo, hi))
        if min_level is not None and min_level != LEVELS[0]:
            rank = LEVEL_RANK
            floor = rank[min_level]
            positions = [i for i in positions if rank[lines[i]["level"]] >= floor]
        if level_set:
            wanted = frozenset(level_set)
            positions = [i for i in positions if lines[i]["level"] in wanted]
        if needle:
            lowered = self._lowered_messages(idx)
            positions = [i for i in positions if needle in lowered[i]]
        result = (idx, positions)
        with self._lock:
            self._matches[key] = result
            while len(self._matches) > 16:
                self._matches.popitem(last=False)
        return result

    def _lowered_messages(self, idx: LogIndex) -> list[str]:
        lowered = self._lowered.get(id(idx))
        if lowered is None:
            lowered = [line["message"].lower() for line in idx.lines]
            self._lowered[id(idx)] = lowered
        return lowered

    def _logs_search(self, service=None, level=None, levels=None, start=None, end=None, text=None,
                     limit=None, cursor=None) -> dict[str, Any]:
        cap = "logs.search"
        limit = _int(cap, "limit", limit, 1000, 1, MAX_LIMIT)
        offset = 0
        if cursor not in (None, ""):
            if not isinstance(cursor, str) or not cursor.isdigit():
                raise ToolArgumentError(f"{cap}: 'cursor' {cursor!r} is not one we issued; pass next_cursor as is")
            offset = int(cursor)
        idx, positions = self._match(cap, service, level, levels, start, end, text)
        page = positions[offset:offset + limit]
        lines = idx.lines
        nxt = offset + limit
        return {
            "lines": [lines[i] for i in page],
            "next_cursor": str(nxt) if nxt < len(positions) else None,
            "total": len(positions),
        }

    def _logs_counts(self, service=None, level=None, levels=None, text=None, start=None, end=None,
                     step_s=None, group_by=None) -> dict[str, Any]:
        cap = "logs.counts"
        step = _int(cap, "step_s", step_s, 60, 1, 86_400 * 31)
        group = _str(cap, "group_by", group_by) or "service"
        fields = _GROUP_BYS.get(group.replace(" ", ""))
        if fields is None:
            raise ToolArgumentError(f"{cap}: 'group_by' {group!r} unknown; use service, level or service,level")
        idx, positions = self._match(cap, service, level, levels, start, end, text)
        times, lines = idx.times, idx.lines
        counts: Counter[tuple] = Counter()
        # Buckets are aligned to multiples of step_s since the epoch, so pages and calls line up.
        if fields == ("service",):
            counts.update((math.floor(times[i] / step), lines[i]["service"]) for i in positions)
        elif fields == ("level",):
            counts.update((math.floor(times[i] / step), lines[i]["level"]) for i in positions)
        elif fields:
            counts.update((math.floor(times[i] / step), lines[i]["service"], lines[i]["level"]) for i in positions)
        else:
            counts.update((math.floor(times[i] / step),) for i in positions)
        buckets = []
        for key in sorted(counts):
            bucket: dict[str, Any] = {"ts": iso(key[0] * step)}
            for name, value in zip(fields, key[1:], strict=True):
                bucket[name] = value
            bucket["count"] = counts[key]
            buckets.append(bucket)
        return {"step_s": step, "buckets": buckets}

    # ------------------------------------------------------------ metrics

    def _metrics_list(self, service=None, start=None, end=None) -> dict[str, Any]:
        cap = "metrics.list"
        service = _str(cap, "service", service)
        t0, t1 = _time(cap, "start", start), _time(cap, "end", end)
        out = []
        for (svc, name), series in sorted(self.world.metrics.items()):
            if service is not None and svc != service:
                continue
            lo, hi = _span(series.times, t0, t1)
            if hi <= lo:
                continue
            out.append({"service": svc, "name": name, "samples": hi - lo,
                        "first_ts": series.points[lo][0], "last_ts": series.points[hi - 1][0]})
        return {"metrics": out}

    def _metrics_series(self, service=None, name=None, start=None, end=None) -> dict[str, Any]:
        cap = "metrics.series"
        service, name = _str(cap, "service", service), _str(cap, "name", name)
        t0, t1 = _time(cap, "start", start), _time(cap, "end", end)
        out = []
        for (svc, metric), series in sorted(self.world.metrics.items()):
            if (service is not None and svc != service) or (name is not None and metric != name):
                continue
            lo, hi = _span(series.times, t0, t1)
            out.append({"service": svc, "name": metric, "points": series.points[lo:hi]})
        return {"series": out}

    # ------------------------------------------------------------ changes, alerts, tickets, chat

    def _window(self, source: str, records: list[dict], cap: str, start: Any, end: Any) -> list[dict]:
        lo, hi = _span(self.world.times[source], _time(cap, "start", start), _time(cap, "end", end))
        return records[lo:hi]

    def _changes_list(self, service=None, kind=None, start=None, end=None) -> dict[str, Any]:
        cap = "changes.list"
        service, kind = _str(cap, "service", service), _str(cap, "kind", kind)
        out = []
        for rec in self._window("changes", self.world.changes, cap, start, end):
            if (service is None or rec.get("service") == service) and (kind is None or rec.get("kind") == kind):
                out.append({"id": rec["id"], "ts": rec["ts"], "kind": rec.get("kind"), "service": rec.get("service"),
                            "author": rec.get("author"), "summary": rec.get("summary"),
                            "details": rec.get("details") or {}})
        return {"changes": out}

    def _alert(self, rec: dict) -> dict[str, Any]:
        return {"id": rec["id"], "ts": rec["ts"], "source": rec.get("source"), "service": rec.get("service"),
                "severity": rec.get("severity"), "title": rec.get("title"), "labels": rec.get("labels") or {}}

    def _alerts_list(self, service=None, start=None, end=None) -> dict[str, Any]:
        service = _str("alerts.list", "service", service)
        recs = self._window("alerts", self.world.alerts, "alerts.list", start, end)
        return {"alerts": [self._alert(r) for r in recs if service is None or r.get("service") == service]}

    def _alerts_get(self, id=None) -> dict[str, Any]:  # noqa: A002 - the contract names it id
        wanted = _str("alerts.get", "id", id)
        if wanted is None:
            raise ToolArgumentError("alerts.get: 'id' is required; pass an alert id such as pd-1234")
        for rec in self.world.alerts:
            if str(rec["id"]) == wanted:
                return self._alert(rec)
        raise NotFoundError(f"alerts.get: no alert {wanted!r} in this world; list them with alerts.list")

    def _tickets_get(self, key=None) -> dict[str, Any]:
        wanted = _str("tickets.get", "key", key)
        if wanted is None:
            raise ToolArgumentError("tickets.get: 'key' is required; pass a ticket key such as PAY-123")
        for rec in self.world.tickets:
            if str(rec["key"]).upper() == wanted.upper():
                return rec
        raise NotFoundError(f"tickets.get: no ticket {wanted!r} in this world; find keys with tickets.search")

    def _tickets_search(self, text=None, labels=None) -> dict[str, Any]:
        cap = "tickets.search"
        needle = (_str(cap, "text", text) or "").lower()
        wanted = set(_str_list(cap, "labels", labels) or [])
        out = []
        for rec in self.world.tickets:
            if wanted and not wanted.issubset(rec.get("labels") or []):
                continue
            if needle:
                hay = " ".join(str(rec.get(k) or "") for k in ("key", "summary", "description")).lower()
                hay += " " + " ".join(map(str, (rec.get("labels") or []) + (rec.get("components") or []))).lower()
                if needle not in hay:
                    continue
            out.append(rec)
        return {"tickets": out}

    def _chat_search(self, text=None, channel=None, start=None, end=None) -> dict[str, Any]:
        cap = "chat.search"
        needle = (_str(cap, "text", text) or "").lower()
        channel = _str(cap, "channel", channel)
        channel = channel.lstrip("#") if channel else None
        out = []
        for rec in self._window("chat", self.world.chat, cap, start, end):
            if channel is not None and str(rec.get("channel", "")).lstrip("#") != channel:
                continue
            if needle and needle not in str(rec.get("text", "")).lower():
                continue
            msg = {"ts": rec["ts"], "channel": rec.get("channel"), "user": rec.get("user"), "text": rec.get("text")}
            if rec.get("thread_ts"):
                msg["thread_ts"] = rec["thread_ts"]
            out.append(msg)
        return {"messages": out}


#: capability -> (method, accepted args). The MCP servers in sandbox/servers.py mirror this table.
_REGISTRY: list[tuple[str, str, tuple[str, ...]]] = [
    ("world.describe", "_describe", ()),
    ("topology.get", "_topology", ()),
    ("logs.search", "_logs_search", ("service", "level", "levels", "start", "end", "text", "limit", "cursor")),
    ("logs.counts", "_logs_counts", ("service", "level", "levels", "text", "start", "end", "step_s", "group_by")),
    ("metrics.list", "_metrics_list", ("service", "start", "end")),
    ("metrics.series", "_metrics_series", ("service", "name", "start", "end")),
    ("changes.list", "_changes_list", ("service", "kind", "start", "end")),
    ("alerts.list", "_alerts_list", ("service", "start", "end")),
    ("alerts.get", "_alerts_get", ("id",)),
    ("tickets.get", "_tickets_get", ("key",)),
    ("tickets.search", "_tickets_search", ("text", "labels")),
    ("chat.search", "_chat_search", ("text", "channel", "start", "end")),
]

#: Which sandbox MCP server answers each capability (docs/contracts.md).
SOURCES: dict[str, tuple[str, ...]] = {
    "observability": ("logs.search", "logs.counts", "metrics.list", "metrics.series", "alerts.list",
                      "alerts.get", "topology.get", "world.describe"),
    "changes": ("changes.list",),
    "tickets": ("tickets.get", "tickets.search"),
    "chat": ("chat.search",),
}
