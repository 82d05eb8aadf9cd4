"""Log templates: one global drain3 configuration, masking, and template statistics.

Messages are masked by our own regular expressions first (uuids, hex ids, IPs,
durations, numbers, ...) and deduplicated, so drain3 (He et al., "Drain: An
Online Log Parsing Approach with Fixed Depth Tree", ICWS 2017) sees each
distinct masked message once: 200k lines with a few hundred shapes mine in
milliseconds. The same configuration serves the engine and bench/logparse.py.
"""

from __future__ import annotations

import base64
import re
import zlib
from collections.abc import Iterable
from typing import Any, Protocol

import jsonpickle
from drain3 import TemplateMiner
from drain3.template_miner_config import TemplateMinerConfig

# Messages longer than this are cut before mining: a 1 MB line must not cost
# a megabyte of regex work, and its head carries the shape anyway.
MAX_MESSAGE_CHARS = 2000

# Generic pre-processing in the spirit of the Loghub benchmarks' per-line regexes (Zhu et al., "Tools and
# Benchmarks for Automated Log Parsing", ICSE-SEIP 2019; Jiang et al., ISSTA 2024) but one list for every
# system. Order matters: compound shapes (sizes, host:port, lists) before the generic number mask.
_B = r"(?<![\w.:/<>-])"  # a token boundary on the left: the match must not continue a word, path or mask
_MASKS: list[tuple[re.Pattern[str], str, str]] = [
    (re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"), "<UUID>", "-"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"), "<TS>", ":"),
    # ctime / syslog dates ("Sun Jul 10 03:04:05 2005", "Jul 10 03:04:05"): a month name is a value too.
    (re.compile(r"\b(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun),? )?(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +"
                r"\d{1,2},? \d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?: \d{4})?\b"), "<TS>", ":"),
    (re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?(?![\w.])"), "<IP>", "."),
    # host:port, whatever the number of labels ("wpad:80", "github.com:443", "a.b.c:8080").
    (re.compile(_B + r"(?=[\w.-]*[A-Za-z][\w.-]*:\d)[\w-]+(?:\.[\w-]+)*:\d{1,5}(?![\w.:])"), "<HOST>", ":"),
    # Dotted host names with three labels or more and a digit-free TLD ("proxy.cse.cuhk.edu.hk").
    (re.compile(_B + r"(?:[a-z0-9-]+\.){2,}(?:com|net|org|edu|gov|io|cn|hk|uk|de|jp|ru|local|internal)(?![\w.])"),
     "<HOST>", "."),
    (re.compile(r"\b(?:[0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}\b"), "<MAC>", ":"),
    # IPv6 addresses: at least three hex groups joined by colons, one of them holding a digit.
    (re.compile(r"(?<![\w:])(?=[0-9a-fA-F:]*\d)(?=[0-9a-fA-F:]*(?:::|[a-fA-F]))(?:[0-9a-fA-F]{0,4}:){2,7}"
                r"[0-9a-fA-F]{1,4}(?![\w:])"), "<IP>", ":"),
    # File and URL paths with at least two segments.
    (re.compile(r"(?<![\w/])(?:/[\w.@%+=-]+){2,}/?"), "<PATH>", "/"),
    # Clock times and durations ("00:01:02", "01:02", "12:00:00.123").
    (re.compile(r"(?<![\w:])\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d+)?(?![\w:])"), "<TIME>", ":"),
    # A size with its human form in parentheses is one value ("1234 bytes (1.2 KB)").
    (re.compile(r"\d+(?:\.\d+)? ?(?:bytes|B)\s*\(\d+(?:\.\d+)? ?[KMGT]i?B\)"), "<SIZE> bytes", "("),
    # "lifetime <1 sec": a bound on a duration is the duration's value.
    (re.compile(r"(?<![\w<])<\d+(?:\.\d+)? ?(?:ns|us|ms|s|sec|secs|min|mins|h)\b"), "<DUR>", "<"),
    (re.compile(r"\b0[xX][0-9a-fA-F]+\b"), "<HEX>", "0"),
    (re.compile(r"\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b"), "<HEX>", ""),
    (re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:ms|us|µs|ns|s|sec|secs|m|min|h|kb|KB|mb|MB|gb|GB|B|%)(?!\w)"),
     "<NUM>", ""),
    # Whole numbers only: digits inside a word ("IO80211Family", "wl0") stay, so the word stays whole.
    (re.compile(r"(?<![A-Za-z0-9_.])[-+]?\d+(?:\.\d+)*(?![A-Za-z0-9_])"), "<NUM>", ""),
    # A comma list of masked values ("10.0.0.1,10.0.0.2") is one value of variable length.
    (re.compile(r"<([A-Z]+)>(?:,\s?<[A-Z]+>)+"), r"<\1>", ","),
]
# A code location is constant text, not a variable: "TravelServiceImpl#457", "c.s.FooImpl#37",
# "[dispatcherServlet]#175" (an identifier joined to a line number by '#') and "Handler.java:42" (a source
# file joined by ':'). Masking its number would merge a log statement with its neighbours, and a statement
# that stops being reached (a code path skipped after a fault) would vanish inside a template still logged.
_SOURCE_EXT = ("java", "scala", "kt", "groovy", "py", "go", "rb", "js", "ts", "cs", "php", "rs", "swift",
               "cpp", "cc", "c", "h")
_CODE_LOC = re.compile(r"(?:(?<=[A-Za-z_$\]])#|(?:" + "|".join(f"(?<=\\.{ext})" for ext in _SOURCE_EXT)
                       + r"):)\d+(?![\w.:])")
_NAMED = re.compile(r"<[A-Z]+>")
# Every named mask reaches drain3 as this one literal token: equal tokens count as similar in drain's
# distance (its own "<*>" does not), and one spelling keeps a masked first token on one tree branch.
_VALUE = "<V>"

# One global setting for every system and for the engine, chosen by bench/logparse.py on the mean GA of all
# 14 Loghub-2k systems, never per dataset.
SIM_TH = 0.7
DEPTH = 5
# A drain wildcard with at most this many distinct plain words is constant text (see split_alternatives).
SPLIT_MAX_VALUES = 3
# Ids of split alternatives live above drain's own counter (which starts at 1 and counts up).
_SPLIT_BASE = 1 << 31


def mask(message: str) -> str:
    """Cut a message to MAX_MESSAGE_CHARS and replace variable parts by ``<UUID>``, ``<IP>``, ``<NUM>``, ..."""
    text = message[:MAX_MESSAGE_CHARS] if isinstance(message, str) else str(message)[:MAX_MESSAGE_CHARS]
    kept: list[str] = []
    if "#" in text or ":" in text:
        text = _CODE_LOC.sub(lambda m: _protect(kept, m.group(0)), text)
    for pattern, token, needle in _MASKS:
        # Skip a pattern whose required character is absent: a substring test is far cheaper than a scan.
        if needle in text:
            text = pattern.sub(token, text)
    if kept:
        text = _PROTECTED.sub(lambda m: kept[ord(m.group(1)) - ord("a")], text)
    return " ".join(text.split())


# A protected code location waits in the text as NUL + one letter + NUL: no mask matches letters between
# control characters, and 26 locations per message are plenty (later ones are masked as usual).
_PROTECTED = re.compile("\x00([a-z])\x00")


def _protect(kept: list[str], location: str) -> str:
    if len(kept) >= 26:
        return location
    kept.append(location)
    return f"\x00{chr(ord('a') + len(kept) - 1)}\x00"


def miner_config() -> TemplateMinerConfig:
    """The one global drain3 configuration (no masking inside drain3: mask() runs first)."""
    config = TemplateMinerConfig()
    config.drain_sim_th = SIM_TH
    config.drain_depth = DEPTH
    config.drain_max_children = 100
    config.parametrize_numeric_tokens = True
    config.snapshot_compress_state = True
    config.masking_instructions = []
    return config


class TemplateState(Protocol):
    """Where a domain's miner is persisted between runs."""

    def load(self) -> bytes | None: ...

    def save(self, data: bytes) -> None: ...


def new_miner(state: bytes | None = None) -> TemplateMiner:
    """Build a miner, restoring a saved drain tree when ``state`` holds one.

    Params: state — bytes from dump_miner(), or None. A corrupt state is
    ignored (a fresh tree is better than no investigation).
    Returns: a drain3 TemplateMiner.
    """
    miner = TemplateMiner(config=miner_config())
    if state:
        try:
            restored = jsonpickle.loads(zlib.decompress(base64.b64decode(state)), keys=True)
            if len(restored.id_to_cluster) > 0 and isinstance(next(iter(restored.id_to_cluster.keys())), str):
                restored.id_to_cluster = {int(k): v for k, v in restored.id_to_cluster.items()}
            miner.drain = restored
        except Exception:  # noqa: BLE001 — any decoding failure means "start fresh"
            pass
    return miner


def dump_miner(miner: TemplateMiner) -> bytes:
    """Serialise the miner's drain tree for a TemplateState."""
    raw = jsonpickle.dumps(miner.drain, keys=True).encode("utf-8")
    return base64.b64encode(zlib.compress(raw))


def mine(miner: TemplateMiner, masked_messages: Iterable[str]) -> dict[str, int]:
    """Mine the distinct masked messages: drain3, then split constant alternatives, then merge same shapes.

    1. Each distinct message goes to drain3 once; named masks (``<IP>``, ``<NUM>``, ...) reach it as one
       literal token (see _VALUE).
    2. split_alternatives: a drain wildcard whose values in this call are a few unmasked words
       ("VM Started" / "VM Paused", "HTTPS" / "SOCKS5") is a constant, not a parameter.
    3. merge_shapes: groups whose templates differ only in parameters, or in the length of a parameter run,
       are one template.
    Params: miner — from new_miner(); masked_messages — outputs of mask().
    Returns: masked message → template id. A drain cluster keeps its drain id across calls when it is not
    split; a split alternative gets a stable id derived from its cluster and words (>= 2**31). Steps 2 and 3
    are recomputed on every call, so they need no saved state.
    """
    raw: dict[str, int] = {}
    for text in masked_messages:
        if text in raw:
            continue
        result = miner.add_log_message(_NAMED.sub(_VALUE, text))
        raw[text] = int(result["cluster_id"])
    units = {cid: cluster.get_template().replace(_VALUE, "<*>")
             for cid, cluster in miner.drain.id_to_cluster.items()}
    members: dict[int, list[str]] = {}
    for text, cid in raw.items():
        members.setdefault(cid, []).append(text)
    unit_of: dict[str, int] = {}
    for cid, texts in members.items():
        parts = split_alternatives(cid, units.get(cid, ""), texts)
        if len(parts) > 1:
            units.pop(cid, None)
        for unit_id, (template, part_texts) in parts.items():
            units[unit_id] = template
            for text in part_texts:
                unit_of[text] = unit_id
    representative, miner.merged_templates = merge_shapes(units)
    return {text: representative[unit_of[text]] for text in raw}


def split_alternatives(cluster_id: int, template: str, texts: list[str]) -> dict[int, tuple[str, list[str]]]:
    """Split a drain cluster on wildcard positions that hold only a few distinct unmasked words.

    Drain generalises any differing token once the similarity threshold is met, so "VM Started" and
    "VM Paused" become "VM <*>" (over-merging, the most common Drain error in Jiang et al., ISSTA 2024).
    Real parameters are masked (numbers, ids, addresses) or take many values (user names); a position
    with at most SPLIT_MAX_VALUES plain words is treated as part of the constant text.
    Params: cluster_id — drain id; template — its template (``<*>`` wildcards); texts — member messages
    (masked, one token count). Returns: unit id → (template, texts); ``{cluster_id: ...}`` when not split.
    """
    tokens = template.split()
    rows = [text.split() for text in texts]
    positions = []
    for index, token in enumerate(tokens):
        if token != "<*>":
            continue
        values = {row[index] for row in rows if index < len(row)}
        if 1 < len(values) <= SPLIT_MAX_VALUES and not any("<" in value for value in values):
            positions.append(index)
        elif len(values) > 1 and all(_CODE_LOC.search(value) for value in values):
            positions.append(index)  # code locations are constant text, however many there are
    if not positions:
        return {cluster_id: (template, texts)}
    parts: dict[int, tuple[str, list[str]]] = {}
    for text, row in zip(texts, rows, strict=True):
        words = tuple(row[i] if i < len(row) else "" for i in positions)
        unit_id = _SPLIT_BASE | (zlib.crc32(f"{cluster_id}|{' '.join(words)}".encode()) & 0x7FFFFFFF)
        if unit_id not in parts:
            filled = list(tokens)
            for i, word in zip(positions, words, strict=True):
                filled[i] = word
            parts[unit_id] = (" ".join(filled), [])
        parts[unit_id][1].append(text)
    return parts


_WILD = re.compile(r"(?:<\*>|<V>|\d+)+")
_ONLY_WILD = re.compile(r"[\W_]*<\*>(?:[\W_]*<\*>)*[\W_]*")


def _shape(template: str) -> tuple[str, ...]:
    """A template's shape: wildcards and digit runs become ``<*>``, tokens of only those collapse to one.

    Two templates of one shape differ only in parameter positions, or in how many parameters a run holds
    (a list of ids, "1234 bytes" vs "1234 bytes (1.2 KB)") — the variable-length parameters that Drain's
    equal-token-count rule splits (He et al., ICWS 2017, section III; Jiang et al., ISSTA 2024 list them
    among Drain's main errors).
    """
    out: list[str] = []
    for token in template.split():
        if _CODE_LOC.search(token):
            # A code location names one log statement: two statements never share a shape.
            out.append(token)
            continue
        token = _WILD.sub("<*>", token)
        if _ONLY_WILD.fullmatch(token):
            token = "<*>"
        if token == "<*>" and out and out[-1] == "<*>":
            continue
        out.append(token)
    return tuple(out)


def merge_shapes(units: dict[int, str]) -> tuple[dict[int, int], dict[int, str]]:
    """Group templates of one shape (see _shape); each group is named by its smallest id.

    Params: units — template id → template. Returns: (id → group id for every unit, group id → template).
    """
    groups: dict[tuple[str, ...], list[int]] = {}
    for unit_id in sorted(units):
        groups.setdefault(_shape(units[unit_id]), []).append(unit_id)
    representative: dict[int, int] = {}
    merged: dict[int, str] = {}
    for ids in groups.values():
        for unit_id in ids:
            representative[unit_id] = ids[0]
        merged[ids[0]] = units[ids[0]] if len(ids) == 1 else _widen([units[i] for i in ids])
    return representative, merged


def _widen(templates: list[str]) -> str:
    """One template for a merged group: position-wise wildcards when all have one length, else the first
    template with its runs of wildcards collapsed."""
    token_lists = [t.split() for t in templates]
    if len({len(tokens) for tokens in token_lists}) != 1:
        # Keep the first template's words (the shape would also hide digits inside words like "en0").
        out: list[str] = []
        for token in token_lists[0]:
            if not (token == "<*>" and out and out[-1] == "<*>"):
                out.append(token)
        return " ".join(out)
    return " ".join(column[0] if len(set(column)) == 1 else "<*>" for column in zip(*token_lists, strict=True))


def template_text(miner: TemplateMiner, cluster_id: int) -> str:
    """The current template string of a template id from mine() (empty when unknown)."""
    merged = getattr(miner, "merged_templates", None)
    if merged and cluster_id in merged:
        return merged[cluster_id]
    cluster = miner.drain.id_to_cluster.get(cluster_id)
    return cluster.get_template().replace(_VALUE, "<*>") if cluster is not None else ""


def template_stats(lines: list[dict[str, Any]], *, miner: TemplateMiner, onset: float,
                   before_span: float, after_span: float, parse_ts,
                   recent_from: float | None = None, recent_to: float | None = None,
                   contrast: tuple[float, float, float] | None = None) -> list[dict[str, Any]]:
    """Count each (service, template) before and after the onset and classify it.

    Params: lines — log lines (``ts``, ``service``, ``level``, ``message``);
    miner — a drain3 miner; onset — epoch seconds; before_span / after_span —
    seconds covered by the lines on each side (for rates); parse_ts — ISO →
    epoch function; recent_from / recent_to — a second split (epoch s; default
    the onset) and the end of its recent side (default none), counted as
    ``earlier`` / ``recent``.
    Returns: one dict per (service, template): ``id`` (``T<cluster>``),
    ``service``, ``template``, ``level`` (worst seen), ``before``, ``after``,
    ``first_after`` (ISO-free epoch of the first line after onset or None),
    ``kind`` (``new`` | ``burst`` | ``gone`` | ``steady``), ``example``,
    ``earlier`` / ``recent`` (counts before / since recent_from); with ``contrast``
    (before_from, split, stop) epoch s also ``c_prior`` (lines before split),
    ``c_before`` (in [before_from, split)), ``c_after`` (in [split, stop]).
    """
    split = onset if recent_from is None else recent_from
    # Lines repeat their messages (about half of 40,000 on a large world): mask each text once.
    shapes: dict[str, str] = {}
    masked = []
    for line in lines:
        message = line.get("message", "")
        if type(message) is not str:
            masked.append(mask(message))
            continue
        shape = shapes.get(message)
        if shape is None:
            shape = shapes[message] = mask(message)
        masked.append(shape)
    assignment = mine(miner, masked)
    rank = {"TRACE": 0, "DEBUG": 0, "INFO": 1, "WARN": 2, "WARNING": 2, "ERR": 3, "ERROR": 3, "FATAL": 4,
            "CRITICAL": 4}
    stats: dict[tuple[str, int], dict[str, Any]] = {}
    for line, text in zip(lines, masked, strict=True):
        ts = parse_ts(line.get("ts"))
        if ts is None:
            continue
        key = (str(line.get("service") or "unknown"), assignment[text])
        entry = stats.get(key)
        if entry is None:
            entry = {"id": f"T{key[1]}", "service": key[0], "level_rank": 0, "before": 0, "after": 0,
                     "earlier": 0, "recent": 0, "first_after": None, "example": str(line.get("message", ""))[:300],
                     "c_prior": 0, "c_before": 0, "c_after": 0}
            stats[key] = entry
        if contrast is not None:
            if ts < contrast[1]:
                entry["c_prior"] += 1
                if ts >= contrast[0]:
                    entry["c_before"] += 1
            elif ts <= contrast[2]:
                entry["c_after"] += 1
        entry["level_rank"] = max(entry["level_rank"], rank.get(str(line.get("level", "")).upper(), 1))
        if ts < split:
            entry["earlier"] += 1
        elif recent_to is None or ts < recent_to:
            entry["recent"] += 1
        if ts < onset:
            entry["before"] += 1
        else:
            entry["after"] += 1
            if entry["first_after"] is None or ts < entry["first_after"]:
                entry["first_after"] = ts
    # Report the canonical name of each rank (aliases such as CRITICAL or WARNING would otherwise
    # slip past every "WARN/ERROR/FATAL" test downstream).
    names = {0: "DEBUG", 1: "INFO", 2: "WARN", 3: "ERROR", 4: "FATAL"}
    out = []
    for (_, cluster_id), entry in stats.items():
        entry["template"] = template_text(miner, cluster_id)[:300]
        entry["level"] = names[entry.pop("level_rank")]
        entry["kind"] = classify(entry["before"], entry["after"], before_span, after_span)
        out.append(entry)
    out.sort(key=lambda e: (-e["after"], e["id"]))
    return out


def classify(before: int, after: int, before_span: float, after_span: float) -> str:
    """Call a template ``new``, ``burst``, ``gone`` or ``steady`` from its counts on each side of the onset.

    Rates are compared per second; a template is ``gone`` only when its
    earlier rate would predict at least 4 lines after the onset (so rare
    lines are not called gone by chance: P(0 | Poisson 4) < 2%).
    """
    before_rate = before / max(before_span, 60.0)
    after_rate = after / max(after_span, 60.0)
    if before == 0 and after >= 2:
        return "new"
    if after >= 5 and after_rate >= 5 * before_rate:
        return "burst"
    if after == 0 and before_rate * after_span >= 4:
        return "gone"
    return "steady"
