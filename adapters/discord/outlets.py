"""Where an answer's messages go: replies to a mention, an interaction's responses, a stored destination."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import discord

log = logging.getLogger(__name__)

FALLBACK_FILE_LIMIT = discord.utils.DEFAULT_FILE_SIZE_LIMIT_BYTES

OnSent = Callable[[discord.Message], Awaitable[None]]
"""Told about every public message an outlet posts (to link it to its conversation)."""


async def _noted(message: discord.Message, on_sent: OnSent | None) -> discord.Message:
    if on_sent is not None:
        await on_sent(message)
    return message


def _message_fields(
    *,
    embed: discord.Embed | None,
    files: Sequence[discord.File],
    content: str | None,
    view: discord.ui.View | None = None,
) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if view is not None:
        fields["view"] = view
    if content is not None:
        fields["content"] = content
    if embed is not None:
        fields["embed"] = embed
    if files:
        fields["files"] = list(files)
    return fields


class ReplyOutlet:
    """Answers a mention: the first message replies to it, each later one to the previous."""

    def __init__(self, origin: discord.Message, *, on_sent: OnSent | None = None) -> None:
        self._origin = origin
        self._on_sent = on_sent
        self._last: discord.Message | None = None
        guild = origin.guild
        self.file_limit = guild.filesize_limit if guild is not None else FALLBACK_FILE_LIMIT

    async def send(
        self,
        *,
        embed: discord.Embed | None = None,
        files: Sequence[discord.File] = (),
        content: str | None = None,
        view: discord.ui.View | None = None,
    ) -> discord.Message:
        target = self._last or self._origin
        self._last = await target.reply(
            mention_author=False, **_message_fields(embed=embed, files=files, content=content, view=view)
        )
        return await _noted(self._last, self._on_sent)

    async def refuse(self, embed: discord.Embed) -> None:
        await self.send(embed=embed)


class InteractionOutlet:
    """Answers a deferred slash command: the first message fills the deferred response, later
    ones are follow-ups. Valid while the interaction token lives (15 minutes)."""

    def __init__(
        self,
        interaction: discord.Interaction[Any],
        *,
        on_sent: OnSent | None = None,
        heading: str | None = None,
    ) -> None:
        self._interaction = interaction
        self._on_sent = on_sent
        self._heading = heading
        """A line above the answer, e.g. who pressed the button that asked for it."""
        self._original_used = False
        self.file_limit = interaction.filesize_limit

    async def send(
        self,
        *,
        embed: discord.Embed | None = None,
        files: Sequence[discord.File] = (),
        content: str | None = None,
        view: discord.ui.View | None = None,
    ) -> discord.Message:
        if not self._original_used:
            self._original_used = True
            fields: dict[str, Any] = {}
            if content is None:
                content = self._heading
            if content is not None:
                fields["content"] = content
            if embed is not None:
                fields["embed"] = embed
            if files:
                fields["attachments"] = list(files)
            if view is not None:
                fields["view"] = view
            message: discord.Message = await self._interaction.edit_original_response(**fields)
        else:
            message = await self._interaction.followup.send(
                wait=True, **_message_fields(embed=embed, files=files, content=content, view=view)
            )
        return await _noted(message, self._on_sent)

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

    def __init__(
        self, interaction: discord.Interaction[Any], *, anchor: str, on_sent: OnSent | None = None
    ) -> None:
        super().__init__(interaction, on_sent=on_sent)
        self._anchor_text = anchor
        self._last: discord.Message | None = None

    async def send(
        self,
        *,
        embed: discord.Embed | None = None,
        files: Sequence[discord.File] = (),
        content: str | None = None,
        view: discord.ui.View | None = None,
    ) -> discord.Message:
        channel = self._interaction.channel
        if not isinstance(channel, discord.abc.Messageable):
            return await super().send(embed=embed, files=files, content=content, view=view)
        if self._last is None:
            self._last = await super().send(content=self._anchor_text)
        fields = _message_fields(embed=embed, files=files, content=content, view=view)
        self._last = await channel.send(reference=self._last, mention_author=False, **fields)
        return await _noted(self._last, self._on_sent)


class DestinationOutlet:
    """Delivers a job resumed after a restart, when any interaction token is long dead: channel
    messages sent with the bot token. The first replies to the message that asked if it is still
    there; otherwise it mentions the requester, so they notice. Later ones reply to the previous."""

    def __init__(
        self,
        channel: discord.PartialMessageable,
        *,
        origin_id: int | None,
        requester_id: int | None,
        file_limit: int,
        on_sent: OnSent | None = None,
    ) -> None:
        self._channel = channel
        self._on_sent = on_sent
        self._origin_id = origin_id
        self._requester_id = requester_id
        self._last: discord.Message | None = None
        self.file_limit = file_limit

    async def send(
        self,
        *,
        embed: discord.Embed | None = None,
        files: Sequence[discord.File] = (),
        content: str | None = None,
        view: discord.ui.View | None = None,
    ) -> discord.Message:
        fields = _message_fields(embed=embed, files=files, content=content, view=view)
        if self._last is None:
            origin = await self._origin()
            if origin is not None:
                self._last = await origin.reply(mention_author=False, **fields)
            elif self._requester_id is not None:
                mention = f"<@{self._requester_id}>"
                fields["content"] = f"{mention} {content}" if content else mention
                pinged = discord.AllowedMentions(users=[discord.Object(id=self._requester_id)])
                self._last = await self._channel.send(allowed_mentions=pinged, **fields)
            else:
                self._last = await self._channel.send(**fields)
        else:
            self._last = await self._last.reply(mention_author=False, **fields)
        return await _noted(self._last, self._on_sent)

    async def refuse(self, embed: discord.Embed) -> None:
        """There is nowhere private to say it after a restart, so it goes where the answer would."""
        await self.send(embed=embed)

    async def _origin(self) -> discord.Message | None:
        if self._origin_id is None:
            return None
        try:
            return await self._channel.fetch_message(self._origin_id)
        except discord.HTTPException as error:
            # Deleted, unreadable or unknown: a plain message with a mention still gets there.
            log.info("message %s to reply to is unavailable (%s)", self._origin_id, error)
            return None
