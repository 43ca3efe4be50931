"""One request's answer, read from the engine in a task of its own, and its media as links.

Reading in a separate task is what keeps a client that goes away from touching the work: a closed
HTTP stream or WebSocket only stops *reading*. The answer runs to its end, is charged for what the
provider produced (the usage it reports), and is remembered in its conversation, so a session
reconnecting later finds it there. The task is tracked, so shutdown waits for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from core.engine import Engine
from core.inflight import Inflight
from core.media_store import MediaStore
from core.parts import Audio, Image, Part, Request


class Answer:
    """The parts of ``request``'s answer, in order, however slowly (or never) they are read."""

    def __init__(self, engine: Engine, request: Request, *, inflight: Inflight) -> None:
        self.request = request
        self._queue: asyncio.Queue[Part | None] = asyncio.Queue()
        self._peeked: tuple[Part | None] | None = None
        self.task = inflight.spawn(self._pump(engine.handle(request)), name=f"answer {request.id}")

    async def _pump(self, parts: AsyncIterator[Part]) -> None:
        try:
            async for part in parts:
                self._queue.put_nowait(part)
        finally:
            self._queue.put_nowait(None)

    async def first(self) -> Part | None:
        """The first part (``None`` for an answer without any), still yielded by ``parts``: read
        before a response's status is chosen, so that a refusal can still be an error status."""
        if self._peeked is None:
            self._peeked = (await self._queue.get(),)
        return self._peeked[0]

    async def parts(self) -> AsyncIterator[Part]:
        """Each part as the engine yields it; ends when the answer does."""
        if self._peeked is not None:
            (part,), self._peeked = self._peeked, None
            if part is None:
                return
            yield part
        while (part := await self._queue.get()) is not None:
            yield part


class MediaLinks:
    """Saves generated media to the store and says where to fetch it."""

    def __init__(self, media: MediaStore, base_url: str) -> None:
        self._media = media
        self._base_url = base_url.rstrip("/")

    async def url(self, data: bytes, filename: str) -> str:
        media_id = await self._media.save(data, filename=filename)
        return f"{self._base_url}/v1/media/{media_id}"

    async def markdown(self, media: Image | Audio) -> str:
        """The media as markdown: an image inline, a song as a link with its cover and lyrics."""
        url = await self.url(media.data, media.filename)
        if isinstance(media, Image):
            return f"![{_label(media.prompt or media.title)}]({url})\n\n"
        text = f"🎵 [{_label(media.title)}]({url})\n\n"
        if media.cover is not None:
            cover = await self.url(media.cover.data, media.cover.filename)
            text += f"![cover art]({cover})\n\n"
        if media.lyrics:
            text += media.lyrics.rstrip() + "\n\n"
        return text


def _label(text: str) -> str:
    """Text safe inside a markdown link's brackets."""
    return " ".join(text.split()).replace("[", "(").replace("]", ")")[:200]
