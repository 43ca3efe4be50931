"""Where an answer's messages go: chained replies to a mention, or an interaction's responses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import discord

FALLBACK_FILE_LIMIT = discord.utils.DEFAULT_FILE_SIZE_LIMIT_BYTES


def _message_fields(
    *, embed: discord.Embed | None, files: Sequence[discord.File], content: str | None
) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if content is not None:
        fields["content"] = content
    if embed is not None:
        fields["embed"] = embed
    if files:
        fields["files"] = list(files)
    return fields


class ReplyOutlet:
    """Answers a mention: the first message replies to it, each later one to the previous."""

    def __init__(self, origin: discord.Message) -> None:
        self._origin = origin
        self._last: discord.Message | None = None
        guild = origin.guild
        self.file_limit = guild.filesize_limit if guild is not None else FALLBACK_FILE_LIMIT

    async def send(
        self,
        *,
        embed: discord.Embed | None = None,
        files: Sequence[discord.File] = (),
        content: str | None = None,
    ) -> discord.Message:
        target = self._last or self._origin
        self._last = await target.reply(
            mention_author=False, **_message_fields(embed=embed, files=files, content=content)
        )
        return self._last

    async def refuse(self, embed: discord.Embed) -> None:
        await self.send(embed=embed)


class InteractionOutlet:
    """Answers a deferred slash command: the first message fills the deferred response, later
    ones are follow-ups. Valid while the interaction token lives (15 minutes)."""

    def __init__(self, interaction: discord.Interaction[Any]) -> None:
        self._interaction = interaction
        self._original_used = False
        self.file_limit = interaction.filesize_limit

    async def send(
        self,
        *,
        embed: discord.Embed | None = None,
        files: Sequence[discord.File] = (),
        content: str | None = None,
    ) -> discord.Message:
        if not self._original_used:
            self._original_used = True
            fields: dict[str, Any] = {}
            if content is not None:
                fields["content"] = content
            if embed is not None:
                fields["embed"] = embed
            if files:
                fields["attachments"] = list(files)
            return await self._interaction.edit_original_response(**fields)
        return await self._interaction.followup.send(
            wait=True, **_message_fields(embed=embed, files=files, content=content)
        )

    async def refuse(self, embed: discord.Embed) -> None:
        """Swap the public "thinking…" placeholder for a notice only the requester sees."""
        if not self._original_used:
            self._original_used = True
            await self._interaction.delete_original_response()
        await self._interaction.followup.send(embed=embed, ephemeral=True)


class ChannelOutlet(InteractionOutlet):
    """For jobs that may outlive the interaction token: the deferred response becomes a short
    anchor, and progress and result are channel messages under it (the bot token never expires).
    Refusals still go through the interaction, privately."""

    def __init__(self, interaction: discord.Interaction[Any], *, anchor: str) -> None:
        super().__init__(interaction)
        self._anchor_text = anchor
        self._last: discord.Message | None = None

    async def send(
        self,
        *,
        embed: discord.Embed | None = None,
        files: Sequence[discord.File] = (),
        content: str | None = None,
    ) -> discord.Message:
        channel = self._interaction.channel
        if not isinstance(channel, discord.abc.Messageable):
            return await super().send(embed=embed, files=files, content=content)
        if self._last is None:
            self._last = await super().send(content=self._anchor_text)
        fields = _message_fields(embed=embed, files=files, content=content)
        self._last = await channel.send(reference=self._last, mention_author=False, **fields)
        return self._last
