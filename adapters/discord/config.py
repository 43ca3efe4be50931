"""The Discord settings (``DISCORD_*``) and the config the adapter runs on, declared once here."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import NoDecode

from adapters.config import FollowUps, PlatformSettings, blank_is_unset, comma_separated

__all__ = ["DiscordConfig", "DiscordSettings", "FollowUps"]


class DiscordSettings(PlatformSettings):
    """What an operator sets for Discord, read from ``DISCORD_<FIELD>`` (README has the reference).

    ``guild_ids`` lists guilds to sync slash commands to directly (instant, for development);
    empty means one global sync. The token is kept out of ``repr``.
    """

    token: str | None = Field(default=None, repr=False)
    api_url: str = "https://discord.com/api/v10"
    gateway_url: str = "wss://gateway.discord.gg/"
    guild_ids: Annotated[tuple[int, ...], NoDecode] = ()
    allow_dms: bool = False
    application_id: str | None = None
    """Only for ``discord-invite``; derived from the token when unset."""
    follow_ups: FollowUps = "thread"
    """``thread``: replies to the bot and messages in a thread it answered in need no mention
    (needs the Message Content intent); ``mention``: only mentions (and DMs) are answered."""

    shard_count: int | None = Field(default=None, ge=1)
    """How many shards the bot has in all; unset: the count Discord recommends (``GET /gateway/bot``)."""
    shard_ids: Annotated[tuple[int, ...], NoDecode] = ()
    """The shards this process runs, e.g. ``0,1``; empty: every shard. Needs ``shard_count``."""

    _blank_token = field_validator("token", mode="before")(blank_is_unset)
    _blank_shard_count = field_validator("shard_count", mode="before")(blank_is_unset)

    @field_validator("shard_ids", mode="before")
    @classmethod
    def _shard_ids_are_numbers(cls, value: object) -> object:
        value = comma_separated(value)
        if isinstance(value, list | tuple):
            for item in value:
                if isinstance(item, str) and not item.isdigit():
                    raise ValueError(f"{item!r} is not a shard id (a number from 0)")
        return value

    @field_validator("shard_ids")
    @classmethod
    def _shard_ids_fit_the_count(cls, value: tuple[int, ...], info: ValidationInfo) -> tuple[int, ...]:
        if not value:
            return value
        count = info.data.get("shard_count")
        if count is None:
            raise ValueError("shard ids need DISCORD_SHARD_COUNT too (every process must agree on the total)")
        if any(shard < 0 or shard >= count for shard in value):
            raise ValueError(f"shard ids run from 0 to {count - 1} with DISCORD_SHARD_COUNT={count}")
        if len(set(value)) != len(value):
            raise ValueError("a shard id is listed twice")
        return tuple(sorted(value))

    @field_validator("guild_ids", mode="before")
    @classmethod
    def _guild_ids_are_numbers(cls, value: object) -> object:
        value = comma_separated(value)
        if isinstance(value, list | tuple):
            for item in value:
                if isinstance(item, str) and not item.isdigit():
                    raise ValueError(f"{item!r} is not a Discord guild id (digits only)")
        return value

    @field_validator("application_id", mode="before")
    @classmethod
    def _application_id_is_a_number(cls, value: object) -> object:
        value = blank_is_unset(value)
        if isinstance(value, str):
            if not value.strip().isdigit():
                raise ValueError("a Discord application id is digits only")
            return value.strip()
        return value


class DiscordConfig(DiscordSettings):
    """Everything the adapter needs: the settings, a token it cannot run without, and timings
    that code and tests may set but operators do not. (How often a message is edited is the
    renderer's business: ``adapters.discord.surface.PACE``.)"""

    token: str = Field(repr=False)
    uploading_notice_bytes: int = 1_000_000
    """Show an "Uploading…" progress line before attaching media at least this large."""
    guild_ready_timeout: float = 2.0
    """How long discord.py waits for the guild list at connect before it reports ready."""


FILE_HOSTS = ("cdn.discordapp.com", "media.discordapp.net")
"""Where Discord serves attached files; attachments are fetched from these hosts only."""
