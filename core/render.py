"""Platform-neutral streaming renderer: when to post, when to edit, where to split, when to upload.

An adapter implements ``Surface`` (a handful of calls against one conversation) and passes the
parts from ``Engine.handle`` to ``render``. The renderer guarantees:

* the first text or progress line is posted at once, and so is the first text that replaces a
  progress line (it is what the person is waiting for);
* later changes are coalesced into at most one edit per ``edit_interval`` per message;
* the last edit of every message always happens and clears the in-progress marker;
* text is split before ``max_chars`` at a paragraph or line boundary, never inside a code fence
  (a fence longer than a whole message is closed and reopened across the split);
* media closes the current message and is uploaded.
"""

from __future__ import annotations

import asyncio
import enum
import re
from collections.abc import AsyncIterable
from dataclasses import dataclass
from typing import Protocol

from core.clock import Clock, SystemClock
from core.parts import Audio, Failure, Image, Media, Part, Status, TextDelta

STREAMING_MARKER = " ⚪"
FAILURE_PREFIX = "⚠️ "
MAX_STATUS_CHARS = 200
_FENCE = re.compile(r"^[ \t]*```", re.MULTILINE)


class MessageState(enum.Enum):
    STREAMING = "streaming"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class View:
    """What one message should show now.

    ``text`` is the message body (at most the surface's ``max_chars``); ``status`` a transient
    progress line; ``state`` tells a platform to show an in-progress marker (STREAMING) or to
    finish the message, coloured for success or failure (DONE, FAILED: final, no status).
    """

    text: str
    state: MessageState
    status: str | None = None

    def plain(self) -> str:
        """Body, marker and status as one string, for surfaces without richer formatting."""
        text = self.text
        if self.state is MessageState.STREAMING and text:
            text += STREAMING_MARKER
        if self.status:
            text += f"\n\n_⏳ {self.status}_" if text else f"_⏳ {self.status}_"
        return text


class Surface(Protocol):
    """One conversation on one platform, as the renderer sees it.

    ``post`` starts a new message (which becomes the current one); ``edit`` replaces the current
    message. ``max_chars`` bounds ``View.text``: leave room in it for the surface's own marker and
    status decoration. ``upload`` delivers media; with ``replaces_progress`` the current message
    holds only a progress line, which the surface should replace with (or drop for) the media.
    """

    max_chars: int
    edit_interval: float

    async def post(self, view: View) -> None: ...

    async def edit(self, view: View) -> None: ...

    async def upload(self, media: Media, *, replaces_progress: bool) -> None: ...


async def render(parts: AsyncIterable[Part], surface: Surface, *, clock: Clock | None = None) -> None:
    """Drive ``surface`` from ``parts`` until they end; the last edit always lands."""
    await _Renderer(surface, clock or SystemClock()).run(parts)


class _Renderer:
    def __init__(self, surface: Surface, clock: Clock) -> None:
        self._surface = surface
        self._clock = clock
        self._limit = max(64, surface.max_chars)
        self._body = ""
        self._status: str | None = None
        self._open = False  # a current message exists and is not final
        self._dirty = False
        self._shown_text = False  # the open message shows streamed text, not only a progress line
        self._last_sent = float("-inf")
        self._changed = asyncio.Event()
        self._first_text = asyncio.Event()  # the flusher stops waiting out the interval
        self._io = asyncio.Lock()

    async def run(self, parts: AsyncIterable[Part]) -> None:
        flusher = asyncio.create_task(self._flush_periodically())
        try:
            async for part in parts:
                await self._apply(part)
        finally:
            async with self._io:
                flusher.cancel()
                if self._open:
                    await self._send(View(self._final_text(), MessageState.DONE))
                    self._open = False

    async def _apply(self, part: Part) -> None:
        if isinstance(part, TextDelta):
            if not part.text:
                return
            self._body += part.text
            self._status = None
            while len(self._body) > self._limit:
                head, self._body = split_text(self._body, self._limit)
                async with self._io:
                    await self._send(View(head, MessageState.DONE))
                    self._open = False
            await self._show()
        elif isinstance(part, Status):
            self._status = part.text[:MAX_STATUS_CHARS]
            await self._show()
        elif isinstance(part, Image | Audio):
            await self._upload(part)
        elif isinstance(part, Failure):
            await self._fail(part.message)

    async def _show(self) -> None:
        """Post at once when no message is open; otherwise leave it to the flusher, telling it not
        to wait when this is the first text of a message that so far holds only a progress line."""
        if self._open:
            self._dirty = True
            if self._text_waiting():
                self._first_text.set()
            self._changed.set()
            return
        if not self._body and not self._status:
            return
        async with self._io:
            await self._send(self._live_view())

    async def _upload(self, media: Media) -> None:
        async with self._io:
            replaces_progress = self._open and not self._body
            if self._open and self._body:
                await self._send(View(self._body, MessageState.DONE))
            self._open = False
            self._body = ""
            self._status = None
            await self._surface.upload(media, replaces_progress=replaces_progress)

    async def _fail(self, message: str) -> None:
        notice = FAILURE_PREFIX + message
        async with self._io:
            if self._body and len(self._body) + len(notice) + 2 > self._limit:
                await self._send(View(self._body, MessageState.DONE))
                self._open = False
                self._body = ""
            text = f"{self._body}\n\n{notice}" if self._body else notice
            await self._send(View(text, MessageState.FAILED))
            self._open = False
            self._body = ""
            self._status = None

    async def _send(self, view: View) -> None:
        """Post or edit the current message. Callers hold ``self._io``."""
        # Cleared before the call: text arriving while the platform answers must stay pending.
        self._dirty = False
        self._shown_text = bool(view.text)
        if self._open:
            await self._surface.edit(view)
        else:
            await self._surface.post(view)
        self._open = view.state is MessageState.STREAMING
        self._last_sent = self._clock.now()

    async def _flush_periodically(self) -> None:
        interval = self._surface.edit_interval
        while True:
            await self._changed.wait()
            self._first_text.clear()
            wait = self._last_sent + interval - self._clock.now()
            if wait > 0 and not self._text_waiting():
                await self._sleep_until_first_text(wait)
            self._changed.clear()
            async with self._io:
                if self._dirty and self._open:
                    await self._send(self._live_view())

    def _text_waiting(self) -> bool:
        """Text has arrived for an open message that shows only a progress line so far."""
        return self._open and bool(self._body) and not self._shown_text

    async def _sleep_until_first_text(self, seconds: float) -> None:
        sleep = asyncio.ensure_future(self._clock.sleep(seconds))
        first_text = asyncio.ensure_future(self._first_text.wait())
        try:
            await asyncio.wait({sleep, first_text}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleep.cancel()
            first_text.cancel()

    def _live_view(self) -> View:
        return View(self._body, MessageState.STREAMING, self._status)

    def _final_text(self) -> str:
        return self._body or self._status or "Done."


def split_text(text: str, limit: int) -> tuple[str, str]:
    """Split ``text`` into a head of at most ``limit`` characters and the rest.

    Prefers a paragraph break, then a line break, then a space, in the later part of the window,
    and never cuts inside a code fence unless one fence alone exceeds the limit (then the fence is
    closed in the head and reopened in the tail).
    """
    if len(text) <= limit:
        return text, ""
    window = text[:limit]
    for separator in ("\n\n", "\n", " "):
        cut = _last_cut_outside_fence(text, window, separator, minimum=limit // 3)
        if cut is not None:
            return text[:cut].rstrip(), text[cut:].lstrip("\n ")
    fence = _open_fence(window)
    if fence is None:
        return window, text[limit:]
    closing = "\n```"
    inner = text[: limit - len(closing)]
    cut = inner.rfind("\n")
    if cut <= len(text) - len(text.lstrip()) or cut < limit // 3:
        cut = len(inner)
    return text[:cut].rstrip("\n") + closing, f"{fence}\n" + text[cut:].lstrip("\n")


def _last_cut_outside_fence(text: str, window: str, separator: str, *, minimum: int) -> int | None:
    position = window.rfind(separator)
    while position >= minimum:
        cut = position + len(separator)
        if _open_fence(text[:cut]) is None:
            return cut
        position = window.rfind(separator, 0, position)
    return None


def _open_fence(text: str) -> str | None:
    """The opening line (e.g. ```python) of a fence left open at the end of ``text``, if any."""
    fences = list(_FENCE.finditer(text))
    if len(fences) % 2 == 0:
        return None
    start = fences[-1].start()
    end = text.find("\n", start)
    return text[start : end if end != -1 else len(text)].strip()
