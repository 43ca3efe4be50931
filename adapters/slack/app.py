"""The Slack app: Bolt listeners that turn mentions and slash commands into core requests, and the
Socket Mode or HTTP front door they arrive through."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine
from typing import Any

from aiohttp import ClientError, web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.config import EVENTS_PATH, SlackConfig
from adapters.slack.surface import SlackSurface, StreamingSupport, error_code
from adapters.slack.text import escape_mrkdwn, mention_text, to_mrkdwn, unescape_slack
from core.budget import budget_command
from core.clock import Clock
from core.commands import BY_NAME, COMMANDS, usage_hint
from core.engine import Engine
from core.ledger import Ledger
from core.parts import Part, Request, Scope, Status
from core.render import render

log = logging.getLogger(__name__)

PLATFORM = "slack"
WORKING = "Working on it…"
COMMAND_NAMES = tuple(command.name for command in COMMANDS)
COMMAND_PATTERN = re.compile(rf"^/({'|'.join(COMMAND_NAMES)})$")
MAX_ANCHOR_PROMPT = 300
NOT_A_MEMBER = frozenset({"not_in_channel", "channel_not_found"})


class SlackStartupError(RuntimeError):
    """Slack refused the configured credentials; the message says which one and why."""


class SlackBot:
    """One Slack app: translate Slack events in, render core parts out. Runs until cancelled.

    Every piece of work runs as a task the bot owns, so ``stop`` can cancel it (the engine then
    refunds whatever was held) and tests can ``drain`` it.
    """

    def __init__(
        self, config: SlackConfig, *, engine: Engine, ledger: Ledger, clock: Clock | None = None
    ) -> None:
        self._config = config
        self._engine = engine
        self._ledger = ledger
        self._clock = clock
        self._streaming = StreamingSupport()
        self._jobs: set[asyncio.Task[None]] = set()
        self._socket: AsyncSocketModeHandler | None = None
        self._runner: web.AppRunner | None = None
        self.client = AsyncWebClient(
            token=config.bot_token,
            base_url=config.api_url,
            logger=logging.getLogger("slack_sdk.web"),
            retry_handlers=[
                AsyncConnectionErrorRetryHandler(),
                # A 429 means Slack did not act on the call, so sending it again is safe.
                AsyncRateLimitErrorRetryHandler(max_retry_count=2),
            ],
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
        self.bolt.command(COMMAND_PATTERN)(self._command_listener())

    # --- lifecycle ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect (Socket Mode) or listen (HTTP) and serve until cancelled."""
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def start(self) -> None:
        """Check the bot token, then connect or listen. On failure nothing is left open."""
        try:
            identity = await self.client.auth_test()
        except SlackApiError as error:
            raise SlackStartupError(f"Slack rejected SLACK_BOT_TOKEN ({error_code(error)})") from None
        except (ClientError, OSError) as error:
            raise SlackStartupError(f"can't reach Slack at {self._config.api_url} ({error!r})") from None
        try:
            if self._config.mode == "socket":
                await self._connect_socket()
            else:
                await self._listen_http()
        except BaseException:
            await self.stop()
            raise
        log.info(
            "Slack: signed in as %s in %s; %s",
            identity.get("user"),
            identity.get("team"),
            "Socket Mode connected"
            if self._config.mode == "socket"
            else f"HTTP mode on port {self.http_port}",
        )

    async def stop(self) -> None:
        """Close the connection or the HTTP server, then cancel running work (it is refunded)."""
        if self._socket is not None:
            socket, self._socket = self._socket, None
            await socket.close_async()  # type: ignore[no-untyped-call]
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        for job in list(self._jobs):
            job.cancel()
        await asyncio.gather(*self._jobs, return_exceptions=True)

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
        await handler.connect_async()  # type: ignore[no-untyped-call]

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
            self._spawn(self._answer_mention(body, event, context.bot_user_id))

        return on_mention

    def _command_listener(self) -> Any:
        async def on_command(
            ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext
        ) -> None:
            await ack()
            self._spawn(self._answer_command(command, respond, context.bot_user_id))

        return on_command

    async def _answer_mention(
        self, body: dict[str, Any], event: dict[str, Any], bot_user_id: str | None
    ) -> None:
        user = event.get("user")
        team = str(body.get("team_id") or event.get("team") or "")
        if not user or not team:
            return
        if not await self._first_time("event", body.get("event_id")):
            return
        request = Request(
            scope=Scope(PLATFORM, team),
            user=user,
            text=mention_text(str(event.get("text", "")), bot_user_id=bot_user_id),
        )
        thread_ts = str(event.get("thread_ts") or event["ts"])
        # In shared channels the person may belong to another workspace; streams are addressed to them.
        their_team = str(event.get("user_team") or team)
        await self._deliver(request, self._surface(event["channel"], thread_ts, user=user, team=their_team))

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
        intent = BY_NAME[name].intent
        if not text:
            await respond(text=to_mrkdwn(usage_hint(intent)), response_type="ephemeral")
            return
        try:
            anchor = await self.client.chat_postMessage(channel=channel, text=_anchor_text(user, name, text))
        except SlackApiError as error:
            await respond(text=_cannot_post(error_code(error), bot_user_id), response_type="ephemeral")
            return
        request = Request(scope=scope, user=user, text=text, intent=intent)
        surface = self._surface(channel, str(anchor["ts"]), user=user, team=scope.id)
        await self._deliver(request, surface)

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

    def _surface(self, channel: str, thread_ts: str, *, user: str, team: str) -> SlackSurface:
        return SlackSurface(
            self.client, channel=channel, thread_ts=thread_ts, user=user, team=team, streaming=self._streaming
        )

    async def _deliver(self, request: Request, surface: SlackSurface) -> None:
        parts = _opening_with(WORKING, self._engine.handle(request))
        try:
            try:
                await render(parts, surface, clock=self._clock)
            finally:
                # Stops the engine mid-work if rendering failed: it refunds what it held.
                await parts.aclose()
        except Exception as error:
            code = error_code(error) if isinstance(error, SlackApiError) else type(error).__name__
            log.warning("Slack reply to request %s failed (%s)", request.id, code, exc_info=True)
            try:
                await surface.say(
                    f"⚠️ I couldn't post all of this reply (`{code}`). Work that didn't finish wasn't charged."
                )
            except Exception as notice_error:
                log.warning("could not tell the user either (%r)", notice_error)


async def _opening_with(status: str, parts: AsyncIterator[Part]) -> AsyncGenerator[Part, None]:
    """``parts`` behind a first progress line, so every request shows life at once."""
    try:
        yield Status(status)
        async for part in parts:
            yield part
    finally:
        aclose = getattr(parts, "aclose", None)
        if aclose is not None:
            await aclose()


def _anchor_text(user: str, command: str, prompt: str) -> str:
    """The channel message a slash command's answer is threaded under: who asked for what."""
    shown = " ".join(prompt.split())
    if len(shown) > MAX_ANCHOR_PROMPT:
        shown = shown[: MAX_ANCHOR_PROMPT - 1] + "…"
    return f"<@{user}> used `/{command}`: “{escape_mrkdwn(shown)}”"


def _cannot_post(code: str, bot_user_id: str | None) -> str:
    if code in NOT_A_MEMBER:
        me = f"<@{bot_user_id}>" if bot_user_id else "the bot"
        return (
            f"I can't post in this conversation: I'm not a member. Invite me with /invite {me} "
            "(or add me from the channel's settings, under Integrations) and try again. "
            "Direct messages between people can't host my replies; use a channel. Nothing was charged."
        )
    return f"I couldn't post here (Slack said `{code}`). Nothing was charged."
