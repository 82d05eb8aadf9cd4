"""The agents' prompt files: one Markdown file per agent, versioned with the code.

Each file starts with YAML front matter (``name``, ``version``, ``tier``, ``output`` — the key of
its submit schema in :data:`agents.schemas.OUTPUTS` —, ``max_steps`` and ``tools``, the
read-only capabilities the agent may call) followed by the agent's instructions. ``_rules.md``
holds the rules every agent gets first (untrusted data, grounding, read-only, submit).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

HERE = Path(__file__).parent


@dataclass(frozen=True)
class AgentSpec:
    """One agent as its prompt file defines it."""

    name: str
    version: int
    tier: str
    output: str
    max_steps: int
    tools: tuple[str, ...]
    instructions: str

    @property
    def system(self) -> str:
        """The system prompt: the common rules, then this agent's instructions."""
        return f"{rules()}\n\n{self.instructions}"


def _split(path: Path) -> tuple[dict, str]:
    text = path.read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        raise ValueError(f"{path.name}: a prompt file starts with '---' front matter")
    head, _, body = text[4:].partition("\n---\n")
    meta = yaml.safe_load(head) or {}
    if not isinstance(meta, dict):
        raise ValueError(f"{path.name}: the front matter must be a mapping")
    return meta, body.strip()


@lru_cache(maxsize=1)
def rules() -> str:
    """The rules every agent's system prompt starts with."""
    return _split(HERE / "_rules.md")[1]


@lru_cache(maxsize=16)
def load(name: str) -> AgentSpec:
    """The agent ``name`` from ``agents/prompts/{name}.md``.

    Raises:
        ValueError: no such file, or its front matter lacks a field (named in the message).
    """
    path = HERE / f"{name}.md"
    if not path.is_file():
        raise ValueError(f"no prompt file for agent {name!r}; add agents/prompts/{name}.md")
    meta, body = _split(path)
    try:
        return AgentSpec(name=str(meta["name"]), version=int(meta["version"]), tier=str(meta["tier"]),
                         output=str(meta["output"]), max_steps=int(meta["max_steps"]),
                         tools=tuple(str(t) for t in meta.get("tools") or []), instructions=body)
    except KeyError as exc:
        raise ValueError(f"{path.name}: front matter lacks {exc.args[0]!r}") from None
