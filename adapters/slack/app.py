"""The Slack app: Bolt listeners that turn mentions, thread follow-ups and slash commands into core
requests, and the Socket Mode or HTTP front door they arrive through."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Coroutine, Sequence
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import ClientError, ClientSession, ClientTimeout
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from adapters.slack.buttons import (
    EDIT_CALLBACK,
    EMPTY_INSTRUCTION,
    INSTRUCTION_BLOCK,
    PRESSED,
    Leftovers,
    edit_dialog,
    expired_blocks,
    leftovers_of,
    pressed_strength,
    submitted,
)
from adapters.slack.config import SlackConfig
from adapters.slack.places import PLATFORM, anchor_text, cannot_post, thread_destination
from adapters.slack.retry import RateLimitRetry, ServerErrorRetry
from adapters.slack.rights import SlackAdmins
from adapters.slack.surface import SlackSurface, StreamingSupport, error_code
from adapters.slack.text import mention_text, to_mrkdwn, unescape_slack
from adapters.slack.threads import channel_prefix, conversation_id, follow_up_thread, thread_of
from adapters.slack.transport import SlackStartupError, SlackTransport
from core.attachments import AttachmentReader, AttachmentRef, attach
from core.clock import Clock, SystemClock
from core.commands import COMMANDS
from core.commands.dispatcher import CommandContext, Dispatcher, Reply
from core.context import current_request
from core.engine import Engine, Resumption
from core.health import Readiness
from core.inflight import Inflight
from core.ledger import Ledger
from core.parts import Access, Destination, Failure, Part, Request, Scope, Strength
from core.render import WORKING, render
from core.streams import closing_stream, single
from core.studio import NO_INSTRUCTION, Action, Expired, Removal, parse_action_id, press
from core.studio import PREFIX as STUDIO_PREFIX

log = logging.getLogger(__name__)

RESUMING = "Back again: picking this up where I left off…"
COMMAND_NAMES = tuple(command.name for command in COMMANDS)
COMMAND_PATTERN = re.compile(rf"^/({'|'.join(COMMAND_NAMES)})$")
ACTION_PATTERN = re.compile(rf"^{STUDIO_PREFIX}:")
REFUSALS = frozenset({"invalid", "rate_limited", "refused", "forbidden", "unavailable", "paused"})
"""``Failure`` reasons meaning a request was turned away before anything ran or was charged: for a
press, the presser alone is told (ephemeral), and nothing is posted in the thread."""


class SlackBot:
    """One Slack app: translate Slack events in, render core parts out. Runs until cancelled.

    Every answer runs as a task the bot owns, so tests can ``drain`` them and ``stop`` can let
    them post their last words: at shutdown the engine ends every stream itself, with a notice.
    """

    def __init__(
        self,
        config: SlackConfig,
        *,
        engine: Engine,
        ledger: Ledger,
        clock: Clock | None = None,
        readiness: Readiness | None = None,
        commands: Dispatcher | None = None,
        attachments: AttachmentReader | None = None,
    ) -> None:
        self._config = config
        self._attachments = attachments
        """Reads files shared with mentions from ``files.slack.com``; ``None``: they are refused."""
        self._commands = commands or Dispatcher(
            ledger=ledger,
            conversations=engine.conversations,
            intents=engine.intents,
            budget_visible_to=config.budget_visible_to,
            policies=engine.policies,
            dashboard=engine.dashboard,
        )
        self._engine = engine
        self._ledger = ledger
        self._clock = clock or SystemClock()
        self._readiness = readiness
        self._streaming = StreamingSupport()
        self._inflight = Inflight()
        self._transport = SlackTransport(config, on_connection=self._mark_ready)
        waits = clock or SystemClock()
        self.client = AsyncWebClient(
            token=config.bot_token,
            base_url=config.api_url,
            logger=logging.getLogger("slack_sdk.web"),
            retry_handlers=[RateLimitRetry(waits), ServerErrorRetry(waits)],
        )
        self._admins = SlackAdmins(self.client, admin_ids=config.admin_ids)
        self.bolt = AsyncApp(
            client=self.client,
            signing_secret=config.signing_secret,
            request_verification_enabled=config.mode == "http",
            # Listeners only hand work to the bot's own tasks, so Slack's 3 s deadline holds and
            # the work is registered before Slack hears back.
            process_before_response=True,
            name="studio-bot",
        )
        self.bolt.event("app_mention")(self._mention_listener())
        # Every message event is acknowledged (Slack retries and eventually disables deliveries a
        # listener doesn't take); only thread follow-ups are answered.
        self.bolt.event("message")(self._message_listener())
        self.bolt.command(COMMAND_PATTERN)(self._command_listener())
        # Buttons (and the Vary menu) under delivered media, and the Edit dialog's submission.
        self.bolt.action(ACTION_PATTERN)(self._action_listener())
        self.bolt.view(EDIT_CALLBACK)(self._edit_listener())

    # --- lifecycle ----------------------------------------------------------------------------

    async def run(self, *, resumptions: Sequence[Resumption] = ()) -> None:
        """Connect (Socket Mode) or listen (HTTP), deliver ``resumptions``, serve until cancelled."""
        await self.start()
        try:
            self.resume(resumptions)
            # From now on, Slack jobs of dead replicas are ours to finish too: any replica can post.
            self._engine.handoff.open(PLATFORM, reaches=_deliverable, deliver=lambda job: self.resume([job]))
            await asyncio.Event().wait()
        finally:
            self._engine.handoff.close(PLATFORM)
            await self.stop()

    async def start(self) -> None:
        """Check the bot token, then connect or listen. On failure nothing is left open."""
        if self._readiness is not None:
            self._readiness.expect(PLATFORM)
        if self.client.session is None or self.client.session.closed:
            # Without a session of its own slack_sdk opens, and closes, a new connection (a TLS
            # handshake with slack.com) for every Web API call.
            self.client.session = ClientSession(timeout=ClientTimeout(total=self.client.timeout))
        try:
            identity = await self._sign_in()
            await self._transport.open(self.bolt)
        except BaseException:
            await self.stop()
            raise
        self._mark_ready(True)
        log.info(
            "Slack: signed in as %s in %s; %s",
            identity.get("user"),
            identity.get("team"),
            "Socket Mode connected"
            if self._config.mode == "socket"
            else f"HTTP mode on port {self.http_port}",
        )

    async def _sign_in(self) -> AsyncSlackResponse:
        try:
            return await self.client.auth_test()
        except SlackApiError as error:
            raise SlackStartupError(f"Slack rejected SLACK_BOT_TOKEN ({error_code(error)})") from None
        except (ClientError, OSError) as error:
            raise SlackStartupError(f"can't reach Slack at {self._config.api_url} ({error!r})") from None

    def resume(self, resumptions: Sequence[Resumption]) -> None:
        """Deliver jobs from before a restart into the threads they were asked in, as answers
        this bot owns. Jobs for other platforms are left to their adapters."""
        for resumption in resumptions:
            request, destination = resumption.request, resumption.request.destination
            if destination is None or destination.platform != PLATFORM:
                continue
            if not (destination.thread or destination.message):
                log.warning("job %s has no Slack thread to deliver to; dropping it", request.id)
                continue
            log.info("delivering job %s from before the restart to %s", request.id, destination.channel)
            surface = self._surface(destination, request)
            self._spawn(self._deliver(request, surface, resumption.parts, opening=RESUMING))

    async def stop(self) -> None:
        """Stop taking events (close the connection or the HTTP server), let running answers post
        their last words (at shutdown the engine has already ended their streams), then close."""
        self._mark_ready(False)
        await self._transport.close()
        await self._inflight.finish()
        if self.client.session is not None:
            await self.client.session.close()

    async def drain(self) -> None:
        """Wait until every piece of work started so far (and any it started) has finished."""
        await self._inflight.join()

    @property
    def http_port(self) -> int | None:
        """The port HTTP mode actually listens on (useful with port 0)."""
        return self._transport.http_port

    def _mark_ready(self, ready: bool) -> None:
        if self._readiness is not None:
            self._readiness.mark(PLATFORM, ready)

    def _spawn(self, job: Coroutine[Any, Any, None]) -> None:
        self._inflight.spawn(job).add_done_callback(_log_failure)

    # --- listeners: translate in --------------------------------------------------------------

    def _mention_listener(self) -> Any:
        async def on_mention(body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext) -> None:
            self._spawn(self._answer_message(body, event, context.bot_user_id))

        return on_mention

    def _message_listener(self) -> Any:
        async def on_message(body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext) -> None:
            # Without its own id the bot can't tell a mention (answered through app_mention) apart.
            if self._config.follow_ups != "thread" or not context.bot_user_id:
                return
            thread_ts = follow_up_thread(event, bot_user_id=context.bot_user_id)
            if thread_ts is not None:
                self._spawn(self._answer_follow_up(body, event, thread_ts, context.bot_user_id))

        return on_message

    def _command_listener(self) -> Any:
        async def on_command(
            ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext
        ) -> None:
            await ack()
            self._spawn(self._answer_command(command, respond, context.bot_user_id))

        return on_command

    def _action_listener(self) -> Any:
        async def on_action(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
            await ack()
            where = _pressed_in(body)
            if where is None:
                return  # not under a message (a button elsewhere): nothing of ours
            self._spawn(
                self._press(
                    body,
                    str(action.get("action_id", "")),
                    where,
                    strength=pressed_strength(action),
                    trigger_id=str(body.get("trigger_id") or ""),
                    block_id=str(action.get("block_id") or ""),
                )
            )

        return on_action

    def _edit_listener(self) -> Any:
        async def on_edit(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
            metadata, instruction = submitted(view)
            if not instruction:
                # The dialog stays open with the reason under the field; nothing was asked for.
                await ack(response_action="errors", errors={INSTRUCTION_BLOCK: EMPTY_INSTRUCTION})
                return
            await ack()
            where = _Pressed(
                channel=metadata.get("channel", ""),
                thread=metadata.get("thread", ""),
                message=metadata.get("message", ""),
            )
            if where.channel and where.thread:
                self._spawn(
                    self._press(
                        body,
                        metadata.get("action", ""),
                        where,
                        instruction=instruction,
                        block_id=metadata.get("block", ""),
                    )
                )

        return on_edit

    async def _answer_follow_up(
        self, body: dict[str, Any], event: dict[str, Any], thread_ts: str, bot_user_id: str
    ) -> None:
        """A plain reply in a thread the bot has answered in continues that conversation; replies
        in any other thread are not for the bot."""
        store = self._engine.conversations
        if store is None or not await store.knows(conversation_id(str(event.get("channel")), thread_ts)):
            return
        await self._answer_message(body, event, bot_user_id)

    async def _answer_message(
        self, body: dict[str, Any], event: dict[str, Any], bot_user_id: str | None
    ) -> None:
        """Answer a mention or a follow-up in its thread, as part of that thread's conversation (a
        top-level mention starts one, threaded under itself)."""
        user = event.get("user")
        team = str(body.get("team_id") or event.get("team") or "")
        # Other bots' messages are never answered (nor paid for): two assistants could loop.
        if not user or not team or event.get("bot_id") or event.get("subtype") == "bot_message":
            return
        channel = str(event["channel"])
        scope = Scope(PLATFORM, team)
        if not await self._engine.policies.listens(scope, channel):
            return  # switched off here: no answer, no charge
        if not await self._first_time("event", body.get("event_id")):
            return
        ts = str(event["ts"])
        thread_ts = str(event.get("thread_ts") or ts)
        destination = thread_destination(
            channel=channel,
            thread=thread_ts,
            message=ts,
            team=team,
            user=user,
            # In shared channels the person may belong to another workspace; streams are addressed to them.
            user_team=str(event.get("user_team") or team),
        )
        request = Request(
            scope=scope,
            user=user,
            text=mention_text(str(event.get("text", "")), bot_user_id=bot_user_id),
            destination=destination,
            conversation=conversation_id(channel, thread_ts),
            access=Access(channel=channel, admin=await self._admin_if_it_matters(scope, user)),
        )
        attached = await attach(self._attachments, request, file_refs(event))
        if isinstance(attached, Failure):
            await self._deliver(
                request, self._surface(destination, request), single(attached), opening=WORKING
            )
            return
        await self._answer(attached, destination)

    async def _answer_command(
        self, command: dict[str, Any], respond: AsyncRespond, bot_user_id: str | None
    ) -> None:
        """A slash command: the core answers it privately, or hands back a request that is
        answered in a thread under a note saying who asked."""
        name = str(command["command"]).lstrip("/").lower()
        user, channel = str(command["user_id"]), str(command["channel_id"])
        if not await self._first_time("command", command.get("trigger_id")):
            return
        offered = self._commands.command(name)
        store = self._engine.conversations
        conversation = None
        if offered is not None and offered.conversational and store is not None:
            conversation = await store.latest(channel_prefix(channel))
        scope = Scope(PLATFORM, str(command["team_id"]))
        admin = False
        if offered is not None:
            admin = await self._admins.include(user) if offered.uses_rights else False
            if offered.intent is not None:
                admin = await self._admin_if_it_matters(scope, user)
        context = CommandContext(
            scope=scope,
            user=user,
            admin=admin,
            conversation=conversation,
            channel=channel,
        )
        text = unescape_slack(str(command.get("text", "")))
        outcome = await self._commands.dispatch(name, text, context)
        if isinstance(outcome, Reply):
            response_type = "ephemeral" if outcome.private else "in_channel"
            await respond(text=to_mrkdwn(outcome.text), response_type=response_type)
            return
        try:
            note = await self._post_note(outcome, channel=channel, command=name)
        except SlackApiError as error:
            await respond(text=cannot_post(error_code(error), bot_user_id), response_type="ephemeral")
            return
        # A summary is answered in its conversation's thread; other commands start one under the note.
        thread = thread_of(outcome.conversation) if outcome.conversation else note
        destination = thread_destination(
            channel=channel,
            thread=thread,
            message=note,
            team=context.scope.id,
            user=user,
            user_team=context.scope.id,
        )
        request = replace(
            outcome,
            destination=destination,
            conversation=outcome.conversation or conversation_id(channel, note),
        )
        await self._answer(request, destination)

    async def _press(
        self,
        body: dict[str, Any],
        pressed: str,
        where: _Pressed,
        *,
        strength: Strength = "subtle",
        instruction: str = "",
        trigger_id: str = "",
        block_id: str = "",
    ) -> None:
        """A press of a button under delivered media: a new request by the presser, answered in
        the media's thread like ``/imagine``; or a private refusal; or a delete."""
        person = body.get("user") or {}
        user = str(person.get("id") or "")
        team = str((body.get("team") or {}).get("id") or person.get("team_id") or "")
        if not user or not team:
            return
        scope = Scope(PLATFORM, team)
        parsed = parse_action_id(pressed)
        deleting = parsed is not None and parsed[0] is Action.DELETE
        admin = await self._admins.include(user) if deleting else await self._admin_if_it_matters(scope, user)
        destination = thread_destination(
            channel=where.channel,
            thread=where.thread,
            message=where.message,
            team=team,
            user=user,
            user_team=str(person.get("team_id") or team),
        )
        outcome = await press(
            self._engine.studio,
            pressed,
            scope=scope,
            user=user,
            access=Access(channel=where.channel, admin=admin),
            destination=destination,
            conversation=conversation_id(where.channel, where.thread),
            instruction=instruction,
            strength=strength,
        )
        if isinstance(outcome, Expired):
            await self._whisper(where, user, outcome.text)
            await self._expire(where, outcome, block_id)
        elif isinstance(outcome, Reply):
            if outcome.text == NO_INSTRUCTION and trigger_id:
                # An Edit that may go ahead: ask what to change (the trigger lives 3 seconds).
                view = edit_dialog(
                    pressed, channel=where.channel, thread=where.thread, message=where.message, block=block_id
                )
                await self.client.views_open(trigger_id=trigger_id, view=view)
                return
            await self._whisper(where, user, outcome.text)
        elif isinstance(outcome, Removal):
            await self._remove(where, leftovers_of(block_id))
        else:
            label = PRESSED.get(parsed[0], "") if parsed else ""
            await self._answer_press(outcome, destination, where, label)

    async def _answer_press(
        self, request: Request, destination: Destination, where: _Pressed, label: str
    ) -> None:
        """Run a press's request; a refusal before anything ran goes to the presser alone, the
        rest is posted in the thread under a note saying who pressed what."""
        parts = self._engine.handle(request)
        async with closing_stream(parts):
            first = await anext(parts, None)
            if first is None:
                return  # a channel the bot is switched off in: no answer, no charge
            if isinstance(first, Failure) and first.reason in REFUSALS:
                await self._whisper(where, request.user, first.message)
                return
            await self.client.chat_postMessage(
                channel=where.channel, thread_ts=where.thread, text=f"{label} by <@{request.user}>"
            )
            surface = self._surface(destination, request)
            await self._deliver(request, surface, _after(first, parts), opening=WORKING)

    async def _whisper(self, where: _Pressed, user: str, text: str) -> None:
        try:
            await self.client.chat_postEphemeral(
                channel=where.channel, user=user, thread_ts=where.thread, text=to_mrkdwn(text)
            )
        except SlackApiError as error:
            log.info("could not answer a press privately (%s)", error_code(error))

    async def _expire(self, where: _Pressed, expired: Expired, block_id: str) -> None:
        """Show everyone that some buttons stopped working: the buttons message loses them and
        says why. Without its block id (what Delete removes) the message is left as it is."""
        if not block_id:
            return
        try:
            await self.client.chat_update(
                channel=where.channel,
                ts=where.message,
                text=expired.reason,
                blocks=expired_blocks(expired, block_id),
            )
        except SlackApiError as error:
            log.info("could not mark a press's buttons as expired (%s)", error_code(error))

    async def _remove(self, where: _Pressed, leftovers: Leftovers) -> None:
        """Delete the buttons message, the files it was posted under and their other messages."""
        try:
            for file in leftovers.files:
                await self.client.files_delete(file=file)
            for ts in (*leftovers.messages, where.message):
                await self.client.chat_delete(channel=where.channel, ts=ts)
        except SlackApiError as error:
            log.warning("could not delete all of a deleted image's messages (%s)", error_code(error))

    async def _post_note(self, request: Request, *, channel: str, command: str) -> str:
        """Post who asked for what (in the channel, or broadcast from a summary's thread); its ts."""
        text = anchor_text(request.user, command, request.text)
        if request.conversation is None:
            note = await self.client.chat_postMessage(channel=channel, text=text)
        else:
            note = await self.client.chat_postMessage(
                channel=channel, text=text, thread_ts=thread_of(request.conversation), reply_broadcast=True
            )
        return str(note["ts"])

    async def _first_time(self, kind: str, ident: object) -> bool:
        """Slack retries deliveries it thinks failed; each one is worked on (and paid for) once,
        even across restarts. Deliveries without an id cannot be recognised and always count."""
        if not ident:
            return True
        if await self._ledger.database.first_sighting(f"slack:{kind}:{ident}"):
            return True
        log.info("Slack %s %s was already handled; ignoring the repeat", kind, ident)
        return False

    async def _admin_if_it_matters(self, scope: Scope, user: str) -> bool:
        """Whether ``user`` is an admin, asked of Slack only when the workspace keeps an allowlist
        (admins are always allowed); otherwise nothing depends on it."""
        if not (await self._engine.policies.policy(scope)).restricts_members:
            return False
        return await self._admins.include(user)

    # --- rendering: translate out -------------------------------------------------------------

    def _surface(self, destination: Destination, request: Request) -> SlackSurface:
        """The thread ``destination`` names."""
        extra = destination.extra
        return SlackSurface(
            self.client,
            channel=destination.channel,
            thread_ts=destination.thread or destination.message or "",
            user=extra.get("user", request.user),
            team=extra.get("user_team") or extra.get("team") or request.scope.id,
            streaming=self._streaming,
        )

    async def _answer(self, request: Request, destination: Destination) -> None:
        surface = self._surface(destination, request)
        await self._deliver(request, surface, self._engine.handle(request), opening=WORKING)

    async def _deliver(
        self, request: Request, surface: SlackSurface, parts: AsyncIterator[Part], *, opening: str
    ) -> None:
        """Render ``parts`` into ``surface``, behind an ``opening`` line if they are slow to start."""
        current_request.set(request)
        try:
            await render(parts, surface, clock=self._clock, opening=opening)
        except Exception as error:
            code = error_code(error) if isinstance(error, SlackApiError) else type(error).__name__
            log.warning("Slack reply to request %s failed (%s)", request.id, code, exc_info=True)
            try:
                await surface.say(
                    f"⚠️ I couldn't post all of this reply (`{code}`). Work that didn't finish wasn't charged."
                )
            except Exception as notice_error:
                log.warning("could not tell the user either (%r)", notice_error)


def file_refs(event: dict[str, Any]) -> list[AttachmentRef]:
    """The files shared in a message event, as Slack announces them (``url_private`` needs the bot token)."""
    refs = []
    for item in event.get("files") or ():
        if not isinstance(item, dict) or not item.get("url_private"):
            continue
        size = item.get("size")
        refs.append(
            AttachmentRef(
                url=str(item["url_private"]),
                name=str(item.get("name") or item.get("title") or "file"),
                size=size if isinstance(size, int) else None,
                content_type=str(item.get("mimetype") or ""),
            )
        )
    return refs


@dataclass(frozen=True, slots=True)
class _Pressed:
    """The message a button was pressed under, and its thread."""

    channel: str
    thread: str
    message: str


def _pressed_in(body: dict[str, Any]) -> _Pressed | None:
    container = body.get("container") or {}
    message = str(container.get("message_ts") or "")
    channel = str((body.get("channel") or {}).get("id") or container.get("channel_id") or "")
    if not message or not channel:
        return None
    thread = (body.get("message") or {}).get("thread_ts") or container.get("thread_ts") or message
    return _Pressed(channel=channel, thread=str(thread), message=message)


async def _after(first: Part, rest: AsyncIterator[Part]) -> AsyncIterator[Part]:
    yield first
    async for part in rest:
        yield part


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("Slack request handling failed", exc_info=error)


def _deliverable(destination: Destination) -> bool:
    """A Slack thread (or message to start one under) that any replica of this app can post in."""
    return destination.platform == PLATFORM and bool(destination.thread or destination.message)
