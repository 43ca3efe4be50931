"""Discord adapter: mentions and slash commands become core requests; answers become embeds."""

from adapters.discord.client import StudioClient, run_discord
from adapters.discord.config import DiscordConfig
from adapters.discord.invite import PERMISSIONS, application_id_from_token, invite_url
from adapters.discord.surface import DiscordSurface

__all__ = [
    "PERMISSIONS",
    "DiscordConfig",
    "DiscordSurface",
    "StudioClient",
    "application_id_from_token",
    "invite_url",
    "run_discord",
]
