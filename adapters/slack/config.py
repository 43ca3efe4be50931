"""The Slack settings (``SLACK_*``) and the config the adapter runs on, declared once here."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from adapters.config import FollowUps, PlatformSettings, blank_is_unset, comma_separated

SlackMode = Literal["socket", "http"]

EVENTS_PATH = "/slack/events"

__all__ = ["EVENTS_PATH", "FollowUps", "SlackConfig", "SlackMode", "SlackSettings"]


class SlackSettings(PlatformSettings):
    """What an operator sets for Slack, read from ``SLACK_<FIELD>`` (README has the reference).

    With ``app_token`` the adapter connects over Socket Mode; otherwise it serves HTTP on
    ``port`` at ``/slack/events`` and verifies every request with ``signing_secret``.
    ``follow_ups`` applies when the engine has a conversation store. Secrets stay out of ``repr``.
    """

    bot_token: str | None = Field(default=None, repr=False)
    app_token: str | None = Field(default=None, repr=False)
    signing_secret: str | None = Field(default=None, repr=False)
    port: int = Field(default=3000, ge=0, le=65535)
    """HTTP mode's port; 0 picks a free one (tests)."""
    api_url: str = "https://slack.com/api/"
    admin_ids: Annotated[frozenset[str], NoDecode] = frozenset()
    """Member ids (``U0123ABCD``) allowed to see and change ``/budget`` besides workspace admins."""
    follow_ups: FollowUps = "thread"
    """``thread``: a plain message in a thread where the bot answered continues that conversation;
    ``mention``: the bot answers only when mentioned (or through a slash command)."""

    _blank_secrets = field_validator("bot_token", "app_token", "signing_secret", mode="before")(
        blank_is_unset
    )

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _member_ids(cls, value: object) -> object:
        value = comma_separated(value)
        items = value if isinstance(value, list | tuple | set | frozenset) else ()
        for item in items:
            if not (isinstance(item, str) and item[:1] in ("U", "W") and item.isalnum() and item.isupper()):
                raise ValueError(
                    f"{item!r} is not a Slack member id (like U0123ABCD: profile → ⋮ → Copy member ID)"
                )
        return value


class SlackConfig(SlackSettings):
    """Everything the adapter needs: the settings, the credentials it cannot run without, and
    the address the HTTP mode listens on."""

    bot_token: str = Field(repr=False)
    host: str = "0.0.0.0"

    @field_validator("bot_token")
    @classmethod
    def _bot_token_is_set(cls, value: str) -> str:
        if not value:
            raise ValueError("a Slack bot token (xoxb-…) is required")
        return value

    @model_validator(mode="after")
    def _a_way_to_receive_events(self) -> Self:
        if not self.app_token and not self.signing_secret:
            raise ValueError("Slack needs an app token (Socket Mode) or a signing secret (HTTP mode)")
        return self

    @property
    def mode(self) -> SlackMode:
        """Socket Mode when an app token is set (it wins over a signing secret), else HTTP."""
        return "socket" if self.app_token else "http"


FILE_HOSTS = ("files.slack.com",)
"""Where Slack serves shared files (``url_private``); attachments are fetched from here only."""
