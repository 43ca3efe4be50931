"""The Slack app manifest: the exact scopes, slash commands and events this adapter uses."""

from __future__ import annotations

from typing import Any

from adapters.slack.config import EVENTS_PATH
from core.commands import COMMANDS

BOT_SCOPES = ("app_mentions:read", "chat:write", "commands", "files:write", "users:read")
"""``chat:write`` also covers native streaming (chat.startStream) and deleting the bot's own
progress lines; ``users:read`` is for telling workspace admins and owners apart."""
BOT_EVENTS = ("app_mention",)
APP_TOKEN_SCOPES = ("connections:write",)
"""Scopes of the app-level token (``xapp-…``) Socket Mode needs; tokens are made by hand, not here."""
_USAGE_HINTS = {"imagine": "PROMPT", "song": "PROMPT", "research": "TOPIC", "budget": "[set AMOUNT | reset]"}
_DESCRIPTIONS = {"budget": "show this workspace's spend (admins: change the limit)"}


def app_manifest(*, name: str = "Studio Bot", request_url: str | None = None) -> dict[str, Any]:
    """A manifest to paste into https://api.slack.com/apps ("Create New App" → "From a manifest").

    Without ``request_url`` the app uses Socket Mode. With it (e.g. ``https://bot.example.com``)
    Slack sends events and commands to ``{request_url}/slack/events`` instead.
    """
    events_url = request_url.rstrip("/") + EVENTS_PATH if request_url else None
    commands: list[dict[str, Any]] = []
    for command in COMMANDS:
        entry: dict[str, Any] = {
            "command": f"/{command.name}",
            "description": _DESCRIPTIONS.get(command.name, command.description)[:100],
            "usage_hint": _USAGE_HINTS.get(command.name, ""),
            "should_escape": False,
        }
        if events_url:
            entry["url"] = events_url
        commands.append(entry)
    subscriptions: dict[str, Any] = {"bot_events": list(BOT_EVENTS)}
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
        "oauth_config": {"scopes": {"bot": list(BOT_SCOPES)}},
        "settings": {
            "event_subscriptions": subscriptions,
            "org_deploy_enabled": False,
            "socket_mode_enabled": events_url is None,
            "token_rotation_enabled": False,
        },
    }
