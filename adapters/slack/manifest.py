"""The Slack app manifest: the exact scopes, slash commands and events this adapter uses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from adapters.slack.config import EVENTS_PATH, FollowUps
from core.commands import COMMANDS, Command

BOT_SCOPES = ("app_mentions:read", "chat:write", "commands", "files:write", "users:read")
"""``chat:write`` also covers native streaming (chat.startStream), private answers to button
presses (chat.postEphemeral) and deleting the bot's own progress lines; ``files:write`` also
covers deleting its own files (the Delete button); ``users:read`` is for telling workspace
admins and owners apart."""
BOT_EVENTS = ("app_mention",)
FOLLOW_UP_SCOPES = ("channels:history", "groups:history")
"""Needed to receive the messages of public and private channels; the bot only reads the thread
replies it is sent (as events) and never asks Slack for history."""
FOLLOW_UP_EVENTS = ("message.channels", "message.groups")
"""Thread replies without a mention (``SLACK_FOLLOW_UPS=thread``). Direct messages aren't served."""
ATTACHMENT_SCOPES = ("files:read",)
"""Needed to download files shared with a mention (``url_private``); only with ``ATTACHMENTS=on``."""
APP_TOKEN_SCOPES = ("connections:write",)
"""Scopes of the app-level token (``xapp-…``) Socket Mode needs; tokens are made by hand, not here."""
APP_NAME_CHARS = 35
"""Slack's limit on an app's name; a longer ``name`` is shortened to this."""
DISPLAY_NAME_CHARS = 80


def events_url(request_url: str) -> str:
    """The URL Slack posts events and commands to, from the public base URL (``https://host``,
    optionally with a path prefix) or the full URL already ending in ``/slack/events``.

    Raises ``ValueError`` unless it is an ``https://`` URL with a host: Slack refuses anything else.
    """
    url = request_url.strip()
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(
            f"{request_url!r} is not an https:// URL; Slack only sends events to https, "
            "e.g. https://bot.example.com"
        )
    if parts.query or parts.fragment:
        raise ValueError(
            f"{request_url!r} has a query or fragment; give the base URL, e.g. https://bot.example.com"
        )
    base = url.rstrip("/")
    return base if base.endswith(EVENTS_PATH) else base + EVENTS_PATH


def app_manifest(
    *,
    name: str = "Studio Bot",
    request_url: str | None = None,
    follow_ups: FollowUps = "thread",
    commands: Sequence[Command] = COMMANDS,
    attachments: bool = True,
) -> dict[str, Any]:
    """A manifest to paste into https://api.slack.com/apps ("Create New App" → "From a manifest").

    Without ``request_url`` the app uses Socket Mode. With it (``https://bot.example.com``, or
    the full ``https://bot.example.com/slack/events``) Slack sends events and commands to
    ``…/slack/events`` instead (see ``events_url``). With
    ``follow_ups="thread"`` the app also receives channel messages (and may read them), so that a
    reply in a thread where the bot answered needs no mention. With ``attachments``
    (``ATTACHMENTS=on``) it may also read the files shared with a mention (``files:read``).
    """
    url = events_url(request_url) if request_url else None
    entries: list[dict[str, Any]] = []
    for command in commands:
        if command.on_last_media is not None:
            continue  # /reroll and the like: Slack has the buttons under the media instead
        # Slack shows descriptions as plain text: no markdown.
        description = command.description.replace("`", "")
        entry: dict[str, Any] = {
            "command": f"/{command.name}",
            "description": description[:100],
            "usage_hint": command.usage_hint,
            # Commands naming members or channels get them escaped, with their ids: <@U123|name>.
            "should_escape": command.names_members,
        }
        if url:
            entry["url"] = url
        entries.append(entry)
    threads = follow_ups == "thread"
    bot_scopes = (
        BOT_SCOPES + (FOLLOW_UP_SCOPES if threads else ()) + (ATTACHMENT_SCOPES if attachments else ())
    )
    subscriptions: dict[str, Any] = {"bot_events": list(BOT_EVENTS + (FOLLOW_UP_EVENTS if threads else ()))}
    if url:
        subscriptions["request_url"] = url
    # Buttons under images and songs, and the Edit dialog, arrive as interactivity payloads.
    interactivity: dict[str, Any] = {"is_enabled": True}
    if url:
        interactivity["request_url"] = url
    return {
        "_metadata": {"major_version": 1, "minor_version": 1},
        "display_information": {
            "name": name[:APP_NAME_CHARS],
            "description": "Draws images, writes songs and streams research, on a workspace budget.",
        },
        "features": {
            "bot_user": {"display_name": name[:DISPLAY_NAME_CHARS], "always_online": True},
            "slash_commands": entries,
        },
        "oauth_config": {"scopes": {"bot": list(bot_scopes)}},
        "settings": {
            "event_subscriptions": subscriptions,
            "interactivity": interactivity,
            "org_deploy_enabled": False,
            "socket_mode_enabled": url is None,
            "token_rotation_enabled": False,
        },
    }
