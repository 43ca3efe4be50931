"""Platform-neutral streaming renderer: when to post, when to edit, where to split, when to upload.

An adapter implements ``Surface`` (a handful of platform calls against one conversation) and
passes the parts from ``Engine.handle`` to ``render``. All timing lives here; the renderer
guarantees:

* an answer with nothing to show after ``opening_delay`` gets an ``opening`` progress line, and
  an answer that starts sooner gets none;
* the first text or progress line is posted at once, and so is the first text that replaces a
  progress line (it is what the person is waiting for);
* later changes are coalesced into edits paced by a token bucket shaped by the surface's
  ``pace`` (shared per destination when the adapter passes one): a burst goes out at once,
  then edits follow at the platform's sustained rate;
* routine edits leave a token in the bucket, so the last edit of every message goes as soon as
  the stream ends; it always happens and clears the in-progress marker;
* text is split before ``max_chars`` at a paragraph or line boundary, never inside a code fence
  (a fence longer than a whole message is closed and reopened across the split);
* media closes the current message and is uploaded.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterable
from dataclasses import dataclass
from typing import Protocol

from core.clock import Clock, SystemClock
from core.pacing import Gate, Pace, TokenBucket
from core.parts import Audio, Failure, Image, Media, Part, Status, TextDelta
from core.splitting import split_text

STREAMING_MARKER = " ⚪"
FAILURE_PREFIX = "⚠️ "
MAX_STATUS_CHARS = 200
WORKING = "Working on it…"
"""The usual ``opening``: shown when an answer has nothing to show yet."""
OPENING_DELAY_S = 1.0
"""How long an answer may show nothing before its ``opening`` line goes up."""


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


@dataclass(frozen=True, slots=True)
class Rendered:
    """What ``render`` showed: ``text`` is all the streamed text, unsplit."""

    text: str


class Surface(Protocol):
    """One conversation on one platform, as the renderer sees it: platform calls, no timing.

    ``post`` starts a new message (which becomes the current one); ``edit`` replaces the current
    message. ``max_chars`` bounds ``View.text``: leave room in it for the surface's own marker and
    status decoration. ``pace`` is the platform's edit limit. ``upload`` delivers media; with
    ``replaces_progress`` the current message holds only a progress line, which the surface
    should replace with (or drop for) the media.
    """

    max_chars: int
    pace: Pace

    async def post(self, view: View) -> None: ...

    async def edit(self, view: View) -> None: ...

    async def upload(self, media: Media, *, replaces_progress: bool) -> None: ...


async def render(
    parts: AsyncIterable[Part],
    surface: Surface,
    *,
    clock: Clock | None = None,
    bucket: TokenBucket | None = None,
    gate: Gate | None = None,
    opening: str | None = None,
    opening_delay: float = OPENING_DELAY_S,
) -> Rendered:
    """Drive ``surface`` from ``parts`` until they end; the last edit always lands.

    Every answer paces its own writes with a bucket of the surface's ``pace``; ``bucket``, when
    given, is shared by the destination and paces its edits too (Discord limits a channel's
    edits, whoever makes them). Every post and edit also takes a turn of ``gate`` when given.
    ``opening`` is shown when no part has come after ``opening_delay``.
    The parts are closed however rendering ends.
    """
    clock = clock or SystemClock()
    own = TokenBucket(surface.pace, clock=clock)
    renderer = _Renderer(surface, clock, _Buckets(own, shared=bucket), gate)
    try:
        await renderer.run(parts, opening=opening, opening_delay=opening_delay)
    finally:
        aclose = getattr(parts, "aclose", None)
        if aclose is not None:
            await aclose()
    return Rendered(renderer.streamed)


class _Buckets:
    """The answer's own bucket (its writes) and, if any, the destination's shared one (its edits)."""

    def __init__(self, own: TokenBucket, *, shared: TokenBucket | None) -> None:
        self._own = own
        self._all = (own,) if shared is None else (own, shared)

    def ready_in(self, *, urgent: bool) -> float:
        return max(bucket.ready_in(urgent=urgent) for bucket in self._all)

    def take(self) -> None:
        for bucket in self._all:
            bucket.take()

    def spend(self) -> None:
        """A new message: it never waits, but this answer's edits after it do."""
        self._own.spend()


class _Renderer:
    def __init__(self, surface: Surface, clock: Clock, bucket: _Buckets, gate: Gate | None) -> None:
        self._surface = surface
        self._clock = clock
        self._bucket = bucket
        self._gate = gate
        self._limit = max(64, surface.max_chars)
        self._pieces: list[str] = []
        self._body = ""
        self._status: str | None = None
        self._open = False  # a current message exists and is not final
        self._dirty = False
        self._shown_text = False  # the open message shows streamed text, not only a progress line
        self._parts_seen = False
        self._opening_claimed = False  # the opening line is going up: too late to cancel it
        self._changed = asyncio.Event()
        self._first_text = asyncio.Event()  # the flusher stops waiting for a routine token
        self._io = asyncio.Lock()

    @property
    def streamed(self) -> str:
        return "".join(self._pieces)

    async def run(
        self,
        parts: AsyncIterable[Part],
        *,
        opening: str | None,
        opening_delay: float,
    ) -> None:
        flusher = asyncio.create_task(self._flush_periodically())
        opener = asyncio.create_task(self._open_after(opening, opening_delay)) if opening else None
        try:
            async for part in parts:
                if not self._parts_seen:
                    self._parts_seen = True
                    if opener is not None and not self._opening_claimed:
                        opener.cancel()
                await self._apply(part)
            if opener is not None:
                await _settled(opener)
        finally:
            if opener is not None:
                if not self._opening_claimed:
                    opener.cancel()
                await asyncio.wait({opener})  # an opening line going up lands before the last edit
            async with self._io:
                flusher.cancel()
                if self._open:
                    await self._send(View(self._final_text(), MessageState.DONE))
                    self._open = False

    async def _open_after(self, opening: str | None, delay: float) -> None:
        await self._clock.sleep(delay)
        if self._parts_seen or opening is None:
            return
        self._opening_claimed = True
        await self._apply(Status(opening))

    async def _apply(self, part: Part) -> None:
        if isinstance(part, TextDelta):
            if not part.text:
                return
            self._pieces.append(part.text)
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
            if replaces_progress:  # the surface edits the progress message into the media
                await self._take_token(urgent=True)
            else:
                self._bucket.spend()
            await self._take_turn(urgent=True)
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
        """Post or edit the current message, once the bucket and the gate allow. Callers hold
        ``self._io``; an edit that is not urgent is sent only when the flusher saw a token."""
        editing = self._open
        first_text = bool(view.text) and not self._shown_text
        if editing:
            await self._take_token(urgent=first_text or view.state is not MessageState.STREAMING)
        else:
            self._bucket.spend()
        # Of all the answers sharing the gate, someone looking at nothing or at a progress line
        # goes first; final edits wait their turn like other edits.
        await self._take_turn(urgent=not editing or first_text)
        # Cleared before the call: text arriving while the platform answers must stay pending.
        self._dirty = False
        self._shown_text = bool(view.text)
        if editing:
            await self._surface.edit(view)
        else:
            await self._surface.post(view)
        self._open = view.state is MessageState.STREAMING

    async def _take_token(self, *, urgent: bool) -> None:
        while (wait := self._bucket.ready_in(urgent=urgent)) > 0:
            await self._clock.sleep(wait)
        self._bucket.take()

    async def _take_turn(self, *, urgent: bool) -> None:
        if self._gate is not None:
            await self._gate.turn(urgent=urgent)

    async def _flush_periodically(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            while self._dirty and self._open:
                self._first_text.clear()
                wait = self._bucket.ready_in(urgent=self._text_waiting())
                if wait > 0:
                    await self._sleep_until_first_text(wait)
                    continue
                async with self._io:
                    # Checked again: a shared bucket may have been drained meanwhile, and a
                    # routine edit must not wait while holding the lock the final edit needs.
                    if self._dirty and self._open and not self._bucket.ready_in(urgent=self._text_waiting()):
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


async def _settled(task: asyncio.Task[None]) -> None:
    """Wait for ``task`` to end and raise what it raised; a cancelled one is simply over."""
    await asyncio.wait({task})
    if not task.cancelled() and (error := task.exception()) is not None:
        raise error
