"""Logs from files on disk: ``logs: [{kind: files, path: "/var/log/shop/{service}.jsonl"}]``.

One path pattern per entry. ``{service}`` in it stands for the service name (services are
discovered by globbing the pattern); a path without it is one file holding many services, the
service then coming from a field of each line (or the ``service:`` setting). Lines are JSON
(the world format's ``ts, level, message``, other field names by ``fields:``) or text matched
by a ``pattern:`` regex with named groups.

Each file is parsed once into a time-sorted index, cached by (size, mtime), so the handful of
calls of one investigation do not re-read it; the query itself (filters, paging, counting) is
the reference implementation's (:class:`sandbox.tools.WorldTools`) over those indexes, so the
answers match the sandbox's exactly. Reading is bounded per query by ``max_lines`` and
``max_bytes``: a file larger than what is left of ``max_bytes`` is entered at the window's start
by a binary search over its bytes (files are written in time order), and an answer whose window
was not read whole says so in ``truncated``.
"""

from __future__ import annotations

import glob
import gzip
import json
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.args import opt_str as _arg_str
from sandbox.args import opt_time as _arg_time
from sandbox.tools import WorldTools
from sandbox.world import LEVEL_RANK, MAX_MESSAGE_CHARS, LogIndex, World
from sources.base import Provider
from sources.errors import SourceError
from sources.logshape import cut_message, dig, epoch_of, iso_ts, normalise_level, sample
from store.errors import ConfigError

#: Default bounds of one query.
DEFAULT_MAX_LINES = 2_000_000
DEFAULT_MAX_BYTES = 256 << 20  # about max_lines lines of a typical JSON log, held in memory while parsed
#: A line like ``2026-02-20T08:00:01Z ERROR message...`` (also ``[ERROR]``, ``ERROR:``, a space for T, ms).
DEFAULT_PATTERN = (
    r"^(?P<ts>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?)\s+"
    r"\[?(?P<level>[A-Za-z]+)\]?:?\s+(?P<message>.*)$"
)
_FIELD_NAMES = ("ts", "level", "message", "service", "host", "trace_id")
_WORLD_KEYS = frozenset(_FIELD_NAMES)
_ROTATED = re.compile(r"\.(\d+)(\.gz)?$")
#: How many parsed files / merged views to keep (a few services' files and their unions).
_CACHE_FILES = 256
_CACHE_VIEWS = 8


@dataclass
class _FileIndex:
    """One file's parsed lines, sorted by time, and what reading it left out."""

    times: list[float]
    lines: list[dict[str, Any]]
    good: int = 0
    bad: int = 0
    bad_sample: str = ""
    bad_lineno: int = 0
    #: the window actually read: lines before ``from_ts`` / from ``until_ts`` on were not read
    from_ts: float = float("-inf")
    until_ts: float = float("inf")
    cut: str = ""  # the bound that cut the read short: max_lines or max_bytes ("" when whole)
    bytes_read: int = 0
    key: tuple[Any, ...] = ()
    clean_end: bool = True  # the bytes read ended with a newline (a growing file can be read on from there)
    tail: bytes = b""  # the last bytes read: a file truncated and rewritten since does not end the same there


@dataclass
class _Budget:
    lines: int
    bytes: int
    cuts: list[tuple[str, str]] = field(default_factory=list)  # (bound, file name)


class FileLogsProvider(Provider):
    """``logs.search`` and ``logs.counts`` over log files.

    Settings (``logs[i]``): ``path`` (required; ``{service}`` pattern or one file), ``format``
    (``json`` | ``text``), ``fields`` (``{ts, level, message, service, host, trace_id}`` -> the
    file's field names; dotted names reach nested objects), ``pattern`` (text: a regex with named
    groups ``ts``, ``message`` and optionally ``level``, ``service``, ``host``, ``trace_id``; a line
    that does not match continues the previous record's message unless ``multiline: false``),
    ``service`` (the service of a one-file path whose lines do not name one), ``rotated`` (also
    read ``name.1``, ``name.2.gz``, ...), ``max_lines``, ``max_bytes``.

    Raises:
        ConfigError: a setting is missing or malformed.
    """

    KIND = "files"
    CAPABILITIES = ("logs.search", "logs.counts")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        raw = self.opt_str("path", required=True, example='"/var/log/shop/{service}.jsonl"') or ""
        self.pattern_path = str(self.sources.resolve_path(raw))
        self.per_service = "{service}" in self.pattern_path
        self.format = (self.opt_str("format", "json") or "json").lower()
        if self.format not in ("json", "text"):
            raise ConfigError(f"{self.where}.format: {self.format!r} unknown; use json or text")
        fields = self.opt_map("fields")
        unknown = sorted(set(fields) - set(_FIELD_NAMES))
        if unknown:
            raise ConfigError(f"{self.where}.fields: unknown key(s) {', '.join(unknown)}; use {', '.join(_FIELD_NAMES)}")
        self.fields = {name: str(fields.get(name) or name) for name in _FIELD_NAMES}
        self.default_service = self.opt_str("service")
        self.rotated = bool(self.opt("rotated", False))
        self.multiline = self.format == "text" and bool(self.opt("multiline", True))
        self.max_lines = self.opt_int("max_lines", DEFAULT_MAX_LINES)
        self.max_bytes = self.opt_int("max_bytes", DEFAULT_MAX_BYTES)
        self.regex: re.Pattern[str] | None = None
        if self.format == "text":
            text = self.opt_str("pattern", DEFAULT_PATTERN) or DEFAULT_PATTERN
            try:
                self.regex = re.compile(text)
            except re.error as exc:
                raise ConfigError(f"{self.where}.pattern: not a regex ({exc}); use named groups ts, level, message") from None
            missing = {"ts", "message"} - set(self.regex.groupindex)
            if missing:
                raise ConfigError(f"{self.where}.pattern: needs the named group(s) {', '.join(sorted(missing))}, "
                                  "e.g. (?P<ts>\\S+) (?P<level>\\w+) (?P<message>.*)")
        elif self.opt("pattern") is not None:
            raise ConfigError(f"{self.where}.pattern: only for format: text; add format: text or drop pattern:")
        self._service_re = self._compile_service_re() if self.per_service else None
        self._files: OrderedDict[tuple[Any, ...], _FileIndex] = OrderedDict()
        self._views: OrderedDict[tuple[Any, ...], WorldTools] = OrderedDict()
        self._latest: dict[str, _FileIndex] = {}  # path -> its last whole index, to read a growing file on
        self._lock = threading.Lock()

    @property
    def label(self) -> str:
        return f"files {self.pattern_path}"

    # ------------------------------------------------------------ capabilities

    def logs_search(self, service: Any = None, level: Any = None, levels: Any = None, start: Any = None,
                    end: Any = None, text: Any = None, limit: Any = None, cursor: Any = None) -> dict[str, Any]:
        """The contract's ``logs.search`` (see :class:`sandbox.tools.WorldTools`), plus ``truncated`` when bounded."""
        view, note = self._view("logs.search", service, start, end)
        result = view.call("logs.search", service=service, level=level, levels=levels, start=start, end=end,
                           text=text, limit=limit, cursor=cursor)
        if note:
            result["truncated"] = note
        return result

    def logs_counts(self, service: Any = None, level: Any = None, levels: Any = None, text: Any = None,
                    start: Any = None, end: Any = None, step_s: Any = None, group_by: Any = None) -> dict[str, Any]:
        """The contract's ``logs.counts`` (buckets aligned to multiples of ``step_s``), plus ``truncated``."""
        view, note = self._view("logs.counts", service, start, end)
        result = view.call("logs.counts", service=service, level=level, levels=levels, text=text, start=start,
                           end=end, step_s=step_s, group_by=group_by)
        if note:
            result["truncated"] = note
        return result

    def check(self) -> str:
        """Find the files and parse them; say how many files, services and lines (and lines skipped)."""
        files = self.files()
        budget = _Budget(self.max_lines, self.max_bytes)
        indexes = [(svc, self._index(path, svc, None, None, budget)) for svc, path in files]
        services = {line["service"] for _, idx in indexes for line in idx.lines}
        lines = sum(len(idx.lines) for _, idx in indexes)
        bad = sum(idx.bad for _, idx in indexes)
        skipped = f" ({bad} lines skipped: not {self.format})" if bad else ""
        cut = f"; {self._note(budget)}" if budget.cuts else ""
        return f"{len(files)} files, {len(services)} services, {lines} lines{skipped}{cut}"

    # ------------------------------------------------------------ files

    def _compile_service_re(self) -> re.Pattern[str]:
        parts = self.pattern_path.split("{service}")
        out = re.escape(parts[0])
        for i, part in enumerate(parts[1:]):
            out += ("(?P<service>[^/]+?)" if i == 0 else "(?P=service)") + re.escape(part)
        return re.compile(out + r"\Z")

    def files(self, service: str | None = None) -> list[tuple[str | None, Path]]:
        """The files to read: ``[(service or None, path)]``, rotated ones first (oldest first).

        Raises:
            SourceError: the folder or the file does not exist, or no file matches the pattern.
        """
        if not self.per_service:
            path = Path(self.pattern_path)
            if not path.is_file():
                raise SourceError(f"{self.label}: no such file; check {self.where}.path (relative paths start at the "
                                  "folder of sources.yaml)")
            return [(None, p) for p in self._with_rotated(path)]
        prefix = self.pattern_path.split("{service}")[0]
        literal_dir = Path(prefix[:prefix.rfind("/") + 1] or ".")
        if not literal_dir.is_dir():
            raise SourceError(f"{self.label}: folder {literal_dir} does not exist; check {self.where}.path")
        if service is not None:
            if "/" in service or service in ("", ".", ".."):
                return []
            wanted = Path(self.pattern_path.replace("{service}", service))
            return [(service, p) for p in self._with_rotated(wanted)] if wanted.is_file() else []
        out: list[tuple[str | None, Path]] = []
        parts = self.pattern_path.split("{service}")
        found = sorted(glob.glob("*".join(glob.escape(p) for p in parts)))
        assert self._service_re is not None
        for name in found:
            m = self._service_re.match(name)
            if m and Path(name).is_file():
                out.extend((m.group("service"), p) for p in self._with_rotated(Path(name)))
        if not out:
            raise SourceError(f"{self.label}: no file matches the pattern in {literal_dir}; check {self.where}.path "
                              "({service} stands for the service name)")
        return out

    def _with_rotated(self, path: Path) -> list[Path]:
        if not self.rotated:
            return [path]
        older = []
        for name in glob.glob(glob.escape(str(path)) + ".*"):
            m = _ROTATED.search(name[len(str(path)):])
            if m and m.start() == 0:
                older.append((int(m.group(1)), Path(name)))
        return [p for _, p in sorted(older, key=lambda item: -item[0])] + [path]

    # ------------------------------------------------------------ the merged view

    def _note(self, budget: _Budget) -> str:
        """One ``truncated`` note for the files a query could not read whole."""
        bounds = sorted({bound for bound, _ in budget.cuts})
        names = sorted({name for _, name in budget.cuts})
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        limits = " and ".join(f"{b} {getattr(self, b)}" for b in bounds)
        return (f"{self.label}: read only part of {shown} ({limits} per query); narrow the window or raise "
                f"{self.where}.{bounds[0]}")

    def _view(self, cap: str, service: Any, start: Any, end: Any) -> tuple[WorldTools, str]:
        """The reference query engine over the files this query needs, and the bound notes."""
        svc = _arg_str(cap, "service", service)
        t0, t1 = _arg_time(cap, "start", start), _arg_time(cap, "end", end)
        files = self.files(svc if self.per_service else None)
        budget = _Budget(self.max_lines, self.max_bytes)
        indexes = [(s, p, self._index(p, s, t0, t1, budget)) for s, p in files]
        key = tuple(idx.key for _, _, idx in indexes)
        with self._lock:
            view = self._views.get(key)
            if view is not None:
                self._views.move_to_end(key)
                return view, self._note(budget) if budget.cuts else ""
        view = WorldTools(_world([idx for _, _, idx in indexes], self.pattern_path))
        with self._lock:
            self._views[key] = view
            while len(self._views) > _CACHE_VIEWS:
                self._views.popitem(last=False)
        return view, self._note(budget) if budget.cuts else ""

    # ------------------------------------------------------------ one file

    def _index(self, path: Path, service: str | None, t0: float | None, t1: float | None,
               budget: _Budget) -> _FileIndex:
        """The parsed index of ``path`` for a query over ``[t0, t1)``, charged to ``budget``."""
        try:
            st = path.stat()
        except OSError as exc:
            raise SourceError(f"{self.label}: cannot read {path} ({exc.strerror}); check {self.where}.path") from None
        compressed = path.suffix == ".gz"
        stamp = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
        if st.st_size <= budget.bytes or compressed:
            full_key = (*stamp, "full")
            idx = self._cached(full_key)
            if idx is None and not compressed:
                idx = self._grown(path, service, st, budget)
                if idx is not None:
                    idx.key = full_key
                    self._store(idx)
            if idx is None or len(idx.lines) > budget.lines:
                cut_key = (*stamp, "cut", budget.bytes, budget.lines)
                idx = self._cached(cut_key)
                if idx is None:
                    idx = self._parse(path, service, 0, budget.bytes, budget.lines, compressed)
                    # a whole file serves every later query with room for it
                    idx.key = cut_key if idx.cut else full_key
                    self._store(idx)
        else:
            offset = self._seek(path, t0, st.st_size, service) if t0 is not None else max(0, st.st_size - budget.bytes)
            key = (*stamp, offset, budget.bytes, budget.lines)
            idx = self._cached(key)
            if idx is None:
                idx = self._parse(path, service, offset, budget.bytes, budget.lines, False)
                idx.key = key
                self._store(idx)
        self._judge(path, idx)
        budget.lines = max(0, budget.lines - len(idx.lines))
        budget.bytes = max(0, budget.bytes - idx.bytes_read)
        lo = t0 if t0 is not None else float("-inf")
        hi = t1 if t1 is not None else float("inf")
        if idx.cut and (lo < idx.from_ts or hi > idx.until_ts):
            budget.cuts.append((idx.cut, path.name))
        return idx

    def _cached(self, key: tuple[Any, ...]) -> _FileIndex | None:
        with self._lock:
            idx = self._files.get(key)
            if idx is not None:
                self._files.move_to_end(key)
            return idx

    def _grown(self, path: Path, service: str | None, st: Any, budget: _Budget) -> _FileIndex | None:
        """The index of a file that only grew since it was last read whole: the old lines plus the new ones.

        Live logs are appended to between the calls of one investigation; reading only what was
        added keeps those calls cheap. None when the file was replaced, truncated or last read cut.
        """
        with self._lock:
            prev = self._latest.get(str(path))
        if (prev is None or prev.cut or not prev.clean_end or prev.key[1] != st.st_ino
                or not prev.bytes_read < st.st_size <= budget.bytes or len(prev.lines) > budget.lines):
            return None
        tail = self._parse(path, service, prev.bytes_read, budget.bytes - prev.bytes_read,
                           budget.lines - len(prev.lines), False, aligned=True)
        if tail.cut or self._bytes_at(path, prev.bytes_read - len(prev.tail), len(prev.tail)) != prev.tail:
            return None
        times, lines = prev.times + tail.times, prev.lines + tail.lines
        if tail.times and prev.times and tail.times[0] < prev.times[-1]:
            order = sorted(range(len(times)), key=times.__getitem__)
            times, lines = [times[i] for i in order], [lines[i] for i in order]
        merged = _FileIndex(times, lines, good=prev.good + tail.good, bad=prev.bad + tail.bad,
                            bytes_read=prev.bytes_read + tail.bytes_read, clean_end=tail.clean_end,
                            tail=(prev.tail + tail.tail)[-64:])
        merged.bad_sample, merged.bad_lineno = (prev.bad_sample, prev.bad_lineno) if prev.bad else (
            tail.bad_sample, prev.good + prev.bad + tail.bad_lineno)
        return merged

    def _bytes_at(self, path: Path, offset: int, size: int) -> bytes:
        try:
            with path.open("rb") as fh:
                fh.seek(offset)
                return fh.read(size)
        except OSError:
            return b""

    def _store(self, idx: _FileIndex) -> None:
        with self._lock:
            self._files[idx.key] = idx
            if idx.key[-1] == "full" and not idx.cut:
                self._latest[idx.key[0]] = idx
            while len(self._files) > _CACHE_FILES:
                self._files.popitem(last=False)

    def _judge(self, path: Path, idx: _FileIndex) -> None:
        """Refuse a file whose lines mostly fail to parse: the format or pattern does not match it."""
        if idx.bad and idx.bad > idx.good:
            how = (f"the pattern {self.regex.pattern[:80]!r}" if self.regex is not None
                   else f"JSON lines with fields {', '.join(f'{k}={v!r}' for k, v in self.fields.items() if k in ('ts', 'message'))}")
            fix = "set pattern:" if self.regex is not None else "set format: text, or fields: (e.g. ts: \"@timestamp\")"
            raise SourceError(
                f"{self.label}: {idx.bad} of {idx.bad + idx.good} lines of {path.name} do not match {how} "
                f"(line {idx.bad_lineno}: {idx.bad_sample}); {fix} in {self.where}"
            )

    def _seek(self, path: Path, t0: float, size: int, service: str | None) -> int:
        """The byte offset of the first line at or after ``t0``, by bisecting the file (written in time order)."""
        try:
            with path.open("rb") as fh:
                lo, hi = 0, size
                while hi - lo > 4096:
                    mid = (lo + hi) // 2
                    fh.seek(mid)
                    fh.readline()  # land on the next whole line
                    when = None
                    for _ in range(8):  # a few lines may not parse (stack traces): look a little further
                        raw = fh.readline()
                        if not raw:
                            break
                        rec = self._record(raw.decode("utf-8", "replace"), service)
                        if rec is not None:
                            when = rec[0]
                            break
                    if when is None or when >= t0:
                        hi = mid
                    else:
                        lo = mid
                return lo
        except OSError as exc:
            raise SourceError(f"{self.label}: cannot read {path} ({exc.strerror}); check {self.where}.path") from None

    def _parse(self, path: Path, service: str | None, offset: int, max_bytes: int, max_lines: int,
               compressed: bool, *, aligned: bool = False) -> _FileIndex:
        """Read and parse a file (from ``offset``, at most ``max_bytes`` / ``max_lines``) into a sorted index.

        ``aligned``: ``offset`` is known to start a line (else the first piece is dropped as a line's tail).
        """
        try:
            if compressed:
                with gzip.open(path, "rb") as gz:
                    data = gz.read(max_bytes + 1)
            else:
                with path.open("rb") as fh:
                    fh.seek(offset)
                    data = fh.read(max_bytes + 1)
        except (OSError, EOFError) as exc:
            raise SourceError(f"{self.label}: cannot read {path} ({getattr(exc, 'strerror', None) or exc}); "
                              f"check {self.where}.path") from None
        more_bytes = len(data) > max_bytes
        if more_bytes:
            data = data[:max_bytes]
            data = data[:data.rfind(b"\n") + 1]  # whole lines only
        raw_lines = data.decode("utf-8", "replace").removeprefix("\ufeff").split("\n")
        if offset > 0 and raw_lines and not aligned:
            raw_lines = raw_lines[1:]  # the first piece may be the tail of a line begun before the offset
        idx = _FileIndex([], [], bytes_read=len(data), clean_end=not data or data.endswith(b"\n"), tail=data[-64:])
        records = self._records_fast(raw_lines, max_lines) if self.regex is None else None
        times: list[float] = []
        lines: list[dict[str, Any]] = []
        taken = 0
        stopped_at: int | None = None
        for lineno, raw in enumerate(raw_lines, start=1):
            if not raw.strip():
                continue
            if taken >= max_lines:
                stopped_at = lineno
                break
            taken += 1
            rec = records[taken - 1] if records is not None else None
            parsed = self._normalise(rec, service) if isinstance(rec, dict) else self._record(raw, service)
            if parsed is None:
                if self.multiline and lines:
                    # a stack trace or any other line that does not start a record continues the last one
                    last = lines[-1]
                    if len(last["message"]) < MAX_MESSAGE_CHARS:
                        last["message"] = cut_message(last["message"] + "\n" + raw.rstrip("\r"))
                    continue
                idx.bad += 1
                if not idx.bad_sample:
                    idx.bad_sample, idx.bad_lineno = sample(raw), lineno
                continue
            times.append(parsed[0])
            lines.append(parsed[1])
        idx.good = len(lines)
        if times and any(times[i] > times[i + 1] for i in range(len(times) - 1)):
            order = sorted(range(len(times)), key=times.__getitem__)
            times = [times[i] for i in order]
            lines = [lines[i] for i in order]
        idx.times, idx.lines = times, lines
        if offset > 0 and times and not aligned:
            idx.from_ts = times[0]
        if stopped_at is not None or more_bytes:
            idx.until_ts = times[-1] if times else float("-inf")
            idx.cut = "max_lines" if stopped_at is not None else "max_bytes"
        elif offset > 0 and not aligned:
            idx.cut = "max_bytes"  # entered at the window's start: what lies before it was not read
        return idx

    def _records_fast(self, raw_lines: list[str], max_lines: int) -> list[Any] | None:
        """Every non-blank line decoded by one ``json.loads`` (the common, all-JSON case), else None."""
        nonblank = [r for r in raw_lines if r.strip()][:max_lines]
        try:
            records = json.loads("[" + ",".join(nonblank) + "]")
        except ValueError:
            return [_loads(r) for r in nonblank]
        return records if len(records) == len(nonblank) else [_loads(r) for r in nonblank]

    def _record(self, raw: str, service: str | None) -> tuple[float, dict[str, Any]] | None:
        """One raw line parsed: (epoch, contract line) or None when it does not parse."""
        if self.regex is None:
            rec = _loads(raw)
            return self._normalise(rec, service) if isinstance(rec, dict) else None
        m = self.regex.match(raw.rstrip("\r"))
        if m is None:
            return None
        groups = {k: v for k, v in m.groupdict().items() if v is not None}
        return self._shape(groups.get("ts"), groups.get("level"), groups.get("message"), groups.get("service"),
                           groups.get("host"), groups.get("trace_id"), service)

    def _normalise(self, rec: dict[str, Any], service: str | None) -> tuple[float, dict[str, Any]] | None:
        """A decoded JSON line in the contract's shape (reusing the dict when it already is one)."""
        f = self.fields
        ts = rec.get(f["ts"]) if f["ts"] in rec else dig(rec, f["ts"])
        if (
            f["ts"] == "ts" and f["level"] == "level" and f["message"] == "message"
            and isinstance(ts, str) and ts.endswith("Z") and rec.get("level") in LEVEL_RANK
            and type(rec.get("message")) is str and len(rec["message"]) <= MAX_MESSAGE_CHARS
            and _WORLD_KEYS.issuperset(rec)
            and (service is None or rec.get("service") in (None, service))
            and (service is not None or type(rec.get("service")) is str)
        ):
            try:
                when = epoch_of(ts)
            except ValueError:
                return None
            if service is not None:
                rec["service"] = service
            return when, rec  # the world format's own shape: keep the dict (and its key order)
        return self._shape(ts, _pick(rec, f["level"]), _pick(rec, f["message"]), _pick(rec, f["service"]),
                           _pick(rec, f["host"]), _pick(rec, f["trace_id"]), service, has_message=f["message"] in rec
                           or dig(rec, f["message"]) is not None)

    def _shape(self, ts: Any, level: Any, message: Any, line_service: Any, host: Any, trace_id: Any,
               service: str | None, *, has_message: bool = True) -> tuple[float, dict[str, Any]] | None:
        if ts is None or not has_message:
            return None
        try:
            when = epoch_of(ts)
        except (ValueError, TypeError, OverflowError):
            return None
        svc = service or (str(line_service) if line_service not in (None, "") else self.default_service)
        if not svc:
            return None
        out: dict[str, Any] = {"ts": iso_ts(ts, when), "service": svc, "level": normalise_level(level),
                               "message": cut_message(message)}
        if host not in (None, ""):
            out["host"] = str(host)
        if trace_id not in (None, ""):
            out["trace_id"] = str(trace_id)
        return when, out


def _loads(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _pick(rec: dict[str, Any], name: str) -> Any:
    return rec[name] if name in rec else dig(rec, name) if "." in name else None


def _world(indexes: list[_FileIndex], where: str) -> World:
    """An in-memory world holding only the given files' lines (global and per-service indexes)."""
    if len(indexes) == 1:
        times, lines = indexes[0].times, indexes[0].lines
    else:
        times = [t for idx in indexes for t in idx.times]
        lines = [line for idx in indexes for line in idx.lines]
        if any(times[i] > times[i + 1] for i in range(len(times) - 1)):
            # stable: on equal times, files keep their listed order (rotated ones first)
            order = sorted(range(len(times)), key=times.__getitem__)
            times = [times[i] for i in order]
            lines = [lines[i] for i in order]
    by_service: dict[str, LogIndex] = {}
    for t, line in zip(times, lines, strict=True):
        idx = by_service.get(line["service"])
        if idx is None:
            idx = by_service[line["service"]] = LogIndex([], [])
        idx.times.append(t)
        idx.lines.append(line)
    world = World(path=Path(where), name="files", window={}, trigger={}, domain=None)
    world.logs, world.logs_by_service = LogIndex(times, lines), by_service
    return world

