"""Which conversation a Discord message or command belongs to, and whether an unaddressed message is for us.

Ids are stable across restarts: a thread is one conversation (``discord:thread:<thread>``), a
mention in a channel starts a reply chain named after the channel and that message
(``discord:chain:<channel>:<message>``), a DM channel is one running conversation
(``discord:dm:<channel>``), and a reply to a bot message continues whatever that message was
linked to (``discord:message:<message>`` in the store).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import discord

from adapters.discord.config import FollowUps
from core.conversations import ConversationStore
from core.parts import Scope

log = logging.getLogger(__name__)

THREAD_TYPES = frozenset(
    {discord.ChannelType.public_thread, discord.ChannelType.private_thread, discord.ChannelType.news_thread}
)

Linker = Callable[[discord.Message], Awaitable[None]]
"""Remembers that a message the bot just posted belongs to a conversation."""


def message_key(message_id: int) -> str:
    """The store key that links one bot message to its conversation."""
    return f"discord:message:{message_id}"


def thread_conversation(thread_id: int) -> str:
    return f"discord:thread:{thread_id}"


def chain_prefix(channel_id: int) -> str:
    """What every reply-chain conversation started in one channel begins with."""
    return f"discord:chain:{channel_id}:"


def chain_conversation(channel_id: int, message_id: int) -> str:
    return f"{chain_prefix(channel_id)}{message_id}"


def dm_conversation(channel_id: int) -> str:
    return f"discord:dm:{channel_id}"


def is_thread(channel: object) -> bool:
    """Threads (and forum posts), whether or not discord.py has the channel cached."""
    if isinstance(channel, discord.Thread):
        return True
    return isinstance(channel, discord.PartialMessageable) and channel.type in THREAD_TYPES


def replied_to(message: discord.Message) -> int | None:
    """The message this one replies to (not forwards), if any."""
    reference = message.reference
    if reference is None or reference.message_id is None:
        return None
    if reference.type is not discord.MessageReferenceType.reply:
        return None
    return reference.message_id


async def message_conversation(
    message: discord.Message,
    store: ConversationStore,
    *,
    mentioned: bool,
    dm: bool,
    follow_ups: FollowUps,
) -> str | None:
    """The conversation ``message`` continues or starts, or ``None`` when it isn't for the bot.

    Mentions and DMs are always for the bot. Without a mention, in ``thread`` mode, a reply to a
    linked bot message and a message in a thread the bot has answered in are follow-ups; nothing
    else is (the bot never joins a conversation it doesn't know).
    """
    addressed = mentioned or dm
    follows = follow_ups == "thread"
    if not (addressed or follows):
        return None
    reference = replied_to(message)
    if reference is not None:
        linked = await store.resolve(message_key(reference))
        if linked is not None:
            return linked
    channel = message.channel
    if dm:
        return dm_conversation(channel.id)
    if is_thread(channel):
        thread = thread_conversation(channel.id)
        if addressed or await store.knows(thread):
            return thread
        return None
    return chain_conversation(channel.id, message.id) if addressed else None


def command_conversation(interaction: discord.Interaction[Any], *, anchor_id: int | None) -> str | None:
    """The conversation a generating slash command belongs to: its thread or DM, else a new chain
    named after the message its answer goes under (so replies to that message continue it)."""
    channel_id = interaction.channel_id
    if channel_id is None:
        return None
    return _place_conversation(interaction, channel_id) or chain_conversation(
        channel_id, anchor_id or interaction.id
    )


async def current_conversation(interaction: discord.Interaction[Any], store: ConversationStore) -> str | None:
    """What ``/summary`` and ``/forget`` act on: the thread or DM they were used in; in a channel,
    the reply chain there most recently active."""
    channel_id = interaction.channel_id
    if channel_id is None:
        return None
    return _place_conversation(interaction, channel_id) or await store.latest(chain_prefix(channel_id))


def _place_conversation(interaction: discord.Interaction[Any], channel_id: int) -> str | None:
    """The conversation a DM or a thread is as a whole; None in a channel, which holds many."""
    if interaction.guild_id is None:
        return dm_conversation(channel_id)
    if is_thread(interaction.channel):
        return thread_conversation(channel_id)
    return None


def linker(store: ConversationStore, conversation: str, *, scope: Scope) -> Linker:
    """Link each message it is given to ``conversation``; a failure is logged, never raised, so a
    database hiccup can't break an answer (a reply to that one message just starts afresh)."""

    async def link(message: discord.Message) -> None:
        try:
            await store.link(message_key(message.id), conversation, scope=scope)
        except Exception:
            log.exception("could not link message %s to its conversation", message.id)

    return link
