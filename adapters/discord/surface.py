"""Discord as a render Surface: one embed per message, media as attachments; the renderer paces it."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Sequence
from typing import Protocol

import discord

from adapters.discord.buttons import media_view
from core.clock import Clock
from core.pacing import Pace
from core.parts import Audio, Image, Media
from core.render import FAILURE_PREFIX, STREAMING_MARKER, MessageState, View

log = logging.getLogger(__name__)

EMBED_DESCRIPTION_LIMIT = 4096
EMBED_TITLE_LIMIT = 256
MAX_CHARS = 4000
"""Text per message: an embed description holds 4096; the rest leaves room for the marker."""
PACE = Pace(burst=2, per_second=0.55)
"""Edits per channel: Discord allows 5 per 5 s per channel (the route's bucket, which discord.py
waits out once spent). A burst of 2 plus 0.55 a second makes at most 4.75 in any 5 s, leaving
room for calls that arrive closer together than they were sent; one of the two is kept for the
edit someone waits for, so the final text does not wait."""
FINAL_EDIT_ATTEMPTS = 4
UPLOADING = "Uploading…"

COLOURS: dict[MessageState, discord.Colour] = {
    MessageState.STREAMING: discord.Colour.orange(),
    MessageState.DONE: discord.Colour.dark_green(),
    MessageState.FAILED: discord.Colour.red(),
}


class Outlet(Protocol):
    """Where one answer's messages go: replies to a mention, or an interaction's responses.

    ``send`` creates the next message of the answer (chained after the previous one) and returns
    it; later changes edit that message. ``refuse`` shows a refusal that arrived before anything
    else, privately where the platform allows it.
    """

    file_limit: int

    async def send(
        self,
        *,
        embed: discord.Embed | None = None,
        files: Sequence[discord.File] = (),
        content: str | None = None,
        view: discord.ui.View | None = None,
    ) -> discord.Message: ...

    async def refuse(self, embed: discord.Embed) -> None: ...


def view_embed(view: View) -> discord.Embed:
    """The embed for a text view: body plus marker, and the progress line as footer or body."""
    text = view.text
    if view.state is MessageState.STREAMING and text:
        text += STREAMING_MARKER
    embed = discord.Embed(colour=COLOURS[view.state])
    if text:
        embed.description = text[:EMBED_DESCRIPTION_LIMIT]
        if view.status:
            embed.set_footer(text=f"⏳ {view.status}")
    elif view.status:
        embed.description = f"⏳ {view.status}"
    else:
        embed.description = "…"
    return embed


def safe_filename(name: str, *, fallback: str) -> str:
    """A name Discord accepts in ``attachment://`` links: ASCII letters, digits, ``.-_`` only."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
    return cleaned[:100] or fallback


def media_files(media: Media) -> list[tuple[str, bytes]]:
    """The attachments for ``media``: the file itself, and an audio track's cover art."""
    name = safe_filename(media.filename, fallback="image.png" if isinstance(media, Image) else "audio.bin")
    files = [(name, media.data)]
    if isinstance(media, Audio) and media.cover is not None:
        cover = "cover-" + safe_filename(media.cover.filename, fallback="cover.png")
        files.append((cover, media.cover.data))
    return files


def media_embed(media: Media, names: Sequence[str]) -> discord.Embed:
    """Image shown inside the embed with its prompt; audio with title, lyrics and cover art."""
    embed = discord.Embed(colour=COLOURS[MessageState.DONE])
    if isinstance(media, Image):
        if media.title:
            embed.title = media.title[:EMBED_TITLE_LIMIT]
        embed.description = f"**Prompt:** {media.prompt}"[:EMBED_DESCRIPTION_LIMIT]
        embed.set_image(url=f"attachment://{names[0]}")
        return embed
    embed.title = f"🎵 {media.title}"[:EMBED_TITLE_LIMIT]
    body = media.lyrics or (f"**Prompt:** {media.prompt}" if media.prompt else "")
    if body:
        embed.description = body[:EMBED_DESCRIPTION_LIMIT]
    if media.duration_s is not None:
        minutes, seconds = divmod(round(media.duration_s), 60)
        embed.set_footer(text=f"{minutes}:{seconds:02d}")
    if len(names) > 1:
        embed.set_thumbnail(url=f"attachment://{names[1]}")
    return embed


def too_large(media: Media, size: int, limit: int) -> str:
    kind = "image" if isinstance(media, Image) else "song"
    return (
        f"{FAILURE_PREFIX}The {kind} is {file_size(size)}, over the {file_size(limit)} upload limit "
        "here, so I can't attach it."
    )


def file_size(size: int) -> str:
    """``8.5 MB`` or ``900 KB``: what a person reads in Discord's own upload messages."""
    if size >= 2**20 // 10:
        return f"{size / 2**20:.1f} MB"
    return f"{max(1, round(size / 1024))} KB"


def discord_files(files: Sequence[tuple[str, bytes]]) -> list[discord.File]:
    return [discord.File(io.BytesIO(data), filename=name) for name, data in files]


class DiscordSurface:
    """Renders one answer into Discord messages through an ``Outlet``: platform calls only.

    The renderer decides when each call goes (``pace`` per channel, and the client's request pacer
    for the global limit). discord.py's own limiter retries 429s; a final edit that still fails is
    retried here and, if the message is gone, posted anew, so the last text always lands.
    """

    max_chars = MAX_CHARS
    pace = PACE

    def __init__(self, outlet: Outlet, *, clock: Clock, uploading_notice_bytes: int) -> None:
        self._outlet = outlet
        self._clock = clock
        self._uploading_notice_bytes = uploading_notice_bytes
        self._current: discord.Message | None = None
        self._started = False

    async def post(self, view: View) -> None:
        first = not self._started
        self._started = True
        if first and view.state is MessageState.FAILED:
            self._current = None
            await self._outlet.refuse(view_embed(view))
            return
        await self._send(embed=view_embed(view))

    async def edit(self, view: View) -> None:
        await self._edit(view_embed(view), final=view.state is not MessageState.STREAMING)

    async def upload(self, media: Media, *, replaces_progress: bool) -> None:
        self._started = True
        files = media_files(media)
        size = sum(len(data) for _, data in files)
        in_place = replaces_progress and self._current is not None
        if size > self._outlet.file_limit:
            notice = view_embed(View(too_large(media, size, self._outlet.file_limit), MessageState.FAILED))
            await (self._edit(notice, final=True) if in_place else self._send(embed=notice))
        elif in_place:
            if size >= self._uploading_notice_bytes:
                await self._edit(view_embed(View("", MessageState.STREAMING, UPLOADING)), final=False)
            embed = media_embed(media, [name for name, _ in files])
            await self._edit(embed, final=True, files=files, buttons=media.actions)
        else:
            embed = media_embed(media, [name for name, _ in files])
            await self._send(embed=embed, files=files, buttons=media.actions)
        self._current = None

    async def attach_text(self, text: str, *, filename: str) -> None:
        """Send ``text`` as a markdown file after the answer, so it can be copied whole."""
        data = text.encode()
        if len(data) > self._outlet.file_limit:
            return
        await self._send(content="📄 The full text as a file:", files=[(filename, data)])

    async def _send(
        self,
        *,
        embed: discord.Embed | None = None,
        files: Sequence[tuple[str, bytes]] = (),
        content: str | None = None,
        buttons: Sequence[str] = (),
    ) -> None:
        self._current = await self._outlet.send(
            embed=embed, files=discord_files(files), content=content, view=media_view(buttons)
        )

    async def _edit(
        self,
        embed: discord.Embed,
        *,
        final: bool,
        files: Sequence[tuple[str, bytes]] = (),
        buttons: Sequence[str] = (),
    ) -> None:
        message = self._current
        if message is None:
            return
        attempts = FINAL_EDIT_ATTEMPTS if final else 1
        for attempt in range(1, attempts + 1):
            try:
                if files:
                    self._current = await message.edit(
                        embed=embed, attachments=discord_files(files), view=media_view(buttons)
                    )
                else:
                    self._current = await message.edit(embed=embed)
                break
            except discord.NotFound:
                log.warning("message %s is gone", message.id)
                if final:
                    await self._send(embed=embed, files=files, buttons=buttons)
                return
            except discord.HTTPException as error:
                if not final:
                    # The next edit carries the whole text again, so skipping this one loses nothing.
                    log.warning("edit of message %s failed (%s); the next edit catches up", message.id, error)
                    break
                if attempt == attempts or error.status < 429:
                    log.warning("final edit of message %s failed (%s); posting it anew", message.id, error)
                    await self._send(embed=embed, files=files, buttons=buttons)
                    return
                await self._clock.sleep(2.0**attempt)
