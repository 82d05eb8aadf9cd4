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
_MASKS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"), "<UUID>"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"), "<TS>"),
    (re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?(?![\w.])"), "<IP>"),
    # host:port, whatever the number of labels ("wpad:80", "github.com:443", "a.b.c:8080").
    (re.compile(_B + r"[A-Za-z][\w-]*(?:\.[\w-]+)*:\d{1,5}(?![\w.:])"), "<HOST>"),
    # Dotted host names with three labels or more and a digit-free TLD ("proxy.cse.cuhk.edu.hk").
    (re.compile(_B + r"(?:[a-z0-9-]+\.){2,}(?:com|net|org|edu|gov|io|cn|hk|uk|de|jp|ru|local|internal)(?![\w.])"),
     "<HOST>"),
    (re.compile(r"\b(?:[0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}\b"), "<MAC>"),
    # IPv6 addresses: at least three hex groups joined by colons, one of them holding a digit.
    (re.compile(r"(?<![\w:])(?=[0-9a-fA-F:]*\d)(?=[0-9a-fA-F:]*(?:::|[a-fA-F]))(?:[0-9a-fA-F]{0,4}:){2,7}"
                r"[0-9a-fA-F]{1,4}(?![\w:])"), "<IP>"),
    # File and URL paths with at least two segments.
    (re.compile(r"(?<![\w/])(?:/[\w.@%+=-]+){2,}/?"), "<PATH>"),
    # Clock times and durations ("00:01:02", "01:02", "12:00:00.123").
    (re.compile(r"(?<![\w:])\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d+)?(?![\w:])"), "<TIME>"),
    # A size with its human form in parentheses is one value ("1234 bytes (1.2 KB)").
    (re.compile(r"\d+(?:\.\d+)? ?(?:bytes|B)\s*\(\d+(?:\.\d+)? ?[KMGT]i?B\)"), "<SIZE> bytes"),
    # "lifetime <1 sec": a bound on a duration is the duration's value.
    (re.compile(r"(?<![\w<])<\d+(?:\.\d+)? ?(?:ns|us|ms|s|sec|secs|min|mins|h)\b"), "<DUR>"),
    (re.compile(r"\b0[xX][0-9a-fA-F]+\b"), "<HEX>"),
    (re.compile(r"\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b"), "<HEX>"),
    (re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:ms|us|µs|ns|s|sec|secs|m|min|h|kb|KB|mb|MB|gb|GB|B|%)(?!\w)"),
     "<NUM>"),
    # Whole numbers only: digits inside a word ("IO80211Family", "wl0") stay, so the word stays whole.
    (re.compile(r"(?<![A-Za-z0-9_.])[-+]?\d+(?:\.\d+)*(?![A-Za-z0-9_])"), "<NUM>"),
    # A comma list of masked values ("10.0.0.1,10.0.0.2") is one value of variable length.
    (re.compile(r"<([A-Z]+)>(?:,\s?<[A-Z]+>)+"), r"<\1>"),
]
_NAMED = re.compile(r"<[A-Z]+>")
# Every named mask reaches drain3 as this one literal token: equal tokens count as similar in drain's
# distance (its own "<*>" does not), and one spelling keeps a masked first token on one tree branch.
_VALUE = "<V>"

# One global setting for every system and for the engine, chosen by bench/logparse.py on the mean GA of all
# 14 Loghub-2k systems, never per dataset.
SIM_TH = 0.7
DEPTH = 5


def mask(message: str) -> str:
    """Cut a message to MAX_MESSAGE_CHARS and replace variable parts by ``<UUID>``, ``<IP>``, ``<NUM>``, ..."""
    text = message[:MAX_MESSAGE_CHARS] if isinstance(message, str) else str(message)[:MAX_MESSAGE_CHARS]
    for pattern, token in _MASKS:
        text = pattern.sub(token, text)
    return " ".join(text.split())


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
    """Feed each distinct masked message to drain3 once, then merge clusters of the same shape.

    Named masks (``<IP>``, ``<NUM>``, ...) reach drain3 as its own wildcard ``<*>`` so a variable in the
    first tokens does not split drain's prefix tree. The merge post-pass is recomputed from the whole tree
    on every call (see merge_clusters), so it needs no state of its own.
    Params: miner — from new_miner(); masked_messages — outputs of mask().
    Returns: masked message → cluster id (the smallest drain id of its merged group). Ids stay valid
    across calls because drain3 keeps a cluster's id when it widens the template.
    """
    raw: dict[str, int] = {}
    for text in masked_messages:
        if text in raw:
            continue
        result = miner.add_log_message(_NAMED.sub(_VALUE, text))
        raw[text] = int(result["cluster_id"])
    representative = merge_clusters(miner)
    return {text: representative.get(cid, cid) for text, cid in raw.items()}


_WILD = re.compile(r"(?:<\*>|<V>|\d+)+")
_ONLY_WILD = re.compile(r"[\W_]*<\*>(?:[\W_]*<\*>)*[\W_]*")


def _shape(template: str) -> tuple[str, ...]:
    """A template's shape: every token holding a wildcard or a digit becomes ``<*>``, runs of them collapse.

    Two templates of one shape differ only in parameter positions, or in how many parameters a run holds
    (a list of ids, "1234 bytes" vs "1234 bytes (1.2 KB)") — the variable-length parameters that Drain's
    equal-token-count rule splits (He et al., ICWS 2017, section III; Jiang et al., ISSTA 2024 list them
    among Drain's main errors).
    """
    out: list[str] = []
    for token in template.split():
        token = _WILD.sub("<*>", token)
        if _ONLY_WILD.fullmatch(token):
            token = "<*>"
        if token == "<*>" and out and out[-1] == "<*>":
            continue
        out.append(token)
    return tuple(out)


def merge_clusters(miner: TemplateMiner) -> dict[int, int]:
    """Group drain clusters of one shape (see _shape) and name each group by its smallest cluster id.

    Params: miner — a drain3 miner. Side effect: the group templates are kept on the miner for
    template_text(). Returns: cluster id → group id, for every cluster of the miner.
    """
    groups: dict[tuple[str, ...], list[int]] = {}
    templates = {cid: cluster.get_template().replace(_VALUE, "<*>")
                 for cid, cluster in miner.drain.id_to_cluster.items()}
    for cid in sorted(templates):
        groups.setdefault(_shape(templates[cid]), []).append(cid)
    representative: dict[int, int] = {}
    merged: dict[int, str] = {}
    for shape, members in groups.items():
        for cid in members:
            representative[cid] = members[0]
        merged[members[0]] = templates[members[0]] if len(members) == 1 else _widen(
            [templates[cid] for cid in members], shape)
    miner.merged_templates = merged
    return representative


def _widen(templates: list[str], shape: tuple[str, ...]) -> str:
    """One template for a merged group: position-wise wildcards when all have one length, else the shape."""
    token_lists = [t.split() for t in templates]
    if len({len(tokens) for tokens in token_lists}) != 1:
        return " ".join(shape)
    return " ".join(column[0] if len(set(column)) == 1 else "<*>" for column in zip(*token_lists, strict=True))


def template_text(miner: TemplateMiner, cluster_id: int) -> str:
    """The current template string of a cluster or merged group (empty when unknown)."""
    merged = getattr(miner, "merged_templates", None)
    if merged and cluster_id in merged:
        return merged[cluster_id]
    cluster = miner.drain.id_to_cluster.get(cluster_id)
    return cluster.get_template().replace(_VALUE, "<*>") if cluster is not None else ""


def template_stats(lines: list[dict[str, Any]], *, miner: TemplateMiner, onset: float,
                   before_span: float, after_span: float, parse_ts) -> list[dict[str, Any]]:
    """Count each (service, template) before and after the onset and classify it.

    Params: lines — log lines (``ts``, ``service``, ``level``, ``message``);
    miner — a drain3 miner; onset — epoch seconds; before_span / after_span —
    seconds covered by the lines on each side (for rates); parse_ts — ISO →
    epoch function.
    Returns: one dict per (service, template): ``id`` (``T<cluster>``),
    ``service``, ``template``, ``level`` (worst seen), ``before``, ``after``,
    ``first_after`` (ISO-free epoch of the first line after onset or None),
    ``kind`` (``new`` | ``burst`` | ``gone`` | ``steady``), ``example``.
    """
    masked = [mask(line.get("message", "")) for line in lines]
    assignment = mine(miner, masked)
    rank = {"DEBUG": 0, "INFO": 1, "WARN": 2, "WARNING": 2, "ERROR": 3, "FATAL": 4, "CRITICAL": 4}
    stats: dict[tuple[str, int], dict[str, Any]] = {}
    for line, text in zip(lines, masked, strict=True):
        ts = parse_ts(line.get("ts"))
        if ts is None:
            continue
        key = (str(line.get("service") or "unknown"), assignment[text])
        entry = stats.get(key)
        if entry is None:
            entry = {"id": f"T{key[1]}", "service": key[0], "level_rank": 0, "before": 0, "after": 0,
                     "first_after": None, "example": str(line.get("message", ""))[:300]}
            stats[key] = entry
        entry["level_rank"] = max(entry["level_rank"], rank.get(str(line.get("level", "")).upper(), 1))
        if ts < onset:
            entry["before"] += 1
        else:
            entry["after"] += 1
            if entry["first_after"] is None or ts < entry["first_after"]:
                entry["first_after"] = ts
    names = {v: k for k, v in rank.items()}
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
