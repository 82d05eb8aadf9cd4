"""Slack-only settings, read in the Slack bot's composition root (``pm bot``).

These sit beside :class:`store.config.Settings` (tokens, SLACK_API_URL) because only
the bot needs them: who may cancel / re-run, which emoji starts an investigation,
and which channel each domain's investigations go to.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from store.errors import ConfigError


def _split(value: object) -> object:
    # "U1, U2" in the environment → ["U1", "U2"]; lists (from code) pass through.
    if isinstance(value, str):
        return [part.strip() for part in value.replace(";", ",").split(",") if part.strip()]
    return value


class SlackSettings(BaseSettings):
    """PM_SLACK_* environment variables."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    admins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, alias="PM_SLACK_ADMINS",
        description="User ids (U…) and user-group ids (S…) that may cancel / re-run anyone's investigation")
    reaction: str = Field(default="mag", alias="PM_SLACK_REACTION",
                          description="Emoji name (without colons) that starts an investigation")
    domain_channels: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict, validation_alias=AliasChoices("PM_DOMAIN_CHANNELS", "PM_SLACK_DOMAIN_CHANNELS"),
        description="domain=channel pairs, e.g. 'payments=C0PAY,bookings=C0BOOK', or a JSON object "
                    "(PM_SLACK_DOMAIN_CHANNELS is the old name, still read)")
    default_mode: str = Field(default="balanced", alias="PM_SLACK_DEFAULT_MODE")
    oncall_groups: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict, alias="PM_SLACK_ONCALL_GROUPS",
        description="domain=user-group pairs (S… ids), e.g. 'payments=S0PAYONCALL', or a JSON object: members may "
                    "cancel / re-run the domain's investigations (docs/slack.md, who may act)")

    @field_validator("admins", mode="before")
    @classmethod
    def _admins(cls, v: object) -> object:
        return _split(v)

    @field_validator("reaction", mode="before")
    @classmethod
    def _reaction(cls, v: object) -> object:
        return str(v).strip().strip(":") if v is not None else v

    @field_validator("domain_channels", "oncall_groups", mode="before")
    @classmethod
    def _channels(cls, v: object) -> object:
        if not isinstance(v, str):
            return v
        if v.strip().startswith("{"):
            import json

            return json.loads(v)
        pairs = {}
        for item in _split(v):  # type: ignore[union-attr,attr-defined]
            domain, sep, channel = item.partition("=")
            if not sep or not domain.strip() or not channel.strip():
                raise ValueError(f"{item!r} is not domain=channel")
            pairs[domain.strip()] = channel.strip()
        return pairs

    @field_validator("default_mode")
    @classmethod
    def _mode(cls, v: str) -> str:
        if v not in ("fast", "balanced", "deep"):
            raise ValueError("must be fast, balanced or deep")
        return v

    @property
    def admin_users(self) -> frozenset[str]:
        """Admin user ids (U…/W…)."""
        return frozenset(a for a in self.admins if not a.startswith("S"))

    @property
    def admin_groups(self) -> tuple[str, ...]:
        """Admin user-group ids (S…), expanded with usergroups.users.list when checked."""
        return tuple(a for a in self.admins if a.startswith("S"))


def load_slack_settings(**overrides: object) -> SlackSettings:
    """Read PM_SLACK_* from the environment.

    Raises:
        ConfigError: naming the bad variable and what it expects.
    """
    try:
        return SlackSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err.get("loc") else "?"
        info = SlackSettings.model_fields.get(field)
        name = (info.alias if info else None) or field
        raise ConfigError(f"{name}: {err['msg']} (got {err.get('input')!r}); fix or unset it") from None
