"""Which platform adapters to run, and how each is configured from the settings."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from bot.errors import UsageError
from bot.settings import Settings
from bot.wiring import App
from core.engine import Resumption

PlatformStarter = Callable[[App, Sequence[Resumption]], Coroutine[Any, Any, None]]


def platform_starters(settings: Settings) -> dict[str, PlatformStarter]:
    """The platform adapters whose credentials are set, by platform name; each runs until cancelled."""
    starters: dict[str, PlatformStarter] = {}
    if settings.discord_token is not None:
        starters["discord"] = start_discord
    if settings.slack_bot_token:
        if not (settings.slack_app_token or settings.slack_signing_secret):
            raise UsageError(
                "SLACK_BOT_TOKEN is set, but Slack also needs SLACK_APP_TOKEN (Socket Mode) or "
                "SLACK_SIGNING_SECRET (HTTP mode on SLACK_PORT). See docs/slack.md."
            )
        starters["slack"] = start_slack
    return starters


async def start_slack(app: App, resumptions: Sequence[Resumption] = ()) -> None:
    """Run the Slack adapter (Socket Mode with SLACK_APP_TOKEN, else HTTP) until cancelled."""
    from adapters.slack import SlackConfig, SlackStartupError, run_slack

    settings = app.settings
    if not settings.slack_bot_token:
        raise UsageError("SLACK_BOT_TOKEN is not set.")
    config = SlackConfig(
        bot_token=settings.slack_bot_token.get_secret_value(),
        app_token=settings.slack_app_token.get_secret_value() if settings.slack_app_token else None,
        signing_secret=(
            settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
        ),
        port=settings.slack_port,
        api_url=settings.slack_api_url,
        admin_ids=frozenset(settings.slack_admin_ids),
        budget_visible_to=settings.budget_visible_to,
        follow_ups=settings.slack_follow_ups,
    )
    try:
        await run_slack(
            config,
            engine=app.engine,
            ledger=app.ledger,
            clock=app.clock,
            readiness=app.readiness,
            resumptions=resumptions,
        )
    except SlackStartupError as error:
        raise UsageError(f"{error}.") from None


async def start_discord(app: App, resumptions: Sequence[Resumption] = ()) -> None:
    """Run the Discord adapter with the Discord settings until cancelled."""
    from adapters.discord import DiscordConfig, run_discord

    settings = app.settings
    if settings.discord_token is None:
        raise UsageError("DISCORD_TOKEN is not set.")
    config = DiscordConfig(
        token=settings.discord_token.get_secret_value(),
        api_url=settings.discord_api_url,
        gateway_url=settings.discord_gateway_url,
        guild_ids=tuple(int(guild_id) for guild_id in settings.discord_guild_ids),
        allow_dms=settings.discord_allow_dms,
        budget_visible_to=settings.budget_visible_to,
        follow_ups=settings.discord_follow_ups,
    )
    await run_discord(
        config,
        engine=app.engine,
        ledger=app.ledger,
        clock=app.clock,
        readiness=app.readiness,
        resumptions=resumptions,
    )
