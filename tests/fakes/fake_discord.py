"""A fake Discord for tests: REST and gateway websocket on 127.0.0.1, enough for discord.py 2.7.

It keeps every REST call (with the time from an injectable clock), every message with all its
versions, the synced slash commands and interaction responses, and it can answer a route with
429 a given number of times, the way Discord does (``Via`` header, ``retry_after`` in the body),
or with 403 or a 5xx. Tests drive the gateway with ``mention``, ``slash`` and ``reconnect`` and
wait on ``wait_until``; ``press`` and ``submit`` send button presses and modal submissions
(interaction types 3 and 5), and each ``FakeInteraction`` keeps the responses the bot sent.
With ``privileged_intents_enabled`` off it closes the gateway with 4014 when a client identifies
with a privileged intent, as Discord does when the Developer Portal switch is off.

Sharding as Discord does it: ``GET /gateway/bot`` recommends ``shard_count`` shards; a connection
identifying with ``shard: [id, count]`` is sent READY and GUILD_CREATE for the guilds of its shard
only (``(guild_id >> 22) % count``, DMs on shard 0), and every event of a guild goes to the
connections of that guild's shard. ``add_guild`` makes more guilds, spread over the shards.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import BodyPartReader, WSMsgType, web

API_PREFIX = "/api/v10"
GATEWAY_PATH = "/gateway"
EPHEMERAL = 1 << 6
LOADING = 1 << 7
ATTACHMENT_SIZE_LIMIT = 10 * 2**20
PRIVILEGED_INTENTS = (1 << 1) | (1 << 8) | (1 << 15)
"""Guild members, presences and message content: each needs a switch in the Developer Portal."""
DISALLOWED_INTENTS = 4014
Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Upload:
    """One file attached to a request."""

    filename: str
    data: bytes
    id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Call:
    """One REST request as the fake received it."""

    method: str
    path: str
    body: Any
    files: tuple[Upload, ...]
    at: float
    status: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Version:
    """A message as it looked after one create or edit."""

    content: str
    embeds: tuple[Json, ...]
    attachments: tuple[Upload, ...]
    flags: int
    at: float
    components: tuple[Json, ...] = ()
    """Action rows of buttons, as the message carries them."""

    @property
    def custom_ids(self) -> list[str]:
        """The custom ids of the message's buttons, in order."""
        return [
            str(item.get("custom_id"))
            for row in self.components
            for item in row.get("components", [])
            if "custom_id" in item
        ]

    @property
    def description(self) -> str:
        return str(self.embeds[0].get("description", "")) if self.embeds else ""

    @property
    def footer(self) -> str:
        return str(self.embeds[0].get("footer", {}).get("text", "")) if self.embeds else ""

    @property
    def colour(self) -> int | None:
        return self.embeds[0].get("color") if self.embeds else None


@dataclass(slots=True, kw_only=True)
class FakeMessage:
    id: str
    channel_id: str
    guild_id: str | None
    author: Json
    reference: str | None
    interaction_token: str | None = None
    deleted: bool = False
    versions: list[Version] = field(default_factory=list)

    @property
    def current(self) -> Version:
        return self.versions[-1]

    @property
    def ephemeral(self) -> bool:
        return bool(self.current.flags & EPHEMERAL)

    @property
    def edit_times(self) -> list[float]:
        return [version.at for version in self.versions]


@dataclass(slots=True, kw_only=True)
class FakeInteraction:
    id: str
    token: str
    channel_id: str
    callbacks: list[Json] = field(default_factory=list)
    original: str | None = None
    type: int = 2
    """2 a slash command, 3 a button press, 5 a modal submission."""
    message_id: str | None = None
    """The message whose button was pressed."""

    @property
    def kinds(self) -> list[int]:
        """The response types the bot sent back (4 message, 5 deferred, 6 deferred update, 7 update
        the pressed message, 9 modal)."""
        return [int(callback["type"]) for callback in self.callbacks]


class FakeDiscord:
    """The fake server. ``async with FakeDiscord() as fake:`` starts it on a free port."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, retry_after: float = 0.01) -> None:
        self._clock = clock
        self._retry_after = retry_after
        self._ids = itertools.count(1_300_000_000_000_000_001)
        self.application_id = self.snowflake()
        self.bot_user: Json = self.user(self.application_id, "studio-bot", bot=True)
        self.token = base64.b64encode(self.application_id.encode()).decode().rstrip("=") + ".fake.token"
        self.guild_id = self.snowflake()
        self.channel_id = self.snowflake()
        self.guilds: dict[str, str] = {self.guild_id: self.channel_id}
        """Every guild the bot is in, with its text channel."""
        self._guild_ticks = itertools.count((int(self.guild_id) >> 22) + 1)
        self.shard_count = 1
        """The shard count ``GET /gateway/bot`` recommends."""
        self._socket_shards: dict[web.WebSocketResponse, tuple[int, int]] = {}
        self.thread_id = self.snowflake()
        self.dm_channel_id = self.snowflake()
        self.calls: list[Call] = []
        self.messages: dict[str, FakeMessage] = {}
        self.interactions: dict[str, FakeInteraction] = {}
        self.synced: dict[str | None, list[Json]] = {}
        self.identified: list[Json] = []
        self.resumed: list[Json] = []
        self.roles: list[Json] = []
        """The guild's roles besides @everyone (``add_role``), sent with the guild."""
        self.privileged_intents_enabled = True
        self.refused: list[Json] = []
        """Identify payloads answered with close code 4014 (privileged intents switched off)."""
        self.cdn: dict[str, tuple[bytes, str]] = {}
        """Files users attached (``attachment``), served at ``/cdn/<name>`` as Discord's CDN would."""
        self.cdn_requests: list[str] = []
        """Names of the CDN files fetched, in order."""
        self.cdn_redirects: dict[str, str] = {}
        """CDN names answered with a redirect to this URL instead of a file."""
        self._faults: list[list[Any]] = []
        self._sockets: list[web.WebSocketResponse] = []
        self._sequence = 0
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- lifecycle --------------------------------------------------------------------------------

    async def __aenter__(self) -> FakeDiscord:
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_get(GATEWAY_PATH, self._gateway)
        app.router.add_get("/cdn/{name}", self._cdn)
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        for socket in self._sockets:
            await socket.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{API_PREFIX}"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{GATEWAY_PATH}"

    # --- payload builders -------------------------------------------------------------------------

    def snowflake(self) -> str:
        return str(next(self._ids))

    @staticmethod
    def user(user_id: str, name: str, *, bot: bool = False) -> Json:
        return {
            "id": user_id,
            "username": name,
            "discriminator": "0",
            "global_name": name,
            "avatar": None,
            "bot": bot,
        }

    def add_role(self, name: str) -> str:
        """A new role of the guild (clients that connect afterwards see it); its id."""
        role_id = self.snowflake()
        self.roles.append(self.role_payload(role_id, name))
        return role_id

    @staticmethod
    def role_payload(role_id: str, name: str) -> Json:
        return {
            "id": role_id,
            "name": name,
            "permissions": "0",
            "position": 1,
            "color": 0,
            "hoist": False,
            "managed": False,
            "mentionable": False,
            "flags": 0,
        }

    def member(self, user: Json, *, permissions: int = 0, roles: list[str] | None = None) -> Json:
        return {
            "user": user,
            "roles": list(roles or []),
            "flags": 0,
            "joined_at": _iso(),
            "deaf": False,
            "mute": False,
            "permissions": str(permissions),
        }

    def add_guild(self) -> tuple[str, str]:
        """A new guild with one text channel: ``(guild_id, channel_id)``. Consecutive guilds fall
        on consecutive shards (their ids differ in the bits above the 22nd)."""
        guild_id = str((next(self._guild_ticks) << 22) | 1)
        channel_id = self.snowflake()
        self.guilds[guild_id] = channel_id
        return guild_id, channel_id

    @staticmethod
    def shard_of(guild_id: str | None, shard_count: int) -> int:
        """The shard Discord sends a guild's events to; DMs go to shard 0."""
        return (int(guild_id) >> 22) % shard_count if guild_id is not None else 0

    def guild_of(self, channel_id: str) -> str | None:
        """The guild of a channel; ``None`` for the DM channel. Channels not made by ``add_guild``
        (the thread, a subclass's extra channels) belong to the first guild."""
        if channel_id == self.dm_channel_id:
            return None
        return next((guild for guild, channel in self.guilds.items() if channel == channel_id), self.guild_id)

    def guild_payload(self, guild_id: str | None = None) -> Json:
        guild_id = guild_id or self.guild_id
        channel_id = self.guilds[guild_id]
        main = guild_id == self.guild_id
        return {
            "id": guild_id,
            "name": "Test Guild",
            "icon": None,
            "owner_id": self.snowflake(),
            "unavailable": False,
            "large": False,
            "member_count": 2,
            "premium_tier": 0,
            "features": [],
            "emojis": [],
            "stickers": [],
            "roles": [
                {
                    "id": guild_id,
                    "name": "@everyone",
                    "permissions": "0",
                    "position": 0,
                    "color": 0,
                    "hoist": False,
                    "managed": False,
                    "mentionable": False,
                    "flags": 0,
                },
                *self.roles,
            ],
            "members": [self.member(self.bot_user)],
            "channels": [
                {
                    "id": channel_id,
                    "type": 0,
                    "name": "general",
                    "guild_id": guild_id,
                    "position": 0,
                    "permission_overwrites": [],
                    "nsfw": False,
                    "parent_id": None,
                }
            ],
            "threads": [
                {
                    "id": self.thread_id,
                    "type": 11,
                    "name": "a thread",
                    "guild_id": self.guild_id,
                    "parent_id": self.channel_id,
                    "owner_id": self.snowflake(),
                    "member_count": 2,
                    "message_count": 1,
                    "thread_metadata": {
                        "archived": False,
                        "auto_archive_duration": 1440,
                        "archive_timestamp": _iso(),
                        "locked": False,
                    },
                }
            ]
            if main
            else [],
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "system_channel_flags": 0,
            "preferred_locale": "en-US",
        }

    # --- driving the client -----------------------------------------------------------------------

    def attachment(
        self,
        filename: str,
        data: bytes,
        *,
        content_type: str,
        url: str | None = None,
        size: int | None = None,
    ) -> Json:
        """A file a user attached, stored on this fake's CDN; ``url`` points it elsewhere instead
        and ``size`` overrides the size Discord declares."""
        self.cdn[filename] = (data, content_type)
        return {
            "id": self.snowflake(),
            "filename": filename,
            "size": len(data) if size is None else size,
            "url": url or f"http://127.0.0.1:{self.port}/cdn/{filename}",
            "proxy_url": url or f"http://127.0.0.1:{self.port}/cdn/{filename}",
            "content_type": content_type,
        }

    async def _cdn(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.cdn_requests.append(name)
        if name in self.cdn_redirects:
            raise web.HTTPFound(self.cdn_redirects[name])
        if name not in self.cdn:
            return web.Response(status=404)
        data, content_type = self.cdn[name]
        return web.Response(body=data, headers={"Content-Type": content_type})

    async def dispatch(self, event: str, data: Json, *, to: web.WebSocketResponse | None = None) -> None:
        """Send a gateway DISPATCH to the connection ``to``, else to every connection of the shard
        of the event's guild (DMs: shard 0)."""
        self._sequence += 1
        frame = json.dumps({"op": 0, "t": event, "s": self._sequence, "d": data})
        guild_id = data.get("guild_id")
        for socket in [to] if to is not None else list(self._sockets):
            if socket.closed:
                continue
            if to is None:
                shard, count = self._socket_shards.get(socket, (0, 1))
                if self.shard_of(guild_id, count) != shard:
                    continue
            await socket.send_str(frame)

    async def mention(
        self,
        text: str,
        *,
        author: Json,
        channel_id: str | None = None,
        dm: bool = False,
        mention_bot: bool = True,
        reply_to: str | None = None,
        message_type: int | None = None,
        roles: list[str] | None = None,
        attachments: list[Json] | None = None,
        guild_id: str | None = None,
    ) -> str:
        """A user message: ``<@bot> text`` in a guild channel (or thread), or ``text`` in a DM.
        ``guild_id`` (one of ``add_guild``'s) puts it in that guild's channel.

        ``reply_to`` makes it a reply to that message (without pinging its author unless
        ``mention_bot``); ``message_type`` overrides the type, e.g. 7 for a "member joined" notice.
        """
        message_id = self.snowflake()
        guild = guild_id or self.guild_id
        data: Json = {
            "id": message_id,
            "type": message_type if message_type is not None else (19 if reply_to else 0),
            "content": f"<@{self.application_id}> {text}" if mention_bot and not dm else text,
            "channel_id": self.dm_channel_id if dm else (channel_id or self.guilds[guild]),
            "author": author,
            "mentions": [self.bot_user] if mention_bot and not dm else [],
            "mention_roles": [],
            "mention_everyone": False,
            "attachments": list(attachments or []),
            "embeds": [],
            "pinned": False,
            "tts": False,
            "timestamp": _iso(),
            "edited_timestamp": None,
            "flags": 0,
            "components": [],
        }
        if not dm:
            data["guild_id"] = guild
            data["member"] = {
                "roles": list(roles or []),
                "flags": 0,
                "joined_at": _iso(),
                "deaf": False,
                "mute": False,
            }
        if reply_to is not None:
            data["message_reference"] = {
                "type": 0,
                "message_id": reply_to,
                "channel_id": data["channel_id"],
                **({"guild_id": guild} if not dm else {}),
            }
            replied = self.messages.get(reply_to)
            data["referenced_message"] = self._payload(replied) if replied is not None else None
        asked = FakeMessage(
            id=message_id,
            channel_id=data["channel_id"],
            guild_id=data.get("guild_id"),
            author=author,
            reference=reply_to,
        )
        asked.versions.append(
            Version(content=data["content"], embeds=(), attachments=(), flags=0, at=self._clock())
        )
        self.messages[message_id] = asked
        await self.dispatch("MESSAGE_CREATE", data)
        return message_id

    async def reconnect(self) -> None:
        """Ask every client to reconnect and resume (gateway op 7), as Discord does now and then."""
        for socket in list(self._sockets):
            if not socket.closed:
                await socket.send_str(json.dumps({"op": 7, "d": None}))

    async def slash(
        self,
        name: str,
        options: list[Json] | None = None,
        *,
        user: Json,
        permissions: int = 0,
        dm: bool = False,
        attachment_size_limit: int = ATTACHMENT_SIZE_LIMIT,
        channel_id: str | None = None,
        roles: list[str] | None = None,
        resolved: Json | None = None,
    ) -> FakeInteraction:
        """A slash command invocation, as INTERACTION_CREATE; ``channel_id`` may be the thread's.
        ``roles`` are the member's role ids; ``resolved`` the users, roles and channels its
        options name, as Discord sends them."""
        in_thread = not dm and channel_id == self.thread_id
        interaction = FakeInteraction(
            id=self.snowflake(),
            token=f"itoken-{self.snowflake()}",
            channel_id=self.dm_channel_id if dm else (channel_id or self.channel_id),
        )
        self.interactions[interaction.token] = interaction
        data: Json = {
            "id": interaction.id,
            "application_id": self.application_id,
            "type": 2,
            "token": interaction.token,
            "version": 1,
            "attachment_size_limit": attachment_size_limit,
            "locale": "en-US",
            "entitlements": [],
            "app_permissions": str((1 << 50) - 1),
            "data": {"id": self.snowflake(), "name": name, "type": 1, "options": options or []},
        }
        if resolved:
            data["data"]["resolved"] = resolved
        if dm:
            data["user"] = user
            data["channel_id"] = self.dm_channel_id
            data["channel"] = {"id": self.dm_channel_id, "type": 1, "recipients": [user]}
            data["context"] = 1
        else:
            data["guild_id"] = self.guild_id
            data["guild_locale"] = "en-US"
            data["member"] = self.member(user, permissions=permissions, roles=roles)
            data["channel_id"] = interaction.channel_id
            data["channel"] = {
                "id": interaction.channel_id,
                "type": 11 if in_thread else 0,
                "guild_id": self.guild_id,
                "name": "a thread" if in_thread else "general",
                "position": 0,
                "permission_overwrites": [],
                "nsfw": False,
                "parent_id": self.channel_id if in_thread else None,
            }
            data["context"] = 0
        await self.dispatch("INTERACTION_CREATE", data)
        return interaction

    async def press(
        self,
        message_id: str,
        custom_id: str,
        *,
        user: Json,
        permissions: int = 0,
        roles: list[str] | None = None,
    ) -> FakeInteraction:
        """A press of a button on one of the bot's messages (a component interaction, type 3)."""
        message = self.messages[message_id]
        return await self._interact(
            3,
            {"custom_id": custom_id, "component_type": 2},
            user=user,
            permissions=permissions,
            roles=roles,
            channel_id=message.channel_id,
            message=message,
        )

    async def submit(
        self,
        custom_id: str,
        values: dict[str, str],
        *,
        user: Json,
        permissions: int = 0,
        roles: list[str] | None = None,
        channel_id: str | None = None,
        message_id: str | None = None,
    ) -> FakeInteraction:
        """A modal submission (type 5): one text input row per entry of ``values``."""
        rows = [
            {"type": 1, "components": [{"type": 4, "custom_id": name, "value": value}]}
            for name, value in values.items()
        ]
        return await self._interact(
            5,
            {"custom_id": custom_id, "components": rows},
            user=user,
            permissions=permissions,
            roles=roles,
            channel_id=channel_id or self.channel_id,
            message=self.messages[message_id] if message_id else None,
        )

    async def _interact(
        self,
        kind: int,
        payload: Json,
        *,
        user: Json,
        permissions: int,
        roles: list[str] | None,
        channel_id: str,
        message: FakeMessage | None,
    ) -> FakeInteraction:
        in_thread = channel_id == self.thread_id
        interaction = FakeInteraction(
            id=self.snowflake(),
            token=f"itoken-{self.snowflake()}",
            channel_id=channel_id,
            type=kind,
            message_id=message.id if message is not None else None,
        )
        self.interactions[interaction.token] = interaction
        data: Json = {
            "id": interaction.id,
            "application_id": self.application_id,
            "type": kind,
            "token": interaction.token,
            "version": 1,
            "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
            "locale": "en-US",
            "entitlements": [],
            "app_permissions": str((1 << 50) - 1),
            "data": payload,
            "guild_id": self.guild_id,
            "guild_locale": "en-US",
            "member": self.member(user, permissions=permissions, roles=roles),
            "channel_id": channel_id,
            "channel": {
                "id": channel_id,
                "type": 11 if in_thread else 0,
                "guild_id": self.guild_id,
                "name": "a thread" if in_thread else "general",
                "position": 0,
                "permission_overwrites": [],
                "nsfw": False,
                "parent_id": self.channel_id if in_thread else None,
            },
            "context": 0,
        }
        if message is not None:
            data["message"] = self._payload(message)
        await self.dispatch("INTERACTION_CREATE", data)
        return interaction

    def rate_limit(self, method: str, path_pattern: str, *, times: int = 1) -> None:
        """Answer the next ``times`` requests matching ``method`` and ``path_pattern`` with 429."""
        self._faults.append([method, re.compile(path_pattern), times, 429])

    def forbid(self, method: str, path_pattern: str, *, times: int = 1) -> None:
        """Answer the next ``times`` matching requests with 403 Missing Permissions."""
        self._faults.append([method, re.compile(path_pattern), times, 403])

    def fail(self, method: str, path_pattern: str, *, times: int = 1, status: int = 503) -> None:
        """Answer the next ``times`` matching requests with a server error (``status`` >= 500)."""
        self._faults.append([method, re.compile(path_pattern), times, status])

    async def wait_until(self, predicate: Callable[[], bool], *, within: float = 10.0) -> None:
        deadline = time.monotonic() + within
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("the fake Discord never saw what the test waited for")
            await asyncio.sleep(0.005)

    # --- queries ----------------------------------------------------------------------------------

    def channel_messages(self, channel_id: str | None = None) -> list[FakeMessage]:
        """Messages the bot made in a channel (interaction responses included), oldest first."""
        wanted = channel_id or self.channel_id
        return [
            message
            for message in self.messages.values()
            if message.channel_id == wanted and message.author["id"] == self.application_id
        ]

    def calls_to(self, method: str, pattern: str) -> list[Call]:
        compiled = re.compile(pattern)
        return [call for call in self.calls if call.method == method and compiled.search(call.path)]

    # --- gateway ----------------------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self._sockets.append(socket)
        await socket.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 45_000}}))
        async for frame in socket:
            if frame.type is not WSMsgType.TEXT:
                continue
            payload = json.loads(frame.data)
            op = payload.get("op")
            if op == 1:
                await socket.send_str(json.dumps({"op": 11}))
            elif op == 2:
                if not self.privileged_intents_enabled and payload["d"]["intents"] & PRIVILEGED_INTENTS:
                    self.refused.append(payload["d"])
                    await socket.close(code=DISALLOWED_INTENTS, message=b"Disallowed intent(s).")
                    break
                shard, count = payload["d"].get("shard") or (0, 1)
                self._socket_shards[socket] = (shard, count)
                await self._send_ready(socket, shard, count)
                self.identified.append(payload["d"])
            elif op == 6:
                self.resumed.append(payload["d"])
                await self.dispatch("RESUMED", {}, to=socket)
        self._sockets.remove(socket)
        self._socket_shards.pop(socket, None)
        return socket

    async def _send_ready(self, socket: web.WebSocketResponse, shard: int, count: int) -> None:
        guilds = [guild for guild in self.guilds if self.shard_of(guild, count) == shard]
        await self.dispatch(
            "READY",
            {
                "v": 10,
                "user": self.bot_user,
                "session_id": "fake-session",
                "resume_gateway_url": self.gateway_url,
                "guilds": [{"id": guild, "unavailable": True} for guild in guilds],
                "application": {"id": self.application_id, "flags": 0},
                "shard": [shard, count],
            },
            to=socket,
        )
        for guild in guilds:
            await self.dispatch("GUILD_CREATE", self.guild_payload(guild), to=socket)

    # --- REST -------------------------------------------------------------------------------------

    async def _rest(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["tail"]
        body, uploads = await _read_body(request)
        files = tuple(Upload(upload.filename, upload.data, self.snowflake()) for upload in uploads)
        for fault in self._faults:
            method, pattern, times, status = fault
            if times > 0 and method == request.method and pattern.search(path):
                fault[2] -= 1
                self._record(request.method, path, body, files, status)
                if status == 403:
                    return _json({"message": "Missing Permissions", "code": 50013}, status=403)
                if status >= 500:
                    return _json({"message": "Service Unavailable", "code": 0}, status=status)
                limited = {"message": "Rate limited.", "retry_after": self._retry_after, "global": False}
                return _json(limited, status=429, headers={"Via": "1.1 google", "X-RateLimit-Scope": "user"})
        status, answer = self._route(request.method, path, body, files)
        self._record(request.method, path, body, files, status)
        if status == 204:
            return web.Response(status=204)
        return _json(answer, status=status)

    def _record(self, method: str, path: str, body: Any, files: tuple[Upload, ...], status: int) -> None:
        self.calls.append(
            Call(method=method, path=path, body=body, files=files, at=self._clock(), status=status)
        )

    def _route(self, method: str, path: str, body: Any, files: tuple[Upload, ...]) -> tuple[int, Any]:
        app = self.application_id
        if method == "GET" and path == "/users/@me":
            return 200, self.bot_user
        if method == "GET" and path == "/gateway/bot":
            return 200, self._bot_gateway()
        if method == "GET" and path == "/oauth2/applications/@me":
            return 200, self._application()
        commands = re.fullmatch(rf"/applications/{app}(?:/guilds/(\d+))?/commands", path)
        if commands and method == "PUT":
            self.synced[commands.group(1)] = body
            return 200, [self._command(command, commands.group(1)) for command in body]
        if (match := re.fullmatch(r"/channels/(\d+)/messages", path)) and method == "POST":
            return 200, self._create(match.group(1), body, files)
        if match := re.fullmatch(r"/channels/(\d+)/messages/(\d+)", path):
            return self._change(method, match.group(2), body, files)
        if (match := re.fullmatch(r"/interactions/(\d+)/([^/]+)/callback", path)) and method == "POST":
            return self._callback(match.group(2), body, files)
        if (match := re.fullmatch(rf"/webhooks/{app}/([^/]+)", path)) and method == "POST":
            return 200, self._followup(match.group(1), body, files)
        if match := re.fullmatch(rf"/webhooks/{app}/([^/]+)/messages/(@original|\d+)", path):
            interaction = self.interactions.get(match.group(1))
            if interaction is None:
                return 404, {"message": "Unknown Webhook", "code": 10015}
            message_id = interaction.original if match.group(2) == "@original" else match.group(2)
            if message_id is None:
                return 404, {"message": "Unknown Message", "code": 10008}
            return self._change(method, message_id, body, files)
        return 404, {"message": f"the fake Discord has no route for {method} {path}", "code": 0}

    def _bot_gateway(self) -> Json:
        return {
            "url": self.gateway_url,
            "shards": self.shard_count,
            "session_start_limit": {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1},
        }

    def _application(self) -> Json:
        return {
            "id": self.application_id,
            "name": "studio-bot",
            "description": "",
            "icon": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "owner": self.user(self.snowflake(), "owner"),
            "verify_key": "0" * 64,
            "flags": 0,
            "team": None,
            "summary": "",
        }

    def _command(self, command: Json, guild_id: str | None) -> Json:
        answer = {
            **command,
            "id": self.snowflake(),
            "application_id": self.application_id,
            "version": self.snowflake(),
            "default_member_permissions": command.get("default_member_permissions"),
        }
        if guild_id:
            answer["guild_id"] = guild_id
        return answer

    def _new_message(
        self,
        channel_id: str,
        body: Json,
        files: tuple[Upload, ...],
        *,
        token: str | None = None,
        flags: int = 0,
    ) -> FakeMessage:
        reference = (body.get("message_reference") or {}).get("message_id")
        message = FakeMessage(
            id=self.snowflake(),
            channel_id=channel_id,
            guild_id=self.guild_of(channel_id),
            author=self.bot_user,
            reference=str(reference) if reference else None,
            interaction_token=token,
        )
        message.versions.append(
            Version(
                content=body.get("content") or "",
                embeds=tuple(body.get("embeds") or ()),
                attachments=files,
                flags=flags | int(body.get("flags") or 0),
                at=self._clock(),
                components=tuple(body.get("components") or ()),
            )
        )
        self.messages[message.id] = message
        return message

    def _create(self, channel_id: str, body: Json, files: tuple[Upload, ...]) -> Json:
        return self._payload(self._new_message(channel_id, body, files))

    def _change(self, method: str, message_id: str, body: Any, files: tuple[Upload, ...]) -> tuple[int, Any]:
        message = self.messages.get(message_id)
        if message is None or message.deleted:
            return 404, {"message": "Unknown Message", "code": 10008}
        if method == "GET":
            return 200, self._payload(message)
        if method == "DELETE":
            message.deleted = True
            return 204, None
        if method != "PATCH":
            return 405, {"message": "Method Not Allowed", "code": 0}
        before = message.current
        attachments = before.attachments
        if "attachments" in body:
            kept = {str(item.get("id")) for item in body["attachments"]}
            attachments = tuple(a for a in before.attachments if a.id in kept) + files
        message.versions.append(
            Version(
                content=body["content"] or "" if "content" in body else before.content,
                embeds=tuple(body["embeds"] or ()) if "embeds" in body else before.embeds,
                attachments=attachments,
                flags=before.flags & ~LOADING,
                at=self._clock(),
                components=tuple(body["components"] or ()) if "components" in body else before.components,
            )
        )
        return 200, self._payload(message)

    def _callback(self, token: str, body: Json, files: tuple[Upload, ...]) -> tuple[int, Any]:
        interaction = self.interactions[token]
        interaction.callbacks.append(body)
        kind = body["type"]
        data = body.get("data") or {}
        if kind == 7 and interaction.message_id is not None:  # update the message pressed on
            status, edited = self._change("PATCH", interaction.message_id, data, files)
            if status != 200:
                return status, edited
            return 200, {
                "interaction": {"id": interaction.id, "type": interaction.type},
                "resource": {"type": kind, "message": edited},
            }
        if kind in (6, 9):  # a deferred update, or a modal shown: no message is made
            return 200, {
                "interaction": {"id": interaction.id, "type": interaction.type},
                "resource": {"type": kind},
            }
        if kind == 5:  # deferred: a "thinking…" placeholder becomes the original response
            message = self._new_message(
                self._channel_of(token), {}, (), token=token, flags=LOADING | int(data.get("flags") or 0)
            )
        else:
            message = self._new_message(self._channel_of(token), data, files, token=token)
        interaction.original = message.id
        return 200, {
            "interaction": {
                "id": interaction.id,
                "type": interaction.type,
                "response_message_id": message.id,
                "response_message_loading": kind == 5,
                "response_message_ephemeral": bool(message.current.flags & EPHEMERAL),
            },
            "resource": {"type": kind, "message": self._payload(message)},
        }

    def _followup(self, token: str, body: Json, files: tuple[Upload, ...]) -> Json:
        message = self._new_message(self._channel_of(token), body, files, token=token)
        return self._payload(message)

    def _channel_of(self, token: str) -> str:
        return self.interactions[token].channel_id

    def _payload(self, message: FakeMessage) -> Json:
        version = message.current
        payload: Json = {
            "id": message.id,
            "type": 19 if message.reference else 0,
            "content": version.content,
            "channel_id": message.channel_id,
            "author": message.author,
            "embeds": list(version.embeds),
            "attachments": [
                {
                    "id": upload.id,
                    "filename": upload.filename,
                    "size": len(upload.data),
                    "url": f"http://127.0.0.1:{self.port}/attachments/{upload.filename}",
                    "proxy_url": f"http://127.0.0.1:{self.port}/attachments/{upload.filename}",
                }
                for upload in version.attachments
            ],
            "mentions": [],
            "mention_roles": [],
            "mention_everyone": False,
            "pinned": False,
            "tts": False,
            "timestamp": _iso(),
            "edited_timestamp": _iso() if len(message.versions) > 1 else None,
            "flags": version.flags,
            "components": list(version.components),
        }
        if message.guild_id:
            payload["guild_id"] = message.guild_id
        if message.reference:
            payload["message_reference"] = {"message_id": message.reference, "channel_id": message.channel_id}
        if message.interaction_token:
            payload["webhook_id"] = self.application_id
            payload["application_id"] = self.application_id
        return payload


async def _read_body(request: web.Request) -> tuple[Any, tuple[Upload, ...]]:
    if not request.can_read_body:
        return {}, ()
    if request.content_type.startswith("multipart/"):
        body: Any = {}
        files: list[Upload] = []
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "payload_json":
                body = json.loads(await part.text())
            else:
                files.append(Upload(part.filename or "file", bytes(await part.read())))
        return body, tuple(files)
    text = await request.text()
    return (json.loads(text) if text else {}), ()


def _json(data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # discord.py only decodes JSON when the content type is exactly application/json.
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def _iso() -> str:
    return datetime.now(UTC).isoformat()
