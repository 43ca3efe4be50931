"""The Slack app manifest: the exact scopes, slash commands and events this adapter uses."""

from __future__ import annotations

from typing import Any

from adapters.slack.config import EVENTS_PATH, FollowUps
from core.commands import ALL_COMMANDS

BOT_SCOPES = ("app_mentions:read", "chat:write", "commands", "files:write", "users:read")
"""``chat:write`` also covers native streaming (chat.startStream) and deleting the bot's own
progress lines; ``users:read`` is for telling workspace admins and owners apart."""
BOT_EVENTS = ("app_mention",)
FOLLOW_UP_SCOPES = ("channels:history", "groups:history")
"""Needed to receive the messages of public and private channels; the bot only reads the thread
replies it is sent (as events) and never asks Slack for history."""
FOLLOW_UP_EVENTS = ("message.channels", "message.groups")
"""Thread replies without a mention (``SLACK_FOLLOW_UPS=thread``). Direct messages aren't served."""
APP_TOKEN_SCOPES = ("connections:write",)
"""Scopes of the app-level token (``xapp-…``) Socket Mode needs; tokens are made by hand, not here."""
_USAGE_HINTS = {
    "imagine": "PROMPT",
    "song": "PROMPT",
    "research": "TOPIC",
    "budget": "[set AMOUNT | reset]",
    "summary": "[FOCUS]",
    "forget": "[all]",
}
_DESCRIPTIONS = {"budget": "show this workspace's spend (admins: change the limit)"}


def app_manifest(
    *, name: str = "Studio Bot", request_url: str | None = None, follow_ups: FollowUps = "thread"
) -> dict[str, Any]:
    """A manifest to paste into https://api.slack.com/apps ("Create New App" → "From a manifest").

    Without ``request_url`` the app uses Socket Mode. With it (e.g. ``https://bot.example.com``)
    Slack sends events and commands to ``{request_url}/slack/events`` instead. With
    ``follow_ups="thread"`` the app also receives channel messages (and may read them), so that a
    reply in a thread where the bot answered needs no mention.
    """
    events_url = request_url.rstrip("/") + EVENTS_PATH if request_url else None
    commands: list[dict[str, Any]] = []
    for command in ALL_COMMANDS:
        # Slack shows descriptions as plain text: no markdown.
        description = _DESCRIPTIONS.get(command.name, command.description).replace("`", "")
        entry: dict[str, Any] = {
            "command": f"/{command.name}",
            "description": description[:100],
            "usage_hint": _USAGE_HINTS.get(command.name, ""),
            "should_escape": False,
        }
        if events_url:
            entry["url"] = events_url
        commands.append(entry)
    threads = follow_ups == "thread"
    subscriptions: dict[str, Any] = {"bot_events": list(BOT_EVENTS + (FOLLOW_UP_EVENTS if threads else ()))}
    if events_url:
        subscriptions["request_url"] = events_url
    return {
        "_metadata": {"major_version": 1, "minor_version": 1},
        "display_information": {
            "name": name[:35],
            "description": "Draws images, writes songs and streams research, on a workspace budget.",
        },
        "features": {
            "bot_user": {"display_name": name[:80], "always_online": True},
            "slash_commands": commands,
        },
        "oauth_config": {"scopes": {"bot": list(BOT_SCOPES + (FOLLOW_UP_SCOPES if threads else ()))}},
        "settings": {
            "event_subscriptions": subscriptions,
            "org_deploy_enabled": False,
            "socket_mode_enabled": events_url is None,
            "token_rotation_enabled": False,
        },
    }
