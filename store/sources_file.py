"""``sources.yaml``: which real systems answer which capability (docs/sources.md).

One file lists, per section, the providers a team runs::

    metrics:  [{kind: prometheus, url: http://127.0.0.1:9090}]
    logs:     [{kind: files, path: "/var/log/shop/{service}.jsonl"}, {kind: loki, url: http://loki:3100}]
    alerts:   [{kind: alertmanager, url: http://127.0.0.1:9093}, {kind: events}]
    changes:  [{kind: events}, {kind: github, repos: {checkout: org/checkout}, token: {env: GITHUB_TOKEN}}]
    topology: [{kind: file, path: topology.yaml}]
    tickets:  [{kind: jira}]
    chat:     [{kind: slack}]

This module only reads and validates the file (the product's rooms and the providers share
it); the providers themselves live in ``sources/``. Secrets are given by reference —
``{env: NAME}`` or ``{vault: KEY}`` — never as plain text in the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from store.errors import ConfigError

#: Section -> the capabilities (docs/contracts.md) its providers answer.
SECTIONS: dict[str, tuple[str, ...]] = {
    "metrics": ("metrics.list", "metrics.series"),
    "logs": ("logs.search", "logs.counts"),
    "alerts": ("alerts.list", "alerts.get"),
    "changes": ("changes.list",),
    "topology": ("topology.get",),
    "tickets": ("tickets.get", "tickets.search"),
    "chat": ("chat.search",),
}

#: Provider kind -> the sections it may stand under.
KINDS: dict[str, frozenset[str]] = {
    "prometheus": frozenset({"metrics", "topology"}),
    "files": frozenset({"logs"}),
    "loki": frozenset({"logs"}),
    "alertmanager": frozenset({"alerts"}),
    "events": frozenset({"alerts", "changes"}),
    "github": frozenset({"changes"}),
    "git": frozenset({"changes"}),
    "kubernetes": frozenset({"changes"}),
    "file": frozenset({"topology"}),
    "jira": frozenset({"tickets"}),
    "slack": frozenset({"chat"}),
    "mcp": frozenset(SECTIONS),
}

#: Keys whose value is a secret: they must be references, never plain strings.
SECRET_KEYS = frozenset({"token", "password", "api_key", "bearer", "secret", "bearer_token", "database_url"})

#: Default look-back / look-ahead around the trigger time when no window is given.
DEFAULT_LOOKBACK_S = 3 * 3600.0
DEFAULT_LOOKAHEAD_S = 1800.0


@dataclass(frozen=True)
class SourceEntry:
    """One provider entry: ``sources.yaml``'s ``section[index]``.

    Attributes:
        section: ``metrics``, ``logs``, ...
        index: its position in the section's list.
        kind: the provider kind (``prometheus``, ``files``, ...).
        name: a short name for reports (``name:`` in the file, else the kind).
        settings: the entry's other keys, as written (secrets still as references).
    """

    section: str
    index: int
    kind: str
    name: str
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        """``section.index``, the entry's address (``pm mcp serve --entry logs.0``)."""
        return f"{self.section}.{self.index}"

    @property
    def capabilities(self) -> tuple[str, ...]:
        """The capabilities this entry answers (its section's)."""
        return SECTIONS[self.section]


@dataclass(frozen=True)
class SourcesFile:
    """A parsed ``sources.yaml``.

    Attributes:
        path: the file (None when parsed from a mapping).
        base_dir: relative paths in entries are taken from here (the file's folder).
        entries: every entry, section by section in file order.
        lookback_s, lookahead_s: the window around the trigger time when none is given.
    """

    path: Path | None
    base_dir: Path
    entries: tuple[SourceEntry, ...]
    lookback_s: float = DEFAULT_LOOKBACK_S
    lookahead_s: float = DEFAULT_LOOKAHEAD_S

    def entry(self, ref: str) -> SourceEntry:
        """The entry at ``section.index`` (e.g. ``logs.0``).

        Raises:
            ConfigError: no such entry.
        """
        for e in self.entries:
            if e.ref == ref:
                return e
        known = ", ".join(e.ref for e in self.entries) or "none"
        raise ConfigError(f"{self.path or 'sources'}: no entry {ref!r}; entries are {known}")

    def resolve_path(self, value: str) -> Path:
        """``value`` as a path, relative ones taken from the file's folder."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.base_dir / p


def _duration(value: Any, where: str) -> float:
    """Seconds from ``90``, ``"90s"``, ``"15m"``, ``"3h"`` or ``"1d"``."""
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a duration like 3h or 900, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip().lower()
        units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
        try:
            seconds = float(text[:-1]) * units[text[-1]] if text and text[-1] in units else float(text)
        except ValueError:
            raise ConfigError(f"{where}: expected a duration like 3h, 30m or 900, got {value!r}") from None
    if seconds <= 0:
        raise ConfigError(f"{where}: a duration must be positive, got {value!r}")
    return seconds


def _check_secrets(value: Any, where: str) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if str(k) in SECRET_KEYS and isinstance(v, str) and v:
                raise ConfigError(
                    f"{where}.{k}: secrets are not written in sources.yaml; use {{env: VARIABLE}} or "
                    "{vault: KEY} and put the value there"
                )
            _check_secrets(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_secrets(v, f"{where}[{i}]")


def parse_sources(doc: Any, *, path: Path | None = None, base_dir: Path | None = None) -> SourcesFile:
    """Validate a ``sources.yaml`` mapping.

    Args:
        doc: the loaded YAML.
        path: the file it came from (for messages and relative paths).
        base_dir: where relative paths start (default: the file's folder, else the working directory).

    Returns:
        The :class:`SourcesFile`.

    Raises:
        ConfigError: the first problem found, naming its key and what to write instead.
    """
    label = str(path) if path else "sources"
    if not isinstance(doc, dict):
        raise ConfigError(f"{label}: expected a mapping of sections ({', '.join(SECTIONS)}) to lists of providers")
    entries: list[SourceEntry] = []
    options = doc.get("window") or {}
    if not isinstance(options, dict):
        raise ConfigError(f"{label}: window: expected {{lookback: 3h, lookahead: 30m}}")
    lookback = _duration(options.get("lookback", DEFAULT_LOOKBACK_S), f"{label}: window.lookback")
    lookahead = _duration(options.get("lookahead", DEFAULT_LOOKAHEAD_S), f"{label}: window.lookahead")
    for section, raw_list in doc.items():
        if section == "window":
            continue
        if section not in SECTIONS:
            raise ConfigError(f"{label}: unknown section {section!r}; use {', '.join(SECTIONS)} (and window)")
        if raw_list is None:
            continue
        if isinstance(raw_list, dict):
            raw_list = [raw_list]
        if not isinstance(raw_list, list):
            raise ConfigError(f"{label}: {section}: expected a list of providers, e.g. [{{kind: ...}}]")
        for index, raw in enumerate(raw_list):
            where = f"{label}: {section}[{index}]"
            if not isinstance(raw, dict) or not isinstance(raw.get("kind"), str):
                raise ConfigError(f"{where}: expected a mapping with kind: (one of {', '.join(sorted(KINDS))})")
            kind = raw["kind"]
            if kind not in KINDS:
                raise ConfigError(f"{where}.kind: {kind!r} unknown; use one of {', '.join(sorted(KINDS))}")
            if section not in KINDS[kind]:
                raise ConfigError(
                    f"{where}.kind: a {kind!r} source cannot stand under {section}:; it answers "
                    f"{', '.join(sorted(KINDS[kind]))}"
                )
            _check_secrets(raw, where)
            name = raw.get("name") or kind
            settings = {k: v for k, v in raw.items() if k not in ("kind", "name")}
            entries.append(SourceEntry(section, index, kind, str(name), settings))
    if not entries:
        raise ConfigError(f"{label}: no sources; add at least one section, e.g. metrics: [{{kind: prometheus, url: ...}}]")
    root = base_dir or (path.parent if path else Path.cwd())
    return SourcesFile(path, root.resolve(), tuple(entries), lookback, lookahead)


def load_sources(path: str | Path) -> SourcesFile:
    """Read and validate a ``sources.yaml`` file.

    Raises:
        ConfigError: the file cannot be read, is not YAML, or an entry is wrong (one line saying what to fix).
    """
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the sources file ({exc.strerror}); check PM_SOURCES / --sources") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: invalid YAML ({getattr(exc, 'problem', exc)}); fix the syntax") from None
    return parse_sources(doc, path=p.resolve())


def resolve_secret(value: Any, *, secrets: Any, where: str) -> str | None:
    """The value of a secret reference.

    Args:
        value: None, ``{env: NAME}`` or ``{vault: KEY}``.
        secrets: a ``store.secrets.SecretProvider`` for ``vault`` references (None: Vault not configured).
        where: the key's address, for messages.

    Returns:
        The secret, or None when ``value`` is None.

    Raises:
        ConfigError: an unknown reference form, or the referenced secret is not set.
    """
    import os

    if value is None:
        return None
    if not isinstance(value, dict) or len(value) != 1:
        raise ConfigError(f"{where}: expected {{env: VARIABLE}} or {{vault: KEY}}")
    (how, name), = value.items()
    if how == "env":
        found = os.environ.get(str(name)) or None
        if found is None:
            raise ConfigError(f"{where}: environment variable {name} is not set; export it")
        return found
    if how == "vault":
        if secrets is None:
            raise ConfigError(f"{where}: refers to Vault but VAULT_ADDR is not set; set VAULT_ADDR and VAULT_TOKEN")
        found = secrets.get(str(name))
        if found is None:
            raise ConfigError(f"{where}: Vault holds no key {name!r}; add it to the production-master secret")
        return str(found)
    raise ConfigError(f"{where}: unknown secret reference {how!r}; use env or vault")
