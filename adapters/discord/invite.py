"""The OAuth2 invite link: exactly the scopes and permissions this bot needs."""

from __future__ import annotations

import base64
import binascii

import discord

SCOPES = ("bot", "applications.commands")
PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    embed_links=True,
    attach_files=True,
    read_message_history=True,
    use_application_commands=True,
)


def application_id_from_token(token: str) -> str:
    """A bot token's first segment is its user id in base64, which is also the application id."""
    segment = token.strip().split(".", 1)[0]
    try:
        decoded = base64.b64decode(segment + "=" * (-len(segment) % 4), validate=False).decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        decoded = ""
    if not decoded.isdigit():
        raise ValueError("the token does not start with a base64 application id; set DISCORD_APPLICATION_ID")
    return decoded


def invite_url(application_id: str) -> str:
    """The URL a server admin opens to add the bot with its slash commands."""
    return discord.utils.oauth_url(application_id, permissions=PERMISSIONS, scopes=SCOPES)
