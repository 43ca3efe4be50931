"""The Discord client: mentions and slash commands in, core requests out, answers rendered back."""

from __future__ import annotations

import contextlib
import logging
import math
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

import discord
from discord import app_commands

from adapters.discord.buttons import (
    LABELS,
    InstructionModal,
    StudioButton,
    VaryChoice,
    media_view,
    submitted_instruction,
    vary_view,
)
from adapters.discord.commands import build_commands
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
from adapters.discord.pacing import RequestPacer, global_share
from adapters.discord.places import (
    DM_PLATFORM,
    PLATFORM,
    interaction_destination,
    interaction_scope,
    message_destination,
    message_scope,
    on_shards,
    policy_channel,
    role_ids,
    snowflake,
)
from adapters.discord.surface import (
    COLOURS,
    DiscordSurface,
    Outlet,
    safe_filename,
    view_embed,
)
from adapters.discord.surface import PACE as DISCORD_PACE
from core import studio
from core.attachments import AttachmentReader, AttachmentRef, attach, attach_reference
from core.clock import Clock
from core.commands import Command
from core.commands.dispatcher import CommandContext, Dispatcher, Reply
from core.engine import Engine, Resumption
from core.health import Readiness
from core.inflight import Inflight
from core.ledger import Ledger
from core.pacing import Buckets
from core.parts import Access, Destination, Failure, Intent, Part, Request, Scope, Strength
from core.render import FAILURE_PREFIX, MessageState, View, render
from core.streams import single

log = logging.getLogger(__name__)

LONG_JOBS = frozenset({Intent.SONG})
"""Intents whose work may outlive the 15-minute interaction token."""
DM_UNFUNDED = (
    "Direct messages aren't funded on this bot, so I can't make anything here. "
    "Mention me in a server we share, or use my slash commands there."
)
_HEADING = re.compile(r"^#+\s+(.+)$", re.MULTILINE)


def markdown_filename(text: str) -> str:
    """``the-transistor.md`` from the text's first heading, else ``answer.md``."""
    heading = _HEADING.search(text)
    stem = safe_filename(heading.group(1).lower(), fallback="answer")[:60] if heading else "answer"
    return f"{stem}.md"


class StudioClient(discord.AutoShardedClient):
    """A discord.py client wired to the engine: it translates and never decides anything itself.

    It runs the shards ``config.shard_ids`` of ``config.shard_count`` (every shard when no ids are
    given; as many as Discord recommends when no count is), so several processes can split one
    bot's guilds; Discord sends each shard the events of its guilds only."""

    def __init__(
        self,
        config: DiscordConfig,
        *,
        engine: Engine,
        ledger: Ledger,
        clock: Clock,
        readiness: Readiness | None = None,
        resumptions: Sequence[Resumption] = (),
        commands: Dispatcher | None = None,
        attachments: AttachmentReader | None = None,
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
            shard_count=config.shard_count,
            # None (discord.py's default, missing from its type hints) means every shard.
            shard_ids=list(config.shard_ids) or None,  # type: ignore[arg-type]
        )
        self.config = config
        self.engine = engine
        self.conversations = engine.conversations
        """Where conversations are remembered; ``None`` answers every message on its own."""
        self.ledger = ledger
        self.clock = clock
        self.pacer = RequestPacer(clock=clock, limit=global_share(config.shard_ids, config.shard_count))
        """Every call of every answer takes a turn: this process's share of Discord's global limit."""
        self.edits = Buckets(DISCORD_PACE, clock=clock)
        """Edits per channel, shared by the answers written there."""
        self.readiness = readiness
        self.attachments = attachments
        """Reads files attached to mentions from Discord's CDN; ``None``: attachments are refused."""
        self.tree = app_commands.CommandTree(self)
        self.commands = commands or Dispatcher(
            ledger=ledger,
            conversations=engine.conversations,
            intents=engine.intents,
            budget_visible_to=config.budget_visible_to,
            policies=engine.policies,
            roles=True,
            dashboard=engine.dashboard,
        )
        self.inflight = Inflight()
        """Answers being delivered; ``close`` lets them post their last words."""
        self._resumptions = list(resumptions)
        self._connected_shards: set[int] = set()
        if readiness is not None:
            readiness.expect(PLATFORM)
            readiness.describe(PLATFORM, self.shard_report)
        self.add_dynamic_items(StudioButton, VaryChoice)
        for command in build_commands(
            self.commands.commands,
            self._invoke,
            allow_dms=config.allow_dms,
            admin_only=self.commands.admin_only,
        ):
            self.tree.add_command(command)

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
        """Let running answers post their last words while the connection still works, then
        disconnect. (At shutdown the engine has already ended their streams.)"""
        self._set_ready(False)
        self.engine.handoff.close(PLATFORM)
        await self.inflight.finish()
        await super().close()

    async def launch_shards(self) -> None:
        """Connect this process's shards (asking Discord for the count first when none is set)."""
        await super().launch_shards()
        log.info("discord: running shards %s of %d", _listed(self.running_shards), self.shard_count or 0)

    @property
    def running_shards(self) -> tuple[int, ...]:
        """The shards this process runs (empty until the shard count is known)."""
        if self.shard_ids:
            return tuple(self.shard_ids)
        return tuple(range(self.shard_count or 0))

    def shard_report(self) -> Mapping[str, object]:
        """What ``/readyz`` shows: the shard count and, per shard of this process, whether it is
        connected and its heartbeat latency (``None`` before the first heartbeat is answered)."""
        latencies = dict(self.latencies)
        shards = {}
        for shard in self.running_shards:
            latency = latencies.get(shard, math.inf)
            shards[str(shard)] = {
                "connected": shard in self._connected_shards,
                "latency_ms": round(latency * 1000, 1) if math.isfinite(latency) else None,
            }
        return {"shard_count": self.shard_count, "shards": shards}

    def _set_ready(self, ready: bool) -> None:
        if self.readiness is not None:
            self.readiness.mark(PLATFORM, ready)

    def _shard_up(self, shard_id: int, up: bool) -> None:
        if up:
            self._connected_shards.add(shard_id)
        else:
            self._connected_shards.discard(shard_id)
        running = self.running_shards
        self._set_ready(bool(running) and self._connected_shards.issuperset(running))

    async def on_ready(self) -> None:
        log.info(
            "connected to Discord as %s in %d guilds (shards %s of %d)",
            self.user,
            len(self.guilds),
            _listed(self.running_shards),
            self.shard_count or 0,
        )
        self._deliver_resumptions()
        # From now on, jobs of dead processes in the guilds of our shards are ours to finish.
        self.engine.handoff.open(PLATFORM, reaches=self._reaches, deliver=self._deliver_taken_over)

    def _reaches(self, destination: Destination) -> bool:
        return on_shards(destination, shards=self.running_shards, shard_count=self.shard_count or 0)

    def _deliver_taken_over(self, resumption: Resumption) -> None:
        self.inflight.spawn(self._deliver(resumption), name=f"discord-resume-{resumption.request.id}")

    async def on_shard_ready(self, shard_id: int) -> None:
        self._shard_up(shard_id, True)

    async def on_shard_resumed(self, shard_id: int) -> None:
        log.info("discord: shard %d reconnected", shard_id)
        self._shard_up(shard_id, True)

    async def on_shard_disconnect(self, shard_id: int) -> None:
        self._shard_up(shard_id, False)

    # --- jobs from before a restart -------------------------------------------------------------

    @property
    def undelivered(self) -> tuple[Resumption, ...]:
        """Resumed jobs not handed out yet (the client never got connected)."""
        return tuple(self._resumptions)

    def _deliver_resumptions(self) -> None:
        """Start delivering every resumed job, once (``on_ready`` fires again after a re-identify)."""
        pending, self._resumptions = self._resumptions, []
        for resumption in pending:
            self.inflight.spawn(self._deliver(resumption), name=f"discord-resume-{resumption.request.id}")

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
        channel_id = snowflake(destination.channel)
        if destination.platform != PLATFORM or channel_id is None:
            return None
        guild_id = snowflake(destination.extra.get("guild"))
        guild = self.get_guild(guild_id) if guild_id is not None else None
        return DestinationOutlet(
            self.get_partial_messageable(channel_id, guild_id=guild_id),
            origin_id=snowflake(destination.message),
            requester_id=snowflake(destination.extra.get("user") or requester),
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
        channel = policy_channel(message.channel)
        if not dm and not await self.engine.policies.listens(scope, channel):
            return  # switched off here: no answer, no charge
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
        if not await self.ledger.database.first_sighting(f"discord:message:{message.id}"):
            return
        text = re.sub(rf"<@!?{me.id}>", " ", message.content).strip()
        outlet = ReplyOutlet(message, on_sent=self._linker(conversation, scope))
        author = message.author
        request = Request(
            scope=scope,
            user=str(author.id),
            text=text,
            destination=message_destination(message),
            conversation=conversation,
            access=Access(
                channel=None if dm else channel,
                roles=role_ids(author),
                admin=dm or (isinstance(author, discord.Member) and author.guild_permissions.manage_guild),
            ),
        )
        try:
            if await self._unfunded_dm(scope):
                await outlet.refuse(_notice(DM_UNFUNDED))
                return
            with self.inflight.track():
                attached = await attach(self.attachments, request, attachment_refs(message))
                if isinstance(attached, Failure):
                    await self._render(request, single(attached), outlet)
                    return
                await self._render(attached, self.engine.handle(attached), outlet)
        except Exception:
            log.exception("answering message %s failed", message.id)

    # --- slash commands -----------------------------------------------------------------------------

    async def _invoke(
        self,
        interaction: discord.Interaction[Any],
        command: Command,
        text: str,
        files: tuple[AttachmentRef, ...] = (),
    ) -> None:
        """A slash command: the core answers it, or hands back a request to render here. A file
        given with it (``/imagine``'s reference) is read from Discord's CDN first; a refusal is
        private and costs nothing."""
        scope = interaction_scope(interaction)
        direct = scope.platform == DM_PLATFORM
        conversation = None
        if command.conversational and self.conversations is not None:
            try:
                conversation = await current_conversation(interaction, self.conversations)
            except Exception:
                log.exception("could not look up the conversation for interaction %s", interaction.id)
        context = CommandContext(
            scope=scope,
            user=str(interaction.user.id),
            admin=direct or interaction.permissions.manage_guild,
            direct=direct,
            conversation=conversation,
            channel=None if direct else policy_channel(interaction.channel),
            roles=role_ids(interaction.user),
        )
        outcome = await self.commands.dispatch(command.name, text, context)
        if isinstance(outcome, Reply):
            embed = discord.Embed(description=outcome.text, colour=COLOURS[MessageState.DONE])
            await interaction.response.send_message(embed=embed, ephemeral=outcome.private)
            return
        for file in files[:1]:  # the catalogue's commands take one file at most
            referenced = await attach_reference(self.attachments, outcome, file)
            if isinstance(referenced, Failure):
                await interaction.response.send_message(embed=_notice(referenced.message), ephemeral=True)
                return
            outcome = referenced
        await self._generate(interaction, outcome)

    async def _generate(
        self, interaction: discord.Interaction[Any], request: Request, *, heading: str | None = None
    ) -> None:
        """Run ``request`` and show its answer as the interaction's response; ``heading`` is a
        line above it (who pressed the button that asked for it)."""
        try:
            deferred = await interaction.response.defer(thinking=True)
        except discord.HTTPException as error:
            log.warning("could not defer interaction %s (%s)", interaction.id, error)
            return
        anchor_id = deferred.message_id if deferred is not None else None
        if anchor_id is None:
            with contextlib.suppress(discord.HTTPException):
                anchor_id = (await interaction.original_response()).id
        if request.conversation is None and self.conversations is not None:
            request = replace(request, conversation=command_conversation(interaction, anchor_id=anchor_id))
        request = replace(request, destination=interaction_destination(interaction, message_id=anchor_id))
        on_sent = self._linker(request.conversation, request.scope)
        outlet: Outlet
        if request.intent in LONG_JOBS:
            anchor = (
                f"🎵 Composing for {interaction.user.mention}: songs take a few minutes, "
                "so progress and the song follow here."
            )
            if heading:
                anchor = f"{heading}\n{anchor}"
            outlet = ChannelOutlet(interaction, anchor=anchor, on_sent=on_sent)
        else:
            outlet = InteractionOutlet(interaction, on_sent=on_sent, heading=heading)
        try:
            if await self._unfunded_dm(request.scope):
                await outlet.refuse(_notice(DM_UNFUNDED))
                return
            with self.inflight.track():
                await self._render(request, self.engine.handle(request), outlet)
        except Exception:
            log.exception("answering interaction %s failed", interaction.id)
            with contextlib.suppress(discord.HTTPException):
                await interaction.followup.send(
                    embed=_notice(f"I couldn't deliver this answer (ref `{request.id}`)."), ephemeral=True
                )

    # --- buttons under images and songs --------------------------------------------------------------

    async def studio_press(
        self,
        interaction: discord.Interaction[Any],
        custom_id: str,
        *,
        strength: Strength | None = None,
        instruction: str | None = None,
    ) -> None:
        """A press of a button under delivered media (or the Edit modal's submission): a new
        request by the presser, rendered like ``/imagine``; a refusal only they see; or a delete."""
        scope = interaction_scope(interaction)
        direct = scope.platform == DM_PLATFORM
        outcome = await studio.press(
            self.engine.studio,
            custom_id,
            scope=scope,
            user=str(interaction.user.id),
            access=Access(
                channel=None if direct else policy_channel(interaction.channel),
                roles=role_ids(interaction.user),
                admin=direct or interaction.permissions.manage_guild,
            ),
            destination=interaction_destination(interaction, message_id=None),
            instruction=instruction or "",
            strength=strength or "subtle",
        )
        parsed = studio.parse_action_id(custom_id)
        action = parsed[0] if parsed is not None else None
        if isinstance(outcome, studio.Expired):
            await self._expire(interaction, outcome)
            return
        if isinstance(outcome, Reply):
            if action is studio.Action.EDIT and instruction is None and outcome.text == studio.NO_INSTRUCTION:
                await interaction.response.send_modal(InstructionModal(custom_id))
                return
            await interaction.response.send_message(embed=_notice(outcome.text), ephemeral=True)
            return
        if isinstance(outcome, studio.Removal):
            await interaction.response.defer()
            if interaction.message is not None:
                with contextlib.suppress(discord.NotFound):
                    await interaction.message.delete()
            return
        if action is studio.Action.VARY and strength is None and parsed is not None:
            embed = discord.Embed(description="How far from this image?", colour=COLOURS[MessageState.DONE])
            await interaction.response.send_message(embed=embed, view=vary_view(parsed[1]), ephemeral=True)
            return
        label = LABELS[action][0] if action is not None else "Pressed"
        if strength is not None:
            label = f"{label} ({strength})"
        await self._generate(interaction, outcome, heading=f"{label} by {interaction.user.mention}")

    async def _expire(self, interaction: discord.Interaction[Any], expired: studio.Expired) -> None:
        """Refuse privately, and grey out the buttons that stopped working for everyone, with the
        reason as a line of the message (Discord buttons have no tooltip). A press from elsewhere
        (the private Subtle/Strong choice) only gets the refusal."""
        message = interaction.message
        carries = (
            message is not None
            and not message.flags.ephemeral
            and any(item in expired.actions for item in _custom_ids(message))
        )
        if message is None or not carries:
            await interaction.response.send_message(embed=_notice(expired.text), ephemeral=True)
            return
        line = f"⌛ {expired.reason}"
        content = (
            message.content if line in message.content else "\n".join(filter(None, (message.content, line)))
        )
        try:
            await interaction.response.edit_message(
                content=content,
                view=media_view(expired.actions, disabled=expired.expired_actions),
                allowed_mentions=discord.AllowedMentions.none(),
            )
        except discord.HTTPException as error:  # e.g. the message is gone: the refusal still goes out
            log.info("could not disable expired buttons on message %s (%s)", message.id, error)
            await interaction.response.send_message(embed=_notice(expired.text), ephemeral=True)
            return
        await interaction.followup.send(embed=_notice(expired.text), ephemeral=True)

    async def on_interaction(self, interaction: discord.Interaction[Any]) -> None:
        """The Edit modal's submission, found by its custom id (it may predate a restart)."""
        if interaction.type is not discord.InteractionType.modal_submit:
            return
        data: dict[str, Any] = dict(interaction.data or {})
        custom_id = str(data.get("custom_id", ""))
        parsed = studio.parse_action_id(custom_id)
        if parsed is None or parsed[0] is not studio.Action.EDIT:
            return
        await self.studio_press(interaction, custom_id, instruction=submitted_instruction(data))

    def _linker(self, conversation: str | None, scope: Scope) -> OnSent | None:
        if self.conversations is None or conversation is None:
            return None
        return linker(self.conversations, conversation, scope=scope)

    # --- shared ---------------------------------------------------------------------------------------

    async def _unfunded_dm(self, scope: Scope) -> bool:
        if scope.platform != DM_PLATFORM:
            return False
        return (await self.ledger.report(scope, recent=0)).limit == 0

    async def _render(self, request: Request, parts: AsyncIterator[Part], outlet: Outlet) -> None:
        """Render ``parts`` (the answer to ``request``) through ``outlet``; long text also arrives
        as a file."""
        surface = DiscordSurface(
            outlet, clock=self.clock, uploading_notice_bytes=self.config.uploading_notice_bytes
        )
        destination = request.destination
        channel = destination.channel if destination is not None else f"request:{request.id}"
        rendered = await render(
            parts, surface, clock=self.clock, bucket=self.edits.of(channel), gate=self.pacer
        )
        if len(rendered.text) > surface.max_chars:
            await self.pacer.turn(urgent=True)
            await surface.attach_text(rendered.text, filename=markdown_filename(rendered.text))


def attachment_refs(message: discord.Message) -> list[AttachmentRef]:
    """The files attached to ``message``, as Discord announces them."""
    return [
        AttachmentRef(url=item.url, name=item.filename, size=item.size, content_type=item.content_type or "")
        for item in message.attachments
    ]


def _listed(shards: Sequence[int]) -> str:
    return ",".join(map(str, shards)) or "none"


def _notice(text: str) -> discord.Embed:
    return view_embed(View(FAILURE_PREFIX + text, MessageState.FAILED))


def _custom_ids(message: discord.Message) -> list[str]:
    """The custom ids of the buttons a message carries."""
    return [
        str(child.custom_id)
        for row in message.components
        if isinstance(row, discord.ActionRow)
        for child in row.children
        if isinstance(child, discord.Button) and child.custom_id
    ]
