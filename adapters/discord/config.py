"""The plain values the Discord adapter runs on, built by the composition root from its settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DEFAULT_API_URL = "https://discord.com/api/v10"
DEFAULT_GATEWAY_URL = "wss://gateway.discord.gg/"


@dataclass(frozen=True, slots=True, kw_only=True)
class DiscordConfig:
    """Everything the adapter needs to know about its Discord application.

    ``guild_ids`` lists guilds to sync slash commands to directly (instant, for development);
    empty means one global sync. ``budget_visible_to="everyone"`` lets every member view (never
    change) ``/budget``. ``edit_interval`` bounds how often one message is edited, in seconds.
    """

    token: str
    api_url: str = DEFAULT_API_URL
    gateway_url: str = DEFAULT_GATEWAY_URL
    guild_ids: tuple[int, ...] = ()
    allow_dms: bool = False
    budget_visible_to: Literal["admins", "everyone"] = "admins"
    edit_interval: float = 1.0
    uploading_notice_bytes: int = 1_000_000
    """Show an "Uploading…" progress line before attaching media at least this large."""
    guild_ready_timeout: float = 2.0
    """How long discord.py waits for the guild list at connect before it reports ready."""

    def __repr__(self) -> str:
        # The token must never reach a log line through a repr.
        return (
            f"DiscordConfig(api_url={self.api_url!r}, gateway_url={self.gateway_url!r}, "
            f"guild_ids={self.guild_ids!r}, allow_dms={self.allow_dms!r})"
        )
