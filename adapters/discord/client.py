"""The Discord client: mentions and slash commands in, core requests out, answers rendered back."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Any

import discord
import yarl
from discord import app_commands

from adapters.discord.config import DiscordConfig
from adapters.discord.outlets import ChannelOutlet, InteractionOutlet, ReplyOutlet
from adapters.discord.surface import COLOURS, DiscordSurface, Outlet, safe_filename, view_embed
from core.budget import budget_command
from core.clock import Clock
from core.commands import BY_NAME
from core.engine import Engine
from core.ledger import Ledger
from core.parts import Intent, Part, Request, Scope, TextDelta
from core.render import FAILURE_PREFIX, MessageState, View, render

log = logging.getLogger(__name__)

GUILD_PLATFORM = "discord"
DM_PLATFORM = "discord-dm"
SHUTDOWN_GRACE_S = 5.0
"""How long closing waits for cancelled answers to refund and send their last edit."""
LONG_JOBS = frozenset({Intent.SONG})
"""Intents whose work may outlive the 15-minute interaction token."""
DM_UNFUNDED = (
    "Direct messages aren't funded on this bot, so I can't make anything here. "
    "Mention me in a server we share, or use my slash commands there."
)
INTERRUPTED = "I was stopped before finishing this. Nothing was charged for it; please ask again."
_HEADING = re.compile(r"^#+\s+(.+)$", re.MULTILINE)


def point_at(config: DiscordConfig) -> None:
    """Send discord.py's REST calls and gateway connection to the configured servers.

    discord.py keeps both as class attributes, so this affects every client in the process.
    """
    discord.http.Route.BASE = config.api_url.rstrip("/")
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(config.gateway_url)


async def run_discord(config: DiscordConfig, *, engine: Engine, ledger: Ledger, clock: Clock) -> None:
    """Connect to Discord and answer until cancelled; the client is closed on the way out."""
    point_at(config)
    client = StudioClient(config, engine=engine, ledger=ledger, clock=clock)
    async with client:
        try:
            await client.start(config.token)
        except discord.LoginFailure:
            log.error("Discord rejected DISCORD_TOKEN: copy a fresh token from the Developer Portal")
            raise


def message_scope(message: discord.Message) -> Scope:
    """Who pays for a message: its guild, or the author in a DM."""
    if message.guild is not None:
        return Scope(GUILD_PLATFORM, str(message.guild.id))
    guild_id = getattr(message.channel, "guild_id", None)  # a channel discord.py has not cached
    if guild_id:
        return Scope(GUILD_PLATFORM, str(guild_id))
    return Scope(DM_PLATFORM, str(message.author.id))


def interaction_scope(interaction: discord.Interaction[Any]) -> Scope:
    if interaction.guild_id is not None:
        return Scope(GUILD_PLATFORM, str(interaction.guild_id))
    return Scope(DM_PLATFORM, str(interaction.user.id))


def markdown_filename(text: str) -> str:
    """``the-transistor.md`` from the text's first heading, else ``answer.md``."""
    heading = _HEADING.search(text)
    stem = safe_filename(heading.group(1).lower(), fallback="answer")[:60] if heading else "answer"
    return f"{stem}.md"


class StudioClient(discord.Client):
    """A discord.py client wired to the engine: it translates and never decides anything itself."""

    def __init__(self, config: DiscordConfig, *, engine: Engine, ledger: Ledger, clock: Clock) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        intents.guild_messages = True
        intents.dm_messages = config.allow_dms
        super().__init__(
            intents=intents,
            allowed_mentions=discord.AllowedMentions.none(),
            guild_ready_timeout=config.guild_ready_timeout,
        )
        self.config = config
        self.engine = engine
        self.ledger = ledger
        self.clock = clock
        self.tree = app_commands.CommandTree(self)
        self._jobs: set[asyncio.Task[Any]] = set()
        self._add_commands()

    # --- start-up -------------------------------------------------------------------------------

    async def setup_hook(self) -> None:
        """Register the slash commands: per guild when ``guild_ids`` is set (instant), else globally."""
        try:
            if self.config.guild_ids:
                for guild_id in self.config.guild_ids:
                    guild = discord.Object(id=guild_id)
                    self.tree.copy_global_to(guild=guild)
                    synced = await self.tree.sync(guild=guild)
                    log.info("synced %d slash commands to guild %d", len(synced), guild_id)
            else:
                synced = await self.tree.sync()
                log.info("synced %d global slash commands (may take a while to appear)", len(synced))
        except discord.HTTPException as error:
            log.error(
                "could not sync slash commands (%s); was the bot invited with the "
                "applications.commands scope? Mentions still work.",
                error,
            )

    async def close(self) -> None:
        """Stop answering: cancel running answers while the connection still works, so each
        refunds what it held and its last edit lands, then disconnect."""
        running = {task for task in self._jobs if not task.done()}
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running, timeout=SHUTDOWN_GRACE_S)
        await super().close()

    @contextlib.contextmanager
    def _job(self) -> Iterator[None]:
        """Track the current task as a running answer until the block ends."""
        task = asyncio.current_task()
        if task is None:
            yield
            return
        self._jobs.add(task)
        try:
            yield
        finally:
            self._jobs.discard(task)

    async def on_ready(self) -> None:
        log.info("connected to Discord as %s in %d guilds", self.user, len(self.guilds))

    # --- mentions ---------------------------------------------------------------------------------

    async def on_message(self, message: discord.Message) -> None:
        me = self.user
        if me is None or message.author.bot:
            return
        scope = message_scope(message)
        if scope.platform == DM_PLATFORM:
            if not self.config.allow_dms:
                return
        elif not any(user.id == me.id for user in message.mentions):
            return
        if not await self.ledger.first_sighting(f"discord:message:{message.id}"):
            return
        text = re.sub(rf"<@!?{me.id}>", " ", message.content).strip()
        outlet = ReplyOutlet(message)
        try:
            if await self._unfunded_dm(scope):
                await outlet.refuse(_notice(DM_UNFUNDED))
                return
            with self._job():
                await self._answer(Request(scope=scope, user=str(message.author.id), text=text), outlet)
        except Exception:
            log.exception("answering message %s failed", message.id)

    # --- slash commands -----------------------------------------------------------------------------

    def _add_commands(self) -> None:
        contexts = app_commands.AppCommandContext(guild=True, dm_channel=self.config.allow_dms)
        installs = app_commands.AppInstallationType(guild=True, user=False)

        def generation(name: str, intent: Intent) -> app_commands.Command[Any, Any, None]:
            @app_commands.describe(prompt="What you'd like")
            async def callback(interaction: discord.Interaction[Any], prompt: str) -> None:
                await self._generate(interaction, intent, prompt)

            return app_commands.Command(
                name=name,
                description=BY_NAME[name].description,
                callback=callback,
                allowed_contexts=contexts,
                allowed_installs=installs,
            )

        for name, intent in (("imagine", Intent.IMAGE), ("song", Intent.SONG), ("research", Intent.RESEARCH)):
            self.tree.add_command(generation(name, intent))

        admins_only = self.config.budget_visible_to == "admins"
        budget = app_commands.Group(
            name="budget",
            description=BY_NAME["budget"].description,
            default_permissions=discord.Permissions(manage_guild=True) if admins_only else None,
            allowed_contexts=contexts,
            allowed_installs=installs,
        )

        async def show(interaction: discord.Interaction[Any]) -> None:
            await self._budget(interaction, "show")

        @app_commands.describe(amount="Monthly limit in dollars, e.g. 25 or 12.50")
        async def set_limit(interaction: discord.Interaction[Any], amount: str) -> None:
            await self._budget(interaction, f"set {amount}")

        async def reset(interaction: discord.Interaction[Any]) -> None:
            await self._budget(interaction, "reset")

        for name, description, callback in (
            ("show", "Limit, spend, what remains and the last transactions", show),
            ("set", "Set the monthly limit (Manage Server)", set_limit),
            ("reset", "Restore the default monthly limit (Manage Server)", reset),
        ):
            budget.add_command(app_commands.Command(name=name, description=description, callback=callback))
        self.tree.add_command(budget)

    async def _generate(self, interaction: discord.Interaction[Any], intent: Intent, prompt: str) -> None:
        try:
            await interaction.response.defer(thinking=True)
        except discord.HTTPException as error:
            log.warning("could not defer interaction %s (%s)", interaction.id, error)
            return
        scope = interaction_scope(interaction)
        outlet: Outlet
        if intent in LONG_JOBS:
            anchor = (
                f"🎵 Composing for {interaction.user.mention}: songs take a few minutes, "
                "so progress and the song follow here."
            )
            outlet = ChannelOutlet(interaction, anchor=anchor)
        else:
            outlet = InteractionOutlet(interaction)
        request = Request(scope=scope, user=str(interaction.user.id), text=prompt, intent=intent)
        try:
            if await self._unfunded_dm(scope):
                await outlet.refuse(_notice(DM_UNFUNDED))
                return
            with self._job():
                await self._answer(request, outlet)
        except Exception:
            log.exception("answering interaction %s failed", interaction.id)
            with contextlib.suppress(discord.HTTPException):
                await interaction.followup.send(
                    embed=_notice(f"I couldn't deliver this answer (ref `{request.id}`)."), ephemeral=True
                )

    async def _budget(self, interaction: discord.Interaction[Any], args: str) -> None:
        scope = interaction_scope(interaction)
        if scope.platform == DM_PLATFORM:
            # In a DM the budget is the person's own allowance, set by the operator.
            can_view, can_change = True, False
        else:
            can_change = interaction.permissions.manage_guild
            can_view = can_change or self.config.budget_visible_to == "everyone"
        answer = await budget_command(
            self.ledger, scope, args, user=str(interaction.user.id), can_view=can_view, can_change=can_change
        )
        embed = discord.Embed(description=answer, colour=COLOURS[MessageState.DONE])
        await interaction.response.send_message(embed=embed, ephemeral=True)

    # --- shared ---------------------------------------------------------------------------------------

    async def _unfunded_dm(self, scope: Scope) -> bool:
        if scope.platform != DM_PLATFORM:
            return False
        return (await self.ledger.report(scope, recent=0)).limit == 0

    async def _answer(self, request: Request, outlet: Outlet) -> None:
        """Render the engine's answer through ``outlet``; long text also arrives as a file."""
        surface = DiscordSurface(
            outlet,
            clock=self.clock,
            edit_interval=self.config.edit_interval,
            uploading_notice_bytes=self.config.uploading_notice_bytes,
        )
        pieces: list[str] = []
        stream = _collect_text(self.engine.handle(request), pieces)
        try:
            async with contextlib.aclosing(stream):
                await render(stream, surface, clock=self.clock)
        except asyncio.CancelledError:
            with contextlib.suppress(discord.HTTPException):
                await outlet.send(embed=_notice(INTERRUPTED))
            raise
        text = "".join(pieces)
        if len(text) > surface.max_chars:
            await surface.attach_text(text, filename=markdown_filename(text))


async def _collect_text(parts: AsyncIterator[Part], pieces: list[str]) -> AsyncGenerator[Part, None]:
    """Pass ``parts`` through, keeping the streamed text; close the source however it ends."""
    try:
        async for part in parts:
            if isinstance(part, TextDelta):
                pieces.append(part.text)
            yield part
    finally:
        close = getattr(parts, "aclose", None)
        if close is not None:
            await close()


def _notice(text: str) -> discord.Embed:
    return view_embed(View(FAILURE_PREFIX + text, MessageState.FAILED))
