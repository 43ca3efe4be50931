"""The plain values the Slack adapter needs, built by the composition root from its settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

SlackMode = Literal["socket", "http"]
BudgetAudience = Literal["admins", "everyone"]
FollowUps = Literal["mention", "thread"]
"""``thread``: a plain message in a thread where the bot answered continues that conversation;
``mention``: the bot answers only when mentioned (or through a slash command)."""

EVENTS_PATH = "/slack/events"


@dataclass(frozen=True, slots=True, kw_only=True)
class SlackConfig:
    """Credentials and choices for one Slack app. Secrets stay out of ``repr``.

    With ``app_token`` the adapter connects over Socket Mode; otherwise it serves HTTP on
    ``host:port`` at ``/slack/events`` and verifies every request with ``signing_secret``.
    ``follow_ups`` applies when the engine has a conversation store (``engine.conversations``).
    """

    bot_token: str = field(repr=False)
    app_token: str | None = field(default=None, repr=False)
    signing_secret: str | None = field(default=None, repr=False)
    port: int = 3000
    host: str = "0.0.0.0"
    api_url: str = "https://slack.com/api/"
    admin_ids: frozenset[str] = frozenset()
    budget_visible_to: BudgetAudience = "admins"
    follow_ups: FollowUps = "thread"

    def __post_init__(self) -> None:
        if not self.bot_token:
            raise ValueError("a Slack bot token (xoxb-…) is required")
        if not self.app_token and not self.signing_secret:
            raise ValueError("Slack needs an app token (Socket Mode) or a signing secret (HTTP mode)")

    @property
    def mode(self) -> SlackMode:
        """Socket Mode when an app token is set (it wins over a signing secret), else HTTP."""
        return "socket" if self.app_token else "http"
