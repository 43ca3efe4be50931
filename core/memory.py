"""What one request adds to its conversation: the question as asked, then the answer however it ends."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from core.attachments import described
from core.commands.catalogue import command_for
from core.conversations import ConversationStore, EventKind
from core.parts import Audio, Failure, Image, Intent, Part, Request, TextDelta
from core.streams import closing_stream

log = logging.getLogger(__name__)


async def remembering(
    store: ConversationStore | None,
    request: Request,
    parts: AsyncIterator[Part],
    *,
    intent: Intent | None,
    question: str | None,
) -> AsyncIterator[Part]:
    """Pass ``parts`` through, recording ``question`` (unless None: already stored) and the
    answer in the request's conversation, when it has one. ``intent`` is what the request was
    routed to (None when it never was)."""
    if store is None or request.conversation is None:
        async with closing_stream(parts):
            async for part in parts:
                yield part
        return
    memory = Memory(store, request, request.conversation, summary=intent is Intent.SUMMARY)
    # Written while the work starts rather than before it: the question is not needed to
    # answer it, and with many requests at once every write ahead of the provider call queues
    # behind everyone else's. The answer is recorded after it, so the order holds.
    asked = asyncio.ensure_future(memory.remember_question(question)) if question is not None else None
    try:
        async with closing_stream(parts):
            async for part in parts:
                memory.see(part)
                yield part
    finally:
        if asked is not None:
            await asked
        await memory.remember_answer()


class Memory:
    """Records one request's exchange in its conversation: the question when work starts, and
    the answer (its text, media and failure) once the stream ends, however it ends."""

    def __init__(
        self, store: ConversationStore, request: Request, conversation: str, *, summary: bool
    ) -> None:
        self._store = store
        self._request = request
        self._conversation = conversation
        self._summary = summary
        self._text: list[str] = []
        self._media: list[tuple[EventKind, str]] = []
        self._failure: str | None = None

    def see(self, part: Part) -> None:
        if isinstance(part, TextDelta):
            self._text.append(part.text)
        elif isinstance(part, Image):
            self._media.append((EventKind.IMAGE, part.prompt))
        elif isinstance(part, Audio):
            self._media.append((EventKind.SONG, part.prompt or part.title))
        elif isinstance(part, Failure):
            self._failure = part.message

    async def remember_question(self, text: str) -> None:
        """Store what was asked, and the command it was asked with; a ``/summary`` command is
        not part of the conversation itself."""
        intent = self._request.intent
        if intent is Intent.SUMMARY:
            return
        asked_with = intent if intent is not None and command_for(intent) is not None else None
        if self._request.attachments:
            # Kept as long as the conversation itself: a text file's contents, an image's name only.
            text = "\n\n".join(piece for piece in (text, described(self._request.attachments)) if piece)
        try:
            await self._record(EventKind.USER_MESSAGE, text, intent=asked_with)
        except Exception:
            log.exception("could not record the question in its conversation")

    async def remember_answer(self) -> None:
        try:
            text = "".join(self._text).strip()
            if self._summary:
                # A failed summary says nothing about the conversation, and must not make the bot
                # "known" in a thread it never answered in.
                if text and self._failure is None:
                    await self._record(EventKind.SUMMARY, text)
                return
            if text:
                await self._record(EventKind.ANSWER, text)
            for kind, prompt in self._media:
                await self._record(kind, " ".join(prompt.split()))
            if self._failure is not None:
                await self._record(EventKind.FAILURE, self._failure)
        except Exception:
            log.exception("could not record the answer in its conversation")

    async def _record(self, kind: EventKind, text: str, *, intent: Intent | None = None) -> None:
        request = self._request
        await self._store.record(
            self._conversation,
            scope=request.scope,
            user=request.user,
            kind=kind,
            text=text,
            request_id=request.id,
            intent=intent,
        )
