"""Discord adapter: mentions and slash commands become core requests; answers become embeds.

The names below load on first use, so that reading the settings (``adapters.discord.config``)
does not import discord.py."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adapters.discord.client import StudioClient
    from adapters.discord.config import DiscordConfig, DiscordSettings
    from adapters.discord.invite import application_id_from_token, invite_url
    from adapters.discord.runner import run_discord

_MODULES = {
    "StudioClient": "client",
    "run_discord": "runner",
    "DiscordConfig": "config",
    "DiscordSettings": "config",
    "application_id_from_token": "invite",
    "invite_url": "invite",
}

__all__ = [
    "DiscordConfig",
    "DiscordSettings",
    "StudioClient",
    "application_id_from_token",
    "invite_url",
    "run_discord",
]


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_MODULES[name]}"), name)
