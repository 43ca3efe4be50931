"""Conversation memory in the ledger's database: every turn is an event row, kept for a while.

The bot never re-reads platform history (Slack's ``conversations.replies`` is heavily rate limited,
and a restart must not lose context): what it remembers is what it recorded here, and ``/forget``
and the retention purge are the whole of how it forgets.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from core.clock import Clock
from core.db import Database, Row
from core.history import BOT_AUTHOR
from core.parts import Delivered, Intent, Scope, Turn

log = logging.getLogger(__name__)

DEFAULT_PURGE_EVERY_S = 3600.0


class EventKind(enum.StrEnum):
    USER_MESSAGE = "user_message"
    """``text`` is what was asked; ``intent`` the command it was asked with, if any."""
    ANSWER = "answer"
    IMAGE = "image"
    """``text`` is the prompt the delivered image was made from."""
    SONG = "song"
    """``text`` is the prompt (or title) of the delivered song."""
    FAILURE = "failure"
    """``text`` is the message the person was shown."""
    SUMMARY = "summary"


_MEDIA_INTENTS = {EventKind.IMAGE: Intent.IMAGE, EventKind.SONG: Intent.SONG}


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """One stored row: something said or delivered in a conversation."""

    id: int
    conversation: str
    scope: Scope
    user: str
    """Who asked: the person who spoke, or the one the bot was answering."""
    kind: EventKind
    text: str
    created_at: datetime
    request_id: str
    intent: Intent | None = None


class ConversationStore:
    """Conversation events (and message links) in the bot's database."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def _now(self) -> datetime:
        return self._database.clock.utc()

    async def record(
        self,
        conversation: str,
        *,
        scope: Scope,
        user: str,
        kind: EventKind,
        text: str,
        request_id: str = "",
        intent: Intent | None = None,
    ) -> None:
        """Store one event at the end of ``conversation``."""
        await self._database.write(
            'INSERT INTO conversation_events (conversation, scope, "user", kind, text, created_at, '
            "request_id, intent) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                conversation,
                str(scope),
                user,
                kind.value,
                text,
                self._now().isoformat(),
                request_id,
                intent.value if intent else None,
            ),
        )

    async def events(self, conversation: str, *, limit: int = 100) -> list[Event]:
        """The newest ``limit`` events of ``conversation``, oldest first."""
        rows = await self._database.fetchall(
            'SELECT id, conversation, scope, "user", kind, text, created_at, request_id, intent '
            "FROM conversation_events WHERE conversation = ? ORDER BY id DESC LIMIT ?",
            (conversation, limit),
        )
        return [_event(row) for row in reversed(rows)]

    async def history(self, conversation: str, *, limit: int = 100) -> list[Turn]:
        """The newest ``limit`` events of ``conversation`` as turns, oldest first. The bot's events
        for one request (its text, media and failure) become a single turn."""
        return as_turns(await self.events(conversation, limit=limit))

    async def knows(self, conversation: str) -> bool:
        """Whether the bot has answered in ``conversation``, so a follow-up needs no mention."""
        row = await self._database.fetchone(
            "SELECT 1 FROM conversation_events WHERE conversation = ? AND kind != ? LIMIT 1",
            (conversation, EventKind.USER_MESSAGE.value),
        )
        return row is not None

    async def latest(self, prefix: str) -> str | None:
        """The most recently active conversation whose id starts with ``prefix`` (e.g. every
        conversation of one channel: ``slack:C0123:``), for commands issued outside a thread."""
        row = await self._database.fetchone(
            "SELECT conversation FROM conversation_events WHERE substr(conversation, 1, ?) = ? "
            "ORDER BY id DESC LIMIT 1",
            (len(prefix), prefix),
        )
        return str(row[0]) if row else None

    async def link(self, key: str, conversation: str, *, scope: Scope) -> None:
        """Remember that platform message ``key`` (e.g. ``discord:message:123``, a bot answer
        someone may reply to) belongs to ``conversation``."""
        await self._database.write(
            "INSERT INTO conversation_links (key, conversation, scope, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET conversation = excluded.conversation",
            (key, conversation, str(scope), self._now().isoformat()),
        )

    async def resolve(self, key: str) -> str | None:
        """The conversation a linked platform message belongs to, if it is still remembered."""
        row = await self._database.fetchone(
            "SELECT conversation FROM conversation_links WHERE key = ?", (key,)
        )
        return str(row[0]) if row else None

    async def forget(self, conversation: str) -> int:
        """Delete everything stored about ``conversation``; returns the events deleted."""
        return await self._delete("conversation = ?", (conversation,))

    async def forget_scope(self, scope: Scope) -> int:
        """Delete every conversation of ``scope`` (a server or workspace); returns the events deleted."""
        return await self._delete("scope = ?", (str(scope),))

    async def fell_idle(self, *, idle_for: timedelta, within: timedelta) -> list[Event]:
        """The last event of each conversation that went quiet between ``idle_for + within`` and
        ``idle_for`` ago, unless that event is already a summary: candidates for an idle summary."""
        now = self._now()
        quiet_since, floor = (now - idle_for).isoformat(), (now - idle_for - within).isoformat()
        rows = await self._database.fetchall(
            """
            SELECT id, conversation, scope, "user", kind, text, created_at, request_id, intent
            FROM conversation_events WHERE id IN (
                SELECT MAX(id) FROM conversation_events WHERE conversation IN (
                    SELECT DISTINCT conversation FROM conversation_events WHERE created_at >= :floor)
                GROUP BY conversation)
            AND created_at < :quiet_since AND created_at >= :floor AND kind != 'summary'
            ORDER BY id
            """,
            {"quiet_since": quiet_since, "floor": floor},
        )
        return [_event(row) for row in rows]

    async def purge(self, older_than: timedelta) -> int:
        """Delete events and links older than ``older_than``; returns the events deleted."""
        cutoff = (self._now() - older_than).isoformat()
        removed = await self._delete("created_at < ?", (cutoff,))
        if removed:
            log.info("purged %d conversation events older than %s", removed, cutoff)
        return removed

    async def _delete(self, where: str, params: tuple[str, ...]) -> int:
        async with self._database.transaction() as db:
            written = await db.execute(f"DELETE FROM conversation_events WHERE {where}", params)
            await db.execute(f"DELETE FROM conversation_links WHERE {where}", params)
        return written.rowcount


def _event(row: Row) -> Event:
    return Event(
        id=int(row[0]),
        conversation=row[1],
        scope=Scope.parse(row[2]),
        user=row[3],
        kind=EventKind(row[4]),
        text=row[5],
        created_at=datetime.fromisoformat(row[6]),
        request_id=row[7],
        intent=Intent(row[8]) if row[8] else None,
    )


def as_turns(events: Sequence[Event]) -> list[Turn]:
    """Events as model turns: one per user message, one per bot reply to a request."""
    turns: list[Turn] = []
    reply_to: str | None = None
    for event in events:
        if event.kind is EventKind.USER_MESSAGE:
            turns.append(Turn("user", event.user, event.text, intent=event.intent))
            reply_to = None
            continue
        media: tuple[Delivered, ...] = ()
        if event.kind in _MEDIA_INTENTS:
            text, media = "", (Delivered(_MEDIA_INTENTS[event.kind], event.text),)
        elif event.kind is EventKind.FAILURE:
            text = f"(That failed: {event.text})"
        elif event.kind is EventKind.SUMMARY:
            text = f"Summary of the conversation so far:\n{event.text}"
        else:
            text = event.text
        previous = turns[-1] if turns else None
        if (
            previous is not None
            and previous.role == "assistant"
            and reply_to
            and reply_to == event.request_id
        ):
            joined = "\n\n".join(part for part in (previous.text, text) if part)
            turns[-1] = Turn("assistant", BOT_AUTHOR, joined, previous.media + media)
        else:
            turns.append(Turn("assistant", BOT_AUTHOR, text, media))
        reply_to = event.request_id or None
    return turns


class Purgeable(Protocol):
    """A store of what people asked that forgets it after a while (conversations, jobs)."""

    async def purge(self, older_than: timedelta) -> int: ...


async def purge_periodically(
    store: Purgeable, *, keep: timedelta, clock: Clock, every_s: float = DEFAULT_PURGE_EVERY_S
) -> None:
    """Purge rows older than ``keep`` now and every ``every_s`` seconds, until cancelled.
    A failed purge is logged and tried again next time."""
    while True:
        try:
            await store.purge(keep)
        except Exception:
            log.exception("purge of %s failed; trying again in %.0f s", type(store).__name__, every_s)
        await clock.sleep(every_s)


async def forget_command(
    store: ConversationStore, conversation: str | None, scope: Scope, args: str, *, can_forget_scope: bool
) -> str:
    """Answer ``/forget`` (this conversation) or ``/forget all`` (the whole scope, admins only).

    Platforms decide who may forget a whole scope (the same people who may change ``/budget``);
    the wording and the deletions are the same everywhere.
    """
    action = args.strip().lower()
    if action == "all":
        if not can_forget_scope:
            return "Only admins can make me forget every conversation here. `/forget` alone forgets this one."
        removed = await store.forget_scope(scope)
        return f"Forgot every conversation here ({_messages(removed)} deleted)."
    if action:
        return "Usage: `/forget` (this conversation) or `/forget all` (admins: every conversation here)."
    if conversation is None:
        return "There's no conversation here for me to forget: I only remember threads I've answered in."
    removed = await store.forget(conversation)
    if not removed:
        return "I had nothing stored for this conversation."
    return f"Forgot this conversation ({_messages(removed)} deleted). I'll start afresh here."


def _messages(count: int) -> str:
    return f"{count} message" + ("" if count == 1 else "s")
