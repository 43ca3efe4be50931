"""The Slack app: Bolt listeners that turn mentions, thread follow-ups and slash commands into core
requests, and the Socket Mode or HTTP front door they arrive through."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Coroutine, Sequence
from typing import Any

from aiohttp import ClientError, ClientSession, ClientTimeout, WSMessage, web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from adapters.slack.config import EVENTS_PATH, SlackConfig
from adapters.slack.retry import RateLimitRetry, ServerErrorRetry
from adapters.slack.surface import SlackSurface, StreamingSupport, error_code
from adapters.slack.text import escape_mrkdwn, mention_text, to_mrkdwn, unescape_slack
from adapters.slack.threads import channel_prefix, conversation_id, follow_up_thread, thread_of
from core.budget import budget_command
from core.clock import Clock, SystemClock
from core.commands import ALL_COMMANDS, BY_NAME, usage_hint
from core.context import current_request
from core.conversations import forget_command
from core.engine import Engine, Resumption
from core.health import Readiness
from core.jobs import JobState
from core.ledger import Ledger
from core.parts import Destination, Failure, Intent, Part, Request, Scope, Status, TextDelta
from core.render import render

log = logging.getLogger(__name__)

PLATFORM = "slack"
WORKING = "Working on it…"
RESUMING = "Back again: picking this up where I left off…"
LAST_PARTS_S = 1.0
"""At shutdown, how long the engine gets to end an answer's stream (a suspended job ends with a
notice at once) before its work is cut off; the engine then refunds it or keeps it to resume."""
OPENING_DELAY_S = 1.0
"""An answer with nothing to show after this long gets a "Working on it…" line meanwhile."""
FINISH_TIMEOUT_S = 10.0
"""At shutdown, how long answers get to post their last words before they are cancelled."""
RESUMABLE = frozenset({JobState.QUEUED, JobState.RUNNING, JobState.DELIVERING})
COMMAND_NAMES = tuple(command.name for command in ALL_COMMANDS)
COMMAND_PATTERN = re.compile(rf"^/({'|'.join(COMMAND_NAMES)})$")
MAX_ANCHOR_PROMPT = 300
NOT_A_MEMBER = frozenset({"not_in_channel", "channel_not_found"})
NO_MEMORY = "I don't remember conversations here, so there's nothing to forget."


class SlackStartupError(RuntimeError):
    """Slack refused the configured credentials; the message says which one and why."""


class SlackBot:
    """One Slack app: translate Slack events in, render core parts out. Runs until cancelled.

    Every answer runs as a task the bot owns, so tests can ``drain`` them and ``stop`` can end
    them. An answer pulls the engine's parts in a helper task, one part at a time as the
    renderer asks. ``stop`` cuts off only that pulling, never a Slack call: the engine refunds
    what it held (or keeps a checkpointed job for the next start) and the answer goes on to
    close its message with a notice, so no stream is left open and nobody is left guessing.
    """

    def __init__(
        self,
        config: SlackConfig,
        *,
        engine: Engine,
        ledger: Ledger,
        clock: Clock | None = None,
        readiness: Readiness | None = None,
    ) -> None:
        self._config = config
        self._engine = engine
        self._ledger = ledger
        self._clock = clock or SystemClock()
        self._readiness = readiness
        self._streaming = StreamingSupport()
        self._jobs: set[asyncio.Task[None]] = set()
        self._pulls: set[asyncio.Timeout] = set()
        self._cutoff: float | None = None
        self._socket: AsyncSocketModeHandler | None = None
        self._runner: web.AppRunner | None = None
        waits = clock or SystemClock()
        self.client = AsyncWebClient(
            token=config.bot_token,
            base_url=config.api_url,
            logger=logging.getLogger("slack_sdk.web"),
            retry_handlers=[RateLimitRetry(waits), ServerErrorRetry(waits)],
        )
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

    # --- lifecycle ----------------------------------------------------------------------------

    async def run(self, *, resumptions: Sequence[Resumption] = ()) -> None:
        """Connect (Socket Mode) or listen (HTTP), deliver ``resumptions``, serve until cancelled."""
        await self.start()
        try:
            self.resume(resumptions)
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def start(self) -> None:
        """Check the bot token, then connect or listen. On failure nothing is left open."""
        self._cutoff = None
        if self._readiness is not None:
            self._readiness.expect(PLATFORM)
        if self.client.session is None or self.client.session.closed:
            # Without a session of its own slack_sdk opens, and closes, a new connection (a TLS
            # handshake with slack.com) for every Web API call.
            self.client.session = ClientSession(timeout=ClientTimeout(total=self.client.timeout))
        try:
            identity = await self._sign_in()
            if self._config.mode == "socket":
                await self._connect_socket()
            else:
                await self._listen_http()
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
        """Close the connection or the HTTP server; give the engine ``LAST_PARTS_S`` to end each
        answer's stream, then cut its work off (refunded, unless the engine keeps it for the next
        start); give each answer up to ``FINISH_TIMEOUT_S`` to close its message with a notice."""
        self._cutoff = asyncio.get_running_loop().time() + LAST_PARTS_S
        for pull in self._pulls:
            pull.reschedule(self._cutoff)
        self._mark_ready(False)
        if self._socket is not None:
            socket, self._socket = self._socket, None
            await socket.close_async()  # type: ignore[no-untyped-call]
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        if self._jobs:
            _, late = await asyncio.wait(self._jobs, timeout=FINISH_TIMEOUT_S)
            for job in late:
                job.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self.client.session is not None:
            await self.client.session.close()

    async def drain(self) -> None:
        """Wait until every piece of work started so far (and any it started) has finished."""
        while self._jobs:
            await asyncio.gather(*self._jobs, return_exceptions=True)

    @property
    def http_port(self) -> int | None:
        """The port HTTP mode actually listens on (useful with port 0)."""
        if self._runner is None:
            return None
        for address in self._runner.addresses:
            if isinstance(address, tuple):
                return int(address[1])
        return None

    async def _connect_socket(self) -> None:
        handler = self._socket = AsyncSocketModeHandler(self.bolt, app_token=self._config.app_token)
        try:
            # Ask for the WebSocket URL first: the client would retry a bad app token forever.
            handler.client.wss_uri = await handler.client.issue_new_wss_url()
        except SlackApiError as error:
            raise SlackStartupError(f"Slack rejected SLACK_APP_TOKEN ({error_code(error)})") from None
        handler.client.on_message_listeners.append(self._watch_socket)
        await handler.connect_async()  # type: ignore[no-untyped-call]

    async def _watch_socket(self, message: WSMessage) -> None:
        """Readiness follows the connection: Slack says ``disconnect`` before it drops one (the
        client then reconnects by itself) and ``hello`` on every new one."""
        try:
            kind = json.loads(message.data).get("type")
        except (TypeError, ValueError, AttributeError):
            return
        if kind in ("hello", "disconnect") and self._cutoff is None:
            self._mark_ready(kind == "hello")

    def _mark_ready(self, ready: bool) -> None:
        if self._readiness is not None:
            self._readiness.mark(PLATFORM, ready)

    async def _listen_http(self) -> None:
        # Bolt logs what matters about each request; an access log line per event is noise.
        runner = web.AppRunner(self.bolt.web_app(path=EVENTS_PATH, port=self._config.port), access_log=None)
        await runner.setup()
        self._runner = runner
        await web.TCPSite(runner, self._config.host, self._config.port).start()

    def _spawn(self, job: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(job)
        self._jobs.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._jobs.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("Slack request handling failed", exc_info=error)

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
        if not user or not team:
            return
        if not await self._first_time("event", body.get("event_id")):
            return
        ts = str(event["ts"])
        channel, thread_ts = str(event["channel"]), str(event.get("thread_ts") or ts)
        destination = _destination(
            channel=channel,
            thread=thread_ts,
            message=ts,
            team=team,
            user=user,
            # In shared channels the person may belong to another workspace; streams are addressed to them.
            user_team=str(event.get("user_team") or team),
        )
        request = Request(
            scope=Scope(PLATFORM, team),
            user=user,
            text=mention_text(str(event.get("text", "")), bot_user_id=bot_user_id),
            destination=destination,
            conversation=conversation_id(channel, thread_ts),
        )
        await self._answer(request, destination)

    async def _answer_command(
        self, command: dict[str, Any], respond: AsyncRespond, bot_user_id: str | None
    ) -> None:
        name = str(command["command"]).lstrip("/").lower()
        user, channel = str(command["user_id"]), str(command["channel_id"])
        scope = Scope(PLATFORM, str(command["team_id"]))
        if not await self._first_time("command", command.get("trigger_id")):
            return
        text = unescape_slack(str(command.get("text", ""))).strip()
        if name == "budget":
            reply = await self._budget(scope, text, user)
            await respond(text=to_mrkdwn(reply), response_type="ephemeral")
            return
        if name == "forget":
            reply = await self._forget(scope, channel, args=text, user=user)
            await respond(text=to_mrkdwn(reply), response_type="ephemeral")
            return
        if name == "summary":
            await self._summarize(
                scope, channel, focus=text, user=user, respond=respond, bot_user_id=bot_user_id
            )
            return
        intent = BY_NAME[name].intent
        if not text:
            await respond(text=to_mrkdwn(usage_hint(intent)), response_type="ephemeral")
            return
        try:
            anchor = await self.client.chat_postMessage(channel=channel, text=_anchor_text(user, name, text))
        except SlackApiError as error:
            await respond(text=_cannot_post(error_code(error), bot_user_id), response_type="ephemeral")
            return
        anchor_ts = str(anchor["ts"])
        destination = _destination(
            channel=channel, thread=anchor_ts, message=anchor_ts, team=scope.id, user=user, user_team=scope.id
        )
        request = Request(
            scope=scope,
            user=user,
            text=text,
            intent=intent,
            destination=destination,
            conversation=conversation_id(channel, anchor_ts),
        )
        await self._answer(request, destination)

    async def _summarize(
        self,
        scope: Scope,
        channel: str,
        *,
        focus: str,
        user: str,
        respond: AsyncRespond,
        bot_user_id: str | None,
    ) -> None:
        """``/summary`` summarizes the channel's most recent conversation in that conversation's
        own thread, behind a note (also shown in the channel) saying who asked."""
        store = self._engine.conversations
        conversation = await store.latest(channel_prefix(channel)) if store is not None else None
        if conversation is None:
            request = Request(scope=scope, user=user, text=focus, intent=Intent.SUMMARY)
            await respond(
                text=to_mrkdwn(await _refusal(self._engine.handle(request))), response_type="ephemeral"
            )
            return
        thread_ts = thread_of(conversation)
        try:
            note = await self.client.chat_postMessage(
                channel=channel,
                thread_ts=thread_ts,
                reply_broadcast=True,
                text=_anchor_text(user, "summary", focus),
            )
        except SlackApiError as error:
            await respond(text=_cannot_post(error_code(error), bot_user_id), response_type="ephemeral")
            return
        destination = _destination(
            channel=channel,
            thread=thread_ts,
            message=str(note["ts"]),
            team=scope.id,
            user=user,
            user_team=scope.id,
        )
        request = Request(
            scope=scope,
            user=user,
            text=focus,
            intent=Intent.SUMMARY,
            destination=destination,
            conversation=conversation,
        )
        await self._answer(request, destination)

    async def _forget(self, scope: Scope, channel: str, *, args: str, user: str) -> str:
        """``/forget`` forgets the channel's most recent conversation; ``/forget all`` (budget
        admins) every conversation of the workspace."""
        store = self._engine.conversations
        if store is None:
            return NO_MEMORY
        conversation = await store.latest(channel_prefix(channel))
        can_forget_scope = args.strip().lower() == "all" and await self._is_admin(user)
        return await forget_command(store, conversation, scope, args, can_forget_scope=can_forget_scope)

    async def _first_time(self, kind: str, ident: object) -> bool:
        """Slack retries deliveries it thinks failed; each one is worked on (and paid for) once,
        even across restarts. Deliveries without an id cannot be recognised and always count."""
        if not ident:
            return True
        if await self._ledger.first_sighting(f"slack:{kind}:{ident}"):
            return True
        log.info("Slack %s %s was already handled; ignoring the repeat", kind, ident)
        return False

    async def _budget(self, scope: Scope, args: str, user: str) -> str:
        can_change = await self._is_admin(user)
        can_view = can_change or self._config.budget_visible_to == "everyone"
        return await budget_command(
            self._ledger, scope, args, user=user, can_view=can_view, can_change=can_change
        )

    async def _is_admin(self, user: str) -> bool:
        """Workspace admins and owners (``users.info``), and the configured admin ids."""
        if user in self._config.admin_ids:
            return True
        try:
            response = await self.client.users_info(user=user)
        except SlackApiError as error:
            log.warning(
                "users.info failed for %s (%s); treating them as not an admin", user, error_code(error)
            )
            return False
        profile = response.get("user") or {}
        return bool(profile.get("is_admin") or profile.get("is_owner"))

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
        """Render ``parts`` into ``surface`` behind an ``opening`` progress line."""
        current_request.set(request)
        feed: asyncio.Queue[Part | None] = asyncio.Queue()
        work = asyncio.create_task(self._pull(request, parts, feed))
        try:
            try:
                await render(_fed(opening, feed, clock=self._clock), surface, clock=self._clock)
            finally:
                # Stops the engine mid-work if rendering failed: it refunds what it held.
                work.cancel()
                await asyncio.gather(work, return_exceptions=True)
        except Exception as error:
            code = error_code(error) if isinstance(error, SlackApiError) else type(error).__name__
            log.warning("Slack reply to request %s failed (%s)", request.id, code, exc_info=True)
            try:
                await surface.say(
                    f"⚠️ I couldn't post all of this reply (`{code}`). Work that didn't finish wasn't charged."
                )
            except Exception as notice_error:
                log.warning("could not tell the user either (%r)", notice_error)

    async def _pull(
        self, request: Request, parts: AsyncIterator[Part], feed: asyncio.Queue[Part | None]
    ) -> None:
        """Hand the engine's parts to ``feed`` one at a time, each once the renderer is done with
        the last (None marks the end). Cut off by ``stop``, add a part saying what became of the
        request."""
        try:
            while True:
                try:
                    part = await self._next_part(parts)
                except TimeoutError:
                    feed.put_nowait(await self._stopped_notice(request))
                    return
                if part is None:
                    return
                feed.put_nowait(part)
                await feed.join()
        finally:
            await _close(parts)
            feed.put_nowait(None)

    async def _next_part(self, parts: AsyncIterator[Part]) -> Part | None:
        async with asyncio.timeout_at(self._cutoff) as pull:
            self._pulls.add(pull)
            try:
                return await anext(parts, None)
            finally:
                self._pulls.discard(pull)

    async def _stopped_notice(self, request: Request) -> Part:
        """The engine has dealt with the cancelled job by now: kept for the next start, or refunded."""
        jobs = self._engine.jobs
        job = await jobs.get(request.id) if jobs is not None else None
        if job is not None and job.state in RESUMABLE and job.checkpoint:
            return TextDelta(
                "⏸️ I'm restarting. This is still being made, and I'll post it here when I'm back."
            )
        return Failure(
            "I'm restarting, so I had to stop here. Nothing was charged; please ask again in a minute."
        )


async def _fed(opening: str, feed: asyncio.Queue[Part | None], *, clock: Clock) -> AsyncIterator[Part]:
    """The parts as they come, behind an opening progress line when the first part takes longer
    than ``OPENING_DELAY_S``. An answer that starts at once needs no progress line, and skipping its
    post (and the deletion that follows) keeps that work off the way of the first text."""
    first = asyncio.ensure_future(feed.get())
    delay = asyncio.ensure_future(clock.sleep(OPENING_DELAY_S))
    try:
        await asyncio.wait({first, delay}, return_when=asyncio.FIRST_COMPLETED)
        if not first.done():
            yield Status(opening)
        part = await first
    finally:
        delay.cancel()
        first.cancel()
    while part is not None:
        yield part
        feed.task_done()
        part = await feed.get()


async def _close(parts: AsyncIterator[Part]) -> None:
    aclose = getattr(parts, "aclose", None)
    if aclose is not None:
        await aclose()


def _destination(
    *, channel: str, thread: str, message: str, team: str, user: str, user_team: str
) -> Destination:
    """Everything needed to answer in this thread again after a restart."""
    extra = {"team": team, "user": user}
    if user_team != team:
        extra["user_team"] = user_team
    return Destination(platform=PLATFORM, channel=channel, thread=thread, message=message, extra=extra)


def _anchor_text(user: str, command: str, prompt: str) -> str:
    """The message a slash command's answer is threaded under: who asked for what."""
    shown = " ".join(prompt.split())
    if not shown:
        return f"<@{user}> used `/{command}`"
    if len(shown) > MAX_ANCHOR_PROMPT:
        shown = shown[: MAX_ANCHOR_PROMPT - 1] + "…"
    return f"<@{user}> used `/{command}`: “{escape_mrkdwn(shown)}”"


async def _refusal(parts: AsyncIterator[Part]) -> str:
    """The text of an answer that is only a refusal (the engine's, for a request it won't run)."""
    shown = [
        part.message if isinstance(part, Failure) else part.text
        async for part in parts
        if isinstance(part, Failure | TextDelta)
    ]
    return "".join(shown)


def _cannot_post(code: str, bot_user_id: str | None) -> str:
    if code in NOT_A_MEMBER:
        me = f"<@{bot_user_id}>" if bot_user_id else "the bot"
        return (
            f"I can't post in this conversation: I'm not a member. Invite me with /invite {me} "
            "(or add me from the channel's settings, under Integrations) and try again. "
            "Direct messages between people can't host my replies; use a channel. Nothing was charged."
        )
    return f"I couldn't post here (Slack said `{code}`). Nothing was charged."
