"""docs/operations.md against what it documents: a runbook for every alert, a row for every setting."""

from __future__ import annotations

import re

import yaml
from pydantic import AliasChoices

from bot.http.settings import HttpSettings
from bot.slack.settings import SlackSettings
from store.config import Settings
from tests.deploy.tools import ROOT, RULES

DOC = ROOT / "docs" / "operations.md"
PRODUCT = ("bot", "commands", "pipeline", "agents", "publishers", "store", "sources")


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    return {github_anchor(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", text, re.MULTILINE)}


def env_table(text: str) -> list[list[str]]:
    """The rows of the table under "## Environment variables" (header and separator left out)."""
    part = text.split("## Environment variables\n", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in part.splitlines() if ln.startswith("|")]
    return [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in lines[2:]]


def setting_names() -> list[tuple[str, ...]]:
    """Every setting's environment names (first: the name to document; others: older spellings)."""
    out = []
    for cls in (Settings, HttpSettings, SlackSettings):
        for field in cls.model_fields.values():
            if isinstance(field.validation_alias, AliasChoices):
                out.append(tuple(str(c) for c in field.validation_alias.choices))
            else:
                assert field.alias, f"{cls.__name__} has a setting without an environment name"
                out.append((field.alias,))
    return out


def test_every_alert_links_to_a_runbook_section_that_exists():
    text = DOC.read_text(encoding="utf-8")
    found = anchors(text)
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r]
    assert len(rules) >= 11
    for rule in rules:
        name = rule["alert"]
        assert rule["annotations"]["runbook"] == f"docs/operations.md#{name.lower()}", name
        assert name.lower() in found, f"docs/operations.md has no section '### {name}' (anchor #{name.lower()})"
    runbooks = text.split("## Runbooks\n", 1)[1]
    documented = re.findall(r"^### (\S+)$", runbooks, re.MULTILINE)
    assert sorted(documented) == sorted(r["alert"] for r in rules), "one runbook per alert, no stale ones"


def test_internal_links_resolve():
    text = DOC.read_text(encoding="utf-8")
    found = anchors(text)
    links = re.findall(r"\]\(#([^)]+)\)", text)
    assert links
    assert [a for a in links if a not in found] == []


def test_every_setting_has_one_row_in_the_env_table():
    text = DOC.read_text(encoding="utf-8")
    rows = env_table(text)
    first = [re.fullmatch(r"`([A-Z0-9_]+)`", r[0]).group(1) for r in rows]  # type: ignore[union-attr]
    assert len(first) == len(set(first)), "one row per variable"
    table = "\n".join(" | ".join(r) for r in rows)
    for names in setting_names():
        assert names[0] in first, f"{names[0]} has no row in docs/operations.md's environment table"
        for other in names[1:]:
            assert other in table, f"{other} (another name of {names[0]}) is not mentioned in the table"


def test_variables_read_directly_from_the_environment_are_documented():
    text = DOC.read_text(encoding="utf-8")
    read = set()
    for room in PRODUCT:
        for path in (ROOT / room).rglob("*.py"):
            read |= set(re.findall(r"environ(?:\.get\(|\[)\"([A-Z][A-Z0-9_]+)\"", path.read_text(encoding="utf-8")))
    assert {"PM_DEBUG", "PROMETHEUS_MULTIPROC_DIR"} <= read  # the scan finds what it should
    assert sorted(v for v in read if f"`{v}`" not in text) == []
