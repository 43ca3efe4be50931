"""Slack threads as conversations: their ids, and which thread messages are follow-ups for the bot."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

PREFIX = "slack:"
FOLLOW_UP_SUBTYPES = frozenset({None, "thread_broadcast"})
"""A plain message, or a thread reply also sent to the channel. Every other subtype is an edit, a
deletion, a join, a bot's post and the like: never a question for the bot."""
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")


def conversation_id(channel: str, thread_ts: str) -> str:
    """A Slack conversation is one thread: ``slack:<channel>:<thread_ts>``."""
    return f"{PREFIX}{channel}:{thread_ts}"


def channel_prefix(channel: str) -> str:
    """What every conversation id of ``channel`` starts with."""
    return f"{PREFIX}{channel}:"


def thread_of(conversation: str) -> str:
    """The ``thread_ts`` of a Slack conversation id."""
    return conversation.rsplit(":", 1)[1]


def follow_up_thread(event: Mapping[str, Any], *, bot_user_id: str) -> str | None:
    """The ``thread_ts`` of a ``message`` event that may continue a conversation without a
    mention, or None when the bot should let it be.

    Let be: messages from bots (the bot itself included), edits, deletions and other subtypes,
    top-level messages, and messages that mention the bot (the ``app_mention`` event for the same
    message answers those) or other people (they are talking to them).
    """
    if event.get("bot_id") or event.get("subtype") not in FOLLOW_UP_SUBTYPES:
        return None
    user, thread_ts = event.get("user"), event.get("thread_ts")
    if not user or user == bot_user_id or not thread_ts or thread_ts == event.get("ts"):
        return None
    if set(_MENTION.findall(str(event.get("text", "")))) - {user}:
        return None
    return str(thread_ts)
