"""The plain values the Discord adapter runs on, built by the composition root from its settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DEFAULT_API_URL = "https://discord.com/api/v10"
DEFAULT_GATEWAY_URL = "wss://gateway.discord.gg/"

FollowUps = Literal["mention", "thread"]
"""``thread``: follow-ups in a bot thread or replies to the bot need no mention; ``mention``: they do."""


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
    follow_ups: FollowUps = "thread"
    """``thread``: replies to the bot and messages in a thread it answered in need no mention
    (needs the Message Content intent); ``mention``: only mentions (and DMs) are answered."""

    def __repr__(self) -> str:
        # The token must never reach a log line through a repr.
        return (
            f"DiscordConfig(api_url={self.api_url!r}, gateway_url={self.gateway_url!r}, "
            f"guild_ids={self.guild_ids!r}, allow_dms={self.allow_dms!r}, follow_ups={self.follow_ups!r})"
        )
