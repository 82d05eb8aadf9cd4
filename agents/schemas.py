"""What each agent submits: pydantic models whose JSON schema is the ``submit`` tool's input.

The loop validates every submission against its model; an invalid one gets one repair round.
Citations (``cites``) name evidence ids from the evidence pack (``E…``) or from tool results the
agent received (``T…``); :mod:`agents.grounding` drops the ones that do not exist.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

CATEGORIES = ("deploy", "config", "feature_flag", "dependency", "capacity", "infra", "data", "code", "unknown")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Hypothesis(_Strict):
    """One root-cause hypothesis."""

    service: str = Field(min_length=1, max_length=120, description="the service at fault")
    change_id: str | None = Field(default=None, max_length=120, description="the change that caused it, if any")
    category: str = Field(default="unknown", max_length=40, description="deploy, config, feature_flag, dependency, "
                                                                          "capacity, infra, data, code or unknown")
    statement: str = Field(min_length=1, max_length=800, description="what happened, in one or two sentences")
    confidence: int = Field(ge=0, le=100, description="how sure you are, 0-100")
    cites: list[str] = Field(default_factory=list, max_length=20,
                             description="evidence ids (E… from the pack, T… from tool results) that support it")


class Finding(_Strict):
    """A fact the agent found beyond the engine's evidence (code, tickets, chat, free text)."""

    statement: str = Field(min_length=1, max_length=600)
    cites: list[str] = Field(default_factory=list, max_length=20)


class InvestigatorOutput(_Strict):
    """The investigator's answer: ranked hypotheses, an explanation and extra findings."""

    summary: str = Field(min_length=1, max_length=1500, description="the explanation for the on-call engineer")
    hypotheses: list[Hypothesis] = Field(default_factory=list, max_length=5, description="most likely first")
    findings: list[Finding] = Field(default_factory=list, max_length=8)


class Check(_Strict):
    """One check of the top hypothesis."""

    claim: str = Field(min_length=1, max_length=400)
    holds: bool
    cites: list[str] = Field(default_factory=list, max_length=20)


class VerifierOutput(_Strict):
    """The verifier's checks of the engine's top candidate."""

    agrees: bool = Field(description="whether the evidence supports the engine's top candidate")
    checks: list[Check] = Field(default_factory=list, max_length=8)
    note: str = Field(default="", max_length=800)


class SummaryOutput(_Strict):
    """The fast tier's explanation of the engine's answer (fast mode)."""

    summary: str = Field(min_length=1, max_length=1200)
    cites: list[str] = Field(default_factory=list, max_length=20)


OUTPUTS: dict[str, type[BaseModel]] = {"investigator": InvestigatorOutput, "verifier": VerifierOutput,
                                       "summary": SummaryOutput}


def submit_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with ``$ref``s inlined (some providers do not follow references)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(defs[node["$ref"].rsplit("/", 1)[-1]])
            return {k: inline(v) for k, v in node.items() if k != "title"}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    return inline(schema)  # type: ignore[no-any-return]
