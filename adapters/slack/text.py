"""Slack's text conventions: entity escaping, bot mentions in event text, markdown versus mrkdwn."""

from __future__ import annotations

import re

_ENTITIES = (("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">"))
_BOLD = re.compile(r"\*\*(.+?)\*\*")


def escape_mrkdwn(text: str) -> str:
    """Escape the three characters Slack's ``text`` field treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def unescape_slack(text: str) -> str:
    """Undo Slack's escaping of ``&``, ``<`` and ``>`` in event and command text."""
    for entity, character in _ENTITIES:
        text = text.replace(entity, character)
    return text


def mention_text(text: str, *, bot_user_id: str | None) -> str:
    """What a mention asks for: the event text without the bot's own ``<@U…>`` mentions."""
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(\|[^>]*)?>", " ", text)
    return unescape_slack(" ".join(text.split()))


def to_mrkdwn(markdown: str) -> str:
    """Core texts use ``**bold**``; Slack's ``text`` field (mrkdwn) writes it ``*bold*``."""
    return _BOLD.sub(r"*\1*", markdown)


_SPECIAL_MENTION = re.compile(r"<!(subteam\^[^|>]*|channel|here|everyone)(?:\|([^>]*))?>")
_PLAIN_BROADCAST = re.compile(r"@(channel|here|everyone)\b")
_ZERO_WIDTH_SPACE = "\u200b"


def neutralise_broadcasts(text: str) -> str:
    """Model-written text can't notify a channel or a user group: ``<!here>``, ``<!channel>``,
    ``<!everyone>`` and ``<!subteam^…>`` become plain text, and so do bare ``@here``-style words
    (a zero-width space after the ``@`` keeps them readable but inert)."""

    def inert(match: re.Match[str]) -> str:
        kind, label = match.group(1), match.group(2)
        name = (label or ("group" if kind.startswith("subteam") else kind)).lstrip("@")
        return f"@{_ZERO_WIDTH_SPACE}{name}"

    text = _SPECIAL_MENTION.sub(inert, text)
    return _PLAIN_BROADCAST.sub(lambda match: f"@{_ZERO_WIDTH_SPACE}{match.group(1)}", text)
