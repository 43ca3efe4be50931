"""Settings every platform adapter shares; each platform's model adds its own ``PLATFORM_*`` ones."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

BudgetAudience = Literal["admins", "everyone"]
FollowUps = Literal["mention", "thread"]
"""``thread``: follow-ups where the bot answered need no mention; ``mention``: they do."""


class PlatformSettings(BaseModel):
    """The base of ``DiscordSettings`` and ``SlackSettings``: plain, validated, frozen values.

    These models are the one declaration of each platform setting (name, type, default). The
    composition root reads them from the environment (``bot/settings.py`` adds the prefix);
    tests and code build them directly, which reads nothing from the environment.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    budget_visible_to: BudgetAudience = Field(default="admins", validation_alias="budget_visible_to")
    """``everyone`` lets every member view (never change) ``/budget``. One setting for every
    platform: the alias keeps the ``DISCORD_``/``SLACK_`` prefix off ``BUDGET_VISIBLE_TO``."""


def blank_is_unset(value: object) -> object:
    """``TOKEN=`` in a ``.env`` means "not set", like leaving the line out."""
    if isinstance(value, str) and not value.strip():
        return None
    return value


def comma_separated(value: object) -> object:
    """``"a, b"`` → ``["a", "b"]``; other values pass through to the field's own validation."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value
