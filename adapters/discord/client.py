"""The Discord client: mentions and slash commands in, core requests out, answers rendered back."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import discord
import yarl
from discord import app_commands

from adapters.discord.config import DiscordConfig
from adapters.discord.conversations import (
    command_conversation,
    current_conversation,
    linker,
    message_conversation,
)
from adapters.discord.outlets import (
    FALLBACK_FILE_LIMIT,
    ChannelOutlet,
    DestinationOutlet,
    InteractionOutlet,
    OnSent,
    ReplyOutlet,
)
from adapters.discord.pacing import RequestPacer
from adapters.discord.surface import (
    COLOURS,
    DiscordSurface,
    Outlet,
    safe_filename,
    view_embed,
)
from core.budget import budget_command
from core.clock import Clock, SystemClock
from core.commands import BY_NAME
from core.conversations import ConversationStore, forget_command
from core.engine import Engine, Resumption
from core.health import Readiness
from core.jobs import JobState
from core.ledger import Ledger
from core.parts import Destination, Intent, Part, Request, Scope, TextDelta
from core.render import FAILURE_PREFIX, MessageState, View, render

log = logging.getLogger(__name__)

PLATFORM = "discord"
"""The name in destinations and readiness; also the scope platform of guilds."""
GUILD_PLATFORM = PLATFORM
DM_PLATFORM = "discord-dm"
SHUTDOWN_GRACE_S = 5.0
"""How long closing waits for answers to send their last edit (cancelled ones after refunding)."""
LONG_JOBS = frozenset({Intent.SONG})
"""Intents whose work may outlive the 15-minute interaction token."""
DM_UNFUNDED = (
    "Direct messages aren't funded on this bot, so I can't make anything here. "
    "Mention me in a server we share, or use my slash commands there."
)
INTERRUPTED = "I was stopped before finishing this. Nothing was charged for it; please ask again."
KEPT = "⏸️ I'm restarting. This is still being made, and I'll post it here when I'm back."
KEPT_STATES = frozenset({JobState.QUEUED, JobState.RUNNING, JobState.DELIVERING})
"""Job states an interrupted answer is left in when the engine keeps it for the next start."""
_HEADING = re.compile(r"^#+\s+(.+)$", re.MULTILINE)
FORGET_FAILED = "Something went wrong while forgetting, so some of it may still be stored. Please try again."
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
) -> None:
    """Connect to Discord and answer until cancelled; the client is closed on the way out.

    ``readiness`` hears whether the gateway connection is up. ``resumptions`` (jobs a previous
    process left unfinished) are delivered to their stored destinations once connected. When
    cancelled, answers whose stream has already ended still send their last edit; others are
    cancelled (the engine refunds them, or keeps a checkpointed job for the next start when it
    is shutting down) and say which.
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
        await _serve(client_for(replace(config, follow_ups="mention"), client.undelivered))


async def _serve(client: StudioClient) -> None:
    async with client:
        try:
            await client.start(client.config.token)
        except discord.LoginFailure:
            log.error("Discord rejected DISCORD_TOKEN: copy a fresh token from the Developer Portal")
            raise


def message_scope(message: discord.Message) -> Scope:
    """Who pays for a message: its guild, or the author in a DM."""
    guild_id = _guild_id(message)
    if guild_id:
        return Scope(GUILD_PLATFORM, str(guild_id))
    return Scope(DM_PLATFORM, str(message.author.id))


def interaction_scope(interaction: discord.Interaction[Any]) -> Scope:
    if interaction.guild_id is not None:
        return Scope(GUILD_PLATFORM, str(interaction.guild_id))
    return Scope(DM_PLATFORM, str(interaction.user.id))


def message_destination(message: discord.Message) -> Destination:
    """Where to answer a mention after a restart: its channel (a thread is a channel), replying to it."""
    return Destination(
        platform=PLATFORM,
        channel=str(message.channel.id),
        message=str(message.id),
        extra={"guild": str(_guild_id(message) or ""), "user": str(message.author.id)},
    )


def _guild_id(message: discord.Message) -> int | None:
    if message.guild is not None:
        return message.guild.id
    guild_id: int | None = getattr(message.channel, "guild_id", None)  # a channel discord.py has not cached
    return guild_id


def interaction_destination(interaction: discord.Interaction[Any], *, message_id: int | None) -> Destination:
    """Where to answer a slash command after a restart: under the message its answer goes under
    (the deferred response), as plain channel messages, since the interaction token expires."""
    return Destination(
        platform=PLATFORM,
        channel=str(interaction.channel_id or ""),
        message=str(message_id) if message_id is not None else None,
        extra={"guild": str(interaction.guild_id or ""), "user": str(interaction.user.id)},
    )


def markdown_filename(text: str) -> str:
    """``the-transistor.md`` from the text's first heading, else ``answer.md``."""
    heading = _HEADING.search(text)
    stem = safe_filename(heading.group(1).lower(), fallback="answer")[:60] if heading else "answer"
    return f"{stem}.md"


class StudioClient(discord.Client):
    """A discord.py client wired to the engine: it translates and never decides anything itself."""

    def __init__(
        self,
        config: DiscordConfig,
        *,
        engine: Engine,
        ledger: Ledger,
        clock: Clock,
        readiness: Readiness | None = None,
        resumptions: Sequence[Resumption] = (),
    ) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        intents.guild_messages = True
        intents.dm_messages = config.allow_dms
        # Privileged: only needed to read follow-ups that don't mention the bot.
        intents.message_content = config.follow_ups == "thread" and engine.conversations is not None
        super().__init__(
            intents=intents,
            allowed_mentions=discord.AllowedMentions.none(),
            guild_ready_timeout=config.guild_ready_timeout,
        )
        self.config = config
        self.engine = engine
        self.conversations = engine.conversations
        """Where conversations are remembered; ``None`` answers every message on its own."""
        self.ledger = ledger
        self.clock = clock
        self.pacer = RequestPacer(clock=clock)
        self.readiness = readiness
        self.tree = app_commands.CommandTree(self)
        self._jobs: set[asyncio.Task[Any]] = set()
        self._finishing: set[asyncio.Task[Any]] = set()
        """Running answers whose stream has ended: only their last writes are left."""
        self._resumptions = list(resumptions)
        if readiness is not None:
            readiness.expect(PLATFORM)
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
        """Stop answering, then disconnect. While the connection still works, running answers
        are cancelled (each says whether it was refunded or kept by the engine for the next
        start) and answers whose stream already ended are left to send their last edit."""
        self._set_ready(False)
        running = {task for task in self._jobs if not task.done()}
        for task in running - self._finishing:
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
            self._forget(task)

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._jobs.discard(task)
        self._finishing.discard(task)

    def _set_ready(self, ready: bool) -> None:
        if self.readiness is not None:
            self.readiness.mark(PLATFORM, ready)

    async def on_ready(self) -> None:
        log.info("connected to Discord as %s in %d guilds", self.user, len(self.guilds))
        self._set_ready(True)
        self._deliver_resumptions()

    async def on_resumed(self) -> None:
        log.info("reconnected to Discord")
        self._set_ready(True)

    async def on_disconnect(self) -> None:
        self._set_ready(False)

    # --- jobs from before a restart -------------------------------------------------------------

    @property
    def undelivered(self) -> tuple[Resumption, ...]:
        """Resumed jobs not handed out yet (the client never got connected)."""
        return tuple(self._resumptions)

    def _deliver_resumptions(self) -> None:
        """Start delivering every resumed job, once (``on_ready`` fires again after a re-identify)."""
        pending, self._resumptions = self._resumptions, []
        for resumption in pending:
            task = asyncio.create_task(
                self._deliver(resumption), name=f"discord-resume-{resumption.request.id}"
            )
            self._jobs.add(task)
            task.add_done_callback(self._forget)

    async def _deliver(self, resumption: Resumption) -> None:
        request = resumption.request
        destination = request.destination
        on_sent = self._linker(request.conversation, request.scope)
        outlet = None
        if destination is not None:
            outlet = self._destination_outlet(destination, requester=request.user, on_sent=on_sent)
        if outlet is None:
            log.error("job %s has no usable Discord destination (%r); not delivered", request.id, destination)
            return
        log.info("delivering job %s resumed after a restart", request.id)
        try:
            await self._render(request, resumption.parts, outlet)
        except Exception:
            log.exception("delivering resumed job %s failed", request.id)
            with contextlib.suppress(discord.HTTPException):
                await outlet.send(embed=_notice(f"I couldn't deliver this answer (ref `{request.id}`)."))

    def _destination_outlet(
        self, destination: Destination, *, requester: str, on_sent: OnSent | None
    ) -> DestinationOutlet | None:
        channel_id = _snowflake(destination.channel)
        if destination.platform != PLATFORM or channel_id is None:
            return None
        guild_id = _snowflake(destination.extra.get("guild"))
        guild = self.get_guild(guild_id) if guild_id is not None else None
        return DestinationOutlet(
            self.get_partial_messageable(channel_id, guild_id=guild_id),
            origin_id=_snowflake(destination.message),
            requester_id=_snowflake(destination.extra.get("user") or requester),
            file_limit=guild.filesize_limit if guild is not None else FALLBACK_FILE_LIMIT,
            on_sent=on_sent,
        )

    # --- mentions ---------------------------------------------------------------------------------

    async def on_message(self, message: discord.Message) -> None:
        me = self.user
        if me is None or message.author.bot or message.is_system():
            return
        scope = message_scope(message)
        dm = scope.platform == DM_PLATFORM
        if dm and not self.config.allow_dms:
            return
        mentioned = any(user.id == me.id for user in message.mentions)
        conversation: str | None = None
        if self.conversations is not None:
            try:
                conversation = await message_conversation(
                    message, self.conversations, mentioned=mentioned, dm=dm, follow_ups=self.config.follow_ups
                )
            except Exception:
                log.exception("could not tell which conversation message %s belongs to", message.id)
            if conversation is None and not (mentioned or dm):
                return
        elif not (mentioned or dm):
            return
        if not await self.ledger.first_sighting(f"discord:message:{message.id}"):
            return
        text = re.sub(rf"<@!?{me.id}>", " ", message.content).strip()
        outlet = ReplyOutlet(message, on_sent=self._linker(conversation, scope))
        request = Request(
            scope=scope,
            user=str(message.author.id),
            text=text,
            destination=message_destination(message),
            conversation=conversation,
        )
        try:
            if await self._unfunded_dm(scope):
                await outlet.refuse(_notice(DM_UNFUNDED))
                return
            with self._job():
                await self._render(request, self.engine.handle(request), outlet)
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
        if self.conversations is not None:
            self._add_conversation_commands(self.conversations, contexts, installs)

    def _add_conversation_commands(
        self,
        store: ConversationStore,
        contexts: app_commands.AppCommandContext,
        installs: app_commands.AppInstallationType,
    ) -> None:
        """``/summary [focus]`` and ``/forget [all]``: offered only when conversations are remembered."""

        @app_commands.describe(focus="What the summary should concentrate on (optional)")
        async def summary(interaction: discord.Interaction[Any], focus: str = "") -> None:
            await self._generate(interaction, Intent.SUMMARY, focus)

        @app_commands.describe(everything="Forget every conversation in this server (Manage Server)")
        @app_commands.rename(everything="all")
        async def forget(interaction: discord.Interaction[Any], everything: bool = False) -> None:
            await self._forget_conversation(interaction, store, "all" if everything else "")

        for name, callback in (("summary", summary), ("forget", forget)):
            self.tree.add_command(
                app_commands.Command(
                    name=name,
                    description=BY_NAME[name].description,
                    callback=callback,
                    allowed_contexts=contexts,
                    allowed_installs=installs,
                )
            )

    async def _generate(self, interaction: discord.Interaction[Any], intent: Intent, prompt: str) -> None:
        try:
            deferred = await interaction.response.defer(thinking=True)
        except discord.HTTPException as error:
            log.warning("could not defer interaction %s (%s)", interaction.id, error)
            return
        anchor_id = deferred.message_id if deferred is not None else None
        if anchor_id is None:
            with contextlib.suppress(discord.HTTPException):
                anchor_id = (await interaction.original_response()).id
        scope = interaction_scope(interaction)
        conversation = await self._command_conversation(interaction, intent, anchor_id=anchor_id)
        on_sent = self._linker(conversation, scope)
        outlet: Outlet
        if intent in LONG_JOBS:
            anchor = (
                f"🎵 Composing for {interaction.user.mention}: songs take a few minutes, "
                "so progress and the song follow here."
            )
            outlet = ChannelOutlet(interaction, anchor=anchor, on_sent=on_sent)
        else:
            outlet = InteractionOutlet(interaction, on_sent=on_sent)
        request = Request(
            scope=scope,
            user=str(interaction.user.id),
            text=prompt,
            intent=intent,
            destination=interaction_destination(interaction, message_id=anchor_id),
            conversation=conversation,
        )
        try:
            if await self._unfunded_dm(scope):
                await outlet.refuse(_notice(DM_UNFUNDED))
                return
            with self._job():
                await self._render(request, self.engine.handle(request), outlet)
        except Exception:
            log.exception("answering interaction %s failed", interaction.id)
            with contextlib.suppress(discord.HTTPException):
                await interaction.followup.send(
                    embed=_notice(f"I couldn't deliver this answer (ref `{request.id}`)."), ephemeral=True
                )

    async def _command_conversation(
        self, interaction: discord.Interaction[Any], intent: Intent, *, anchor_id: int | None
    ) -> str | None:
        """A summary reads the conversation it was asked in; other commands join or start one."""
        if self.conversations is None:
            return None
        if intent is not Intent.SUMMARY:
            return command_conversation(interaction, anchor_id=anchor_id)
        try:
            return await current_conversation(interaction, self.conversations)
        except Exception:
            log.exception("could not look up the conversation for interaction %s", interaction.id)
            return None

    async def _forget_conversation(
        self, interaction: discord.Interaction[Any], store: ConversationStore, args: str
    ) -> None:
        scope = interaction_scope(interaction)
        # The people who may change /budget may forget a whole server; in a DM the whole scope is
        # the person's own conversations with the bot.
        can_forget_scope = scope.platform == DM_PLATFORM or interaction.permissions.manage_guild
        try:
            conversation = await current_conversation(interaction, store)
            answer = await forget_command(store, conversation, scope, args, can_forget_scope=can_forget_scope)
        except Exception:
            log.exception("/forget failed for interaction %s", interaction.id)
            answer = FORGET_FAILED
        embed = discord.Embed(description=answer, colour=COLOURS[MessageState.DONE])
        await interaction.response.send_message(embed=embed, ephemeral=True)

    def _linker(self, conversation: str | None, scope: Scope) -> OnSent | None:
        if self.conversations is None or conversation is None:
            return None
        return linker(self.conversations, conversation, scope=scope)

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

    async def _render(self, request: Request, parts: AsyncIterator[Part], outlet: Outlet) -> None:
        """Render ``parts`` (the answer to ``request``) through ``outlet``; long text also arrives
        as a file. Stopped mid-stream, it says whether the work is coming back or was refunded;
        once the stream has ended, ``close`` lets the last writes finish."""
        surface = DiscordSurface(
            outlet,
            clock=self.clock,
            edit_interval=self.config.edit_interval,
            uploading_notice_bytes=self.config.uploading_notice_bytes,
            pacer=self.pacer,
        )
        pieces: list[str] = []
        task = asyncio.current_task()
        stream_ended = False

        def end() -> None:
            nonlocal stream_ended
            stream_ended = True
            if task is not None:
                self._finishing.add(task)

        stream = _collect_text(parts, pieces, on_end=end)
        try:
            async with contextlib.aclosing(stream):
                await render(stream, surface, clock=self.clock)
        except asyncio.CancelledError:
            if not stream_ended:
                notice = await self._interruption(request)
                with contextlib.suppress(discord.HTTPException):
                    await outlet.send(embed=notice)
            raise
        text = "".join(pieces)
        if len(text) > surface.max_chars:
            await surface.attach_text(text, filename=markdown_filename(text))

    async def _interruption(self, request: Request) -> discord.Embed:
        """What to say when stopped mid-answer: a job the engine kept (shutting down with a
        provider checkpoint) comes back after the restart; anything else was refunded."""
        try:
            job = await self.engine.jobs.get(request.id) if self.engine.jobs is not None else None
        except Exception:
            log.exception("could not look up job %s", request.id)
            job = None
        if job is not None and job.state in KEPT_STATES:
            return view_embed(View(KEPT, MessageState.DONE))
        return _notice(INTERRUPTED)


async def _collect_text(
    parts: AsyncIterator[Part], pieces: list[str], *, on_end: Callable[[], None]
) -> AsyncGenerator[Part, None]:
    """Pass ``parts`` through, keeping the streamed text and calling ``on_end`` once they have
    all arrived; close the source however it ends."""
    try:
        async for part in parts:
            if isinstance(part, TextDelta):
                pieces.append(part.text)
            yield part
        on_end()
    finally:
        close = getattr(parts, "aclose", None)
        if close is not None:
            await close()


def _snowflake(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None


def _notice(text: str) -> discord.Embed:
    return view_embed(View(FAILURE_PREFIX + text, MessageState.FAILED))
