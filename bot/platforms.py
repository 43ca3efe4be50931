"""Which platform adapters to run, and how each is configured from the settings."""

from __future__ import annotations

from collections.abc import Callable, Collection, Coroutine, Mapping, Sequence
from typing import Any

from bot.errors import UsageError
from bot.settings import Settings
from bot.wiring import App
from core.attachments import MAX_IMAGE_BYTES, AttachmentReader
from core.engine import Resumption
from core.parts import Destination
from core.providers.fetch import MIB

PlatformStarter = Callable[[App, Sequence[Resumption]], Coroutine[Any, Any, None]]


def platform_starters(settings: Settings) -> dict[str, PlatformStarter]:
    """The platform adapters whose credentials are set, by platform name; each runs until cancelled."""
    starters: dict[str, PlatformStarter] = {}
    if settings.discord.token is not None:
        starters["discord"] = start_discord
    if settings.slack.bot_token is not None:
        if not (settings.slack.app_token or settings.slack.signing_secret):
            raise UsageError(
                "SLACK_BOT_TOKEN is set, but Slack also needs SLACK_APP_TOKEN (Socket Mode) or "
                "SLACK_SIGNING_SECRET (HTTP mode on SLACK_PORT). See docs/slack.md."
            )
        starters["slack"] = start_slack
    return starters


async def start_slack(app: App, resumptions: Sequence[Resumption] = ()) -> None:
    """Run the Slack adapter (Socket Mode with SLACK_APP_TOKEN, else HTTP) until cancelled."""
    from adapters.slack import SlackConfig, SlackStartupError, run_slack
    from adapters.slack.config import FILE_HOSTS

    if app.settings.slack.bot_token is None:
        raise UsageError("SLACK_BOT_TOKEN is not set.")
    config = SlackConfig.model_validate(dict(app.settings.slack))
    try:
        await run_slack(
            config,
            engine=app.engine,
            ledger=app.ledger,
            clock=app.clock,
            readiness=app.readiness,
            resumptions=resumptions,
            attachments=attachment_reader(
                app,
                hosts=FILE_HOSTS,
                service="Slack",
                headers={"Authorization": f"Bearer {config.bot_token}"},
            ),
        )
    except SlackStartupError as error:
        raise UsageError(f"{error}.") from None


async def start_discord(app: App, resumptions: Sequence[Resumption] = ()) -> None:
    """Run the Discord adapter with the Discord settings until cancelled."""
    from adapters.discord import DiscordConfig, run_discord
    from adapters.discord.config import FILE_HOSTS

    if app.settings.discord.token is None:
        raise UsageError("DISCORD_TOKEN is not set.")
    config = DiscordConfig.model_validate(dict(app.settings.discord))
    await run_discord(
        config,
        engine=app.engine,
        ledger=app.ledger,
        clock=app.clock,
        readiness=app.readiness,
        resumptions=resumptions,
        attachments=attachment_reader(app, hosts=FILE_HOSTS, service="Discord"),
    )


def deliverable(settings: Settings, platforms: Collection[str]) -> Callable[[Destination | None], bool]:
    """Which unfinished jobs this process can deliver at start-up: those of the platforms it runs,
    and on Discord, of the guilds on its shards (``DISCORD_SHARD_IDS``). The others are left to
    the processes that can; this one would only keep their leases alive without delivering them."""
    shard_ids = settings.discord.shard_ids
    shard_count = settings.discord.shard_count

    def reaches(destination: Destination | None) -> bool:
        if destination is None or destination.platform not in platforms:
            return False
        if destination.platform == "discord" and shard_ids and shard_count:
            from adapters.discord.places import on_shards

            return on_shards(destination, shards=shard_ids, shard_count=shard_count)
        return True

    return reaches


def attachment_reader(
    app: App, *, hosts: Sequence[str], service: str, headers: Mapping[str, str] | None = None
) -> AttachmentReader | None:
    """What reads files attached to mentions (``ATTACHMENTS``, ``MAX_ATTACHMENT_KB``), or ``None``
    when that is switched off."""
    settings = app.settings
    if settings.attachments == "off":
        return None
    return AttachmentReader.of(
        app.http,
        hosts=hosts,
        service=service,
        headers=headers,
        max_text_kb=settings.max_attachment_kb,
        max_image_bytes=min(MAX_IMAGE_BYTES, settings.max_media_mb * MIB),
    )
