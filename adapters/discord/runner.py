"""Connecting to Discord: point discord.py at the configured servers, run the client until
cancelled, and carry on without the Message Content intent when Discord refuses it."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import discord
import yarl

from adapters.discord.client import StudioClient
from adapters.discord.config import DiscordConfig
from core.attachments import AttachmentReader
from core.clock import Clock, SystemClock
from core.engine import Engine, Resumption
from core.health import Readiness
from core.ledger import Ledger

log = logging.getLogger(__name__)

INTENT_REFUSED = (
    "Discord refused the Message Content intent (gateway close 4014), which DISCORD_FOLLOW_UPS=thread "
    "needs to read follow-ups that don't mention the bot. Turn on Developer Portal → your application → "
    "Bot → Privileged Gateway Intents → Message Content Intent and restart, or set "
    "DISCORD_FOLLOW_UPS=mention. Carrying on without it: only mentions, replies that ping the bot "
    "and DMs are answered."
)


def point_at(config: DiscordConfig) -> None:
    """Send discord.py's REST calls and gateway connection to the configured servers.

    discord.py keeps both as class attributes, so this affects every client in the process.
    """
    discord.http.Route.BASE = config.api_url.rstrip("/")
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(config.gateway_url)


async def run_discord(
    config: DiscordConfig,
    *,
    engine: Engine,
    ledger: Ledger,
    clock: Clock | None = None,
    readiness: Readiness | None = None,
    resumptions: Sequence[Resumption] = (),
    attachments: AttachmentReader | None = None,
) -> None:
    """Connect to Discord and answer until cancelled; the client is closed on the way out.

    ``readiness`` hears whether the gateway connection is up. ``resumptions`` (jobs a previous
    process left unfinished) are delivered to their stored destinations once connected. When
    cancelled, running answers get a moment to post their last words (see ``StudioClient.close``).
    """
    point_at(config)

    def client_for(chosen: DiscordConfig, pending: Sequence[Resumption]) -> StudioClient:
        return StudioClient(
            chosen,
            engine=engine,
            ledger=ledger,
            clock=clock or SystemClock(),
            readiness=readiness,
            resumptions=pending,
            attachments=attachments,
        )

    client = client_for(config, resumptions)
    try:
        await _serve(client)
    except discord.PrivilegedIntentsRequired:
        if config.follow_ups == "mention":
            raise
        # Asking again with the same intents would only be refused again; without the Message
        # Content intent everything but unmentioned follow-ups still works.
        log.error(INTENT_REFUSED)
        await _serve(client_for(config.model_copy(update={"follow_ups": "mention"}), client.undelivered))


async def _serve(client: StudioClient) -> None:
    async with client:
        try:
            await client.start(client.config.token)
        except discord.LoginFailure:
            log.error("Discord rejected DISCORD_TOKEN: copy a fresh token from the Developer Portal")
            raise
