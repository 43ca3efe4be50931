"""Members, roles and channels as command text: Discord's ``<@123>``, ``<@&456>`` and ``<#789>``,
and Slack's escaped ``<@U123|name>`` and ``<#C123|general>``, parsed the same way."""

from __future__ import annotations

import re

_MEMBER = re.compile(r"<@!?([A-Za-z0-9]+)(?:\|[^>]*)?>")
_ROLE = re.compile(r"<@&(\d+)>")
_CHANNEL = re.compile(r"<#([A-Za-z0-9]+)(?:\|[^>]*)?>")


def member_id(word: str) -> str | None:
    """The user id in ``<@123>``, ``<@!123>`` or ``<@U123|name>``; else ``None``."""
    match = _MEMBER.fullmatch(word.strip())
    return match.group(1) if match else None


def role_id(word: str) -> str | None:
    """The role id in ``<@&456>``; else ``None``."""
    match = _ROLE.fullmatch(word.strip())
    return match.group(1) if match else None


def channel_id(word: str) -> str | None:
    """The channel id in ``<#789>`` or ``<#C123|general>``; else ``None``."""
    match = _CHANNEL.fullmatch(word.strip())
    return match.group(1) if match else None


def mention(user: str) -> str:
    """How a member is written in replies: ``<@id>``, which both platforms show as their name."""
    return f"<@{user}>"
