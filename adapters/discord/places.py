"""Where Discord events come from and answers go: who pays (scopes) and where to answer after a
restart (destinations)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import discord

from core.parts import Destination, Scope

PLATFORM = "discord"
"""The name in destinations and readiness; also the scope platform of guilds."""
GUILD_PLATFORM = PLATFORM
DM_PLATFORM = "discord-dm"


def message_scope(message: discord.Message) -> Scope:
    """Who pays for a message: its guild, or the author in a DM."""
    guild_id = _guild_id(message)
    if guild_id:
        return Scope(GUILD_PLATFORM, str(guild_id))
    return Scope(DM_PLATFORM, str(message.author.id))


def interaction_scope(interaction: discord.Interaction[Any]) -> Scope:
    if interaction.guild_id is not None:
        return Scope(GUILD_PLATFORM, str(interaction.guild_id))
    return Scope(DM_PLATFORM, str(interaction.user.id))


def message_destination(message: discord.Message) -> Destination:
    """Where to answer a mention after a restart: its channel (a thread is a channel), replying to it."""
    return Destination(
        platform=PLATFORM,
        channel=str(message.channel.id),
        message=str(message.id),
        extra={"guild": str(_guild_id(message) or ""), "user": str(message.author.id)},
    )


def _guild_id(message: discord.Message) -> int | None:
    if message.guild is not None:
        return message.guild.id
    guild_id: int | None = getattr(message.channel, "guild_id", None)  # a channel discord.py has not cached
    return guild_id


def interaction_destination(interaction: discord.Interaction[Any], *, message_id: int | None) -> Destination:
    """Where to answer a slash command after a restart: under the message its answer goes under
    (the deferred response), as plain channel messages, since the interaction token expires."""
    return Destination(
        platform=PLATFORM,
        channel=str(interaction.channel_id or ""),
        message=str(message_id) if message_id is not None else None,
        extra={"guild": str(interaction.guild_id or ""), "user": str(interaction.user.id)},
    )


def on_shards(destination: Destination, *, shards: Collection[int], shard_count: int) -> bool:
    """Whether ``destination`` is a Discord one whose guild is on one of ``shards`` of
    ``shard_count``, by Discord's rule ``(guild_id >> 22) % shard_count`` (DMs are on shard 0)."""
    if destination.platform != PLATFORM or shard_count < 1:
        return False
    guild_id = snowflake(destination.extra.get("guild"))
    return ((guild_id >> 22) % shard_count if guild_id else 0) in shards


def snowflake(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None


def policy_channel(channel: object) -> str | None:
    """The channel an access policy names: a thread's parent, else the channel itself."""
    if isinstance(channel, discord.Thread):
        return str(channel.parent_id)
    ident = getattr(channel, "id", None)
    return str(ident) if ident is not None else None


def role_ids(user: discord.User | discord.Member) -> frozenset[str]:
    """A member's role ids (none for a user outside a server)."""
    if isinstance(user, discord.Member):
        return frozenset(str(role.id) for role in user.roles)
    return frozenset()
