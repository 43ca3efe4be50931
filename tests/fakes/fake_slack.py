"""A fake Slack on 127.0.0.1, faked at the wire for the real slack_sdk and slack-bolt.

It serves the Web API methods the adapter calls (``/api/<method>``, form or JSON, bearer token),
the raw file-upload URLs ``files.getUploadURLExternal`` hands out, the ``response_url`` of slash
commands, and a Socket Mode WebSocket (``apps.connections.open`` returns its URL). It can also
play Slack's part in delivering events and commands: signed HTTP posts, or envelopes over the
WebSocket that wait for the app's acknowledgement.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import ClientSession, WSMsgType, web

BOT_TOKEN = "xoxb-fake-bot-token"
APP_TOKEN = "xapp-fake-app-token"
SIGNING_SECRET = "fake-signing-secret"
TEAM_ID = "T0TEAM"
APP_ID = "A0APP"
BOT_USER_ID = "U0BOT"
BOT_ID = "B0BOT"
ALICE = "U0ALICE"
GENERAL = "C0GENERAL"
MAX_MESSAGE_CHARS = 4000
MAX_MARKDOWN_CHARS = 12000


@dataclass
class Call:
    """One Web API call as the fake received it (token removed)."""

    method: str
    args: dict[str, Any]


@dataclass(frozen=True)
class Fault:
    """A canned failure for one call: an HTTP status, with ``Retry-After`` for a 429."""

    status: int
    retry_after: int | None = None


@dataclass
class Message:
    channel: str
    ts: str
    thread_ts: str | None
    text: str
    streamed: bool = False
    streaming: bool = False
    appends: int = 0
    deleted: bool = False
    broadcast: bool = False
    """A thread reply also shown in the channel (``reply_broadcast``)."""
    versions: list[str] = field(default_factory=list)
    """Every text the message showed, in order."""
    blocks: list[dict[str, Any]] = field(default_factory=list)
    """The Block Kit blocks it was posted with."""

    def elements(self) -> list[dict[str, Any]]:
        """The interactive elements of its ``actions`` blocks, in order."""
        return [
            element
            for block in self.blocks
            if block.get("type") == "actions"
            for element in block["elements"]
        ]


@dataclass
class Ephemeral:
    """A message only ``user`` sees (``chat.postEphemeral``)."""

    channel: str
    user: str
    text: str
    thread_ts: str | None


@dataclass
class UploadedFile:
    id: str
    filename: str
    length: int
    alt_txt: str | None
    data: bytes | None = None
    title: str | None = None
    channel: str | None = None
    thread_ts: str | None = None
    initial_comment: str | None = None
    deleted: bool = False


def sign(secret: str, timestamp: str, body: str) -> str:
    """Slack's request signature: ``v0=`` + HMAC-SHA256 of ``v0:{timestamp}:{body}``."""
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return f"v0={digest}"


class FakeSlack:
    """Start with ``async with FakeSlack() as slack``; point the app at ``slack.api_url``."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.messages: dict[str, Message] = {}
        self.files: dict[str, UploadedFile] = {}
        self.responses: list[dict[str, Any]] = []
        """Bodies posted to slash commands' ``response_url`` (ephemeral replies)."""
        self.users: dict[str, dict[str, Any]] = {ALICE: {"id": ALICE, "name": "alice"}}
        self.ephemerals: list[Ephemeral] = []
        self.views: dict[str, dict[str, Any]] = {}
        """Modals opened with ``views.open``, by trigger id."""
        self.outside_channels: set[str] = set()
        """Channels the bot is not a member of: posting there fails with ``not_in_channel``."""
        self.unsupported: set[str] = set()
        """Methods answered with ``unknown_method``."""
        self.stream_expires_after: int | None = None
        """After this many appends a stream expires (``message_not_in_streaming_state``)."""
        self.socket_connections = 0
        self.faults: dict[str, list[Fault]] = {}
        """Per method, failures to answer the next calls with (without acting on them)."""
        self.private_files: dict[str, tuple[bytes, str]] = {}
        """Files users shared (``shared_file``), served at ``/files-pri/<name>`` to the bot token only."""
        self.file_requests: list[tuple[str, str]] = []
        """(name, Authorization header) of every private file fetched."""
        self._changed = asyncio.Condition()
        self._ts = itertools.count(1)
        self._ids = itertools.count(1)
        self._sockets: list[web.WebSocketResponse] = []
        self._acks: dict[str, asyncio.Future[dict[str, Any] | None]] = {}
        self._runner: web.AppRunner | None = None
        self.url = ""

    # --- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> FakeSlack:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_post("/respond/{key}", self._respond)
        app.router.add_get("/socket", self._socket)
        app.router.add_get("/files-pri/{name}", self._private_file)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        for socket in list(self._sockets):
            await socket.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    @property
    def open_sockets(self) -> int:
        """Socket Mode connections currently open."""
        return len(self._sockets)

    # --- what happened ------------------------------------------------------------------------

    def calls_to(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    def thread(self, channel: str, thread_ts: str) -> list[Message]:
        """Replies in a thread that are still there, oldest first."""
        return [
            message
            for message in self.messages.values()
            if message.channel == channel and message.thread_ts == thread_ts and not message.deleted
        ]

    def top_level(self, channel: str) -> list[Message]:
        return [
            message
            for message in self.messages.values()
            if message.channel == channel and message.thread_ts is None and not message.deleted
        ]

    async def wait_for(self, condition: Callable[[], object], *, within: float = 10) -> None:
        """Wait until ``condition()`` holds, re-checking after every request the fake serves."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: bool(condition()))

    async def _touch(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # --- Slack delivering to the app ----------------------------------------------------------

    def mention(
        self,
        text: str,
        *,
        user: str = ALICE,
        channel: str = GENERAL,
        thread_ts: str | None = None,
        event_id: str | None = None,
        files: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """An ``app_mention`` event callback, as a channel message mentioning the bot (with
        ``files`` shared in it, made by ``shared_file``)."""
        ts = self.next_ts()
        event: dict[str, Any] = {
            "type": "app_mention",
            "user": user,
            "text": f"<@{BOT_USER_ID}> {text}",
            "ts": ts,
            "channel": channel,
            "event_ts": ts,
            "team": TEAM_ID,
        }
        if thread_ts:
            event["thread_ts"] = thread_ts
        if files:
            event["files"] = files
        return self.event_callback(event, event_id=event_id)

    def shared_file(
        self, name: str, data: bytes, *, mimetype: str, url: str | None = None, size: int | None = None
    ) -> dict[str, Any]:
        """A file object as a message's ``files`` carry it, served at ``url_private`` (or ``url``)."""
        self.private_files[name] = (data, mimetype)
        file_id = f"F{next(self._ids):08d}"
        return {
            "id": file_id,
            "name": name,
            "title": name,
            "mimetype": mimetype,
            "size": len(data) if size is None else size,
            "url_private": url or f"{self.url}/files-pri/{name}",
            "url_private_download": url or f"{self.url}/files-pri/{name}",
        }

    async def _private_file(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        authorization = request.headers.get("Authorization", "")
        self.file_requests.append((name, authorization))
        if authorization != f"Bearer {BOT_TOKEN}":
            # Slack answers an unauthenticated url_private with its sign-in page, not the file.
            return web.Response(text="<!DOCTYPE html><html>sign in</html>", content_type="text/html")
        if name not in self.private_files:
            return web.Response(status=404)
        data, mimetype = self.private_files[name]
        return web.Response(body=data, headers={"Content-Type": mimetype})

    def message(
        self,
        text: str,
        *,
        user: str = ALICE,
        channel: str = GENERAL,
        thread_ts: str | None = None,
        ts: str | None = None,
        event_id: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """A ``message`` event callback (``message.channels``) for a message someone posted.
        ``fields`` adds or overrides event fields (``subtype``, ``bot_id``, …; None removes one)."""
        ts = ts or self.next_ts()
        event: dict[str, Any] = {
            "type": "message",
            "channel": channel,
            "user": user,
            "text": text,
            "ts": ts,
            "event_ts": ts,
            "team": TEAM_ID,
            "channel_type": "channel",
        }
        if thread_ts:
            event["thread_ts"] = thread_ts
            event["parent_user_id"] = user
        event.update(fields)
        return self.event_callback(
            {key: value for key, value in event.items() if value is not None}, event_id=event_id
        )

    def mention_in_thread(self, text: str, *, thread_ts: str, user: str = ALICE) -> list[dict[str, Any]]:
        """What Slack sends for one message in a thread that mentions the bot: a ``message`` event
        and an ``app_mention`` event for the same message, with different event ids."""
        mention = self.mention(text, user=user, thread_ts=thread_ts)
        event = mention["event"]
        return [self.message(event["text"], user=user, thread_ts=thread_ts, ts=event["ts"]), mention]

    def event_callback(self, event: dict[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
        """The Events API envelope Slack wraps ``event`` in."""
        return {
            "token": "unused-verification-token",
            "team_id": TEAM_ID,
            "api_app_id": APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": event_id or f"Ev{next(self._ids):08d}",
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": TEAM_ID,
                    "user_id": BOT_USER_ID,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
        }

    def command(
        self, name: str, text: str = "", *, user: str = ALICE, channel: str = GENERAL
    ) -> dict[str, str]:
        """A slash command's fields (form-encoded over HTTP, the payload over Socket Mode)."""
        key = next(self._ids)
        return {
            "token": "unused-verification-token",
            "team_id": TEAM_ID,
            "team_domain": "fake",
            "channel_id": channel,
            "channel_name": "general",
            "user_id": user,
            "user_name": self.users.get(user, {}).get("name", "someone"),
            "command": f"/{name}",
            "text": text,
            "api_app_id": APP_ID,
            "is_enterprise_install": "false",
            "response_url": f"{self.url}/respond/{key}",
            "trigger_id": f"{key}.{int(time.time())}.fake",
        }

    def block_action(
        self, message: Message, action_id: str, *, user: str = ALICE, selected: str | None = None
    ) -> dict[str, Any]:
        """The ``block_actions`` payload for ``user`` pressing the element ``action_id`` of
        ``message`` (choosing the option ``selected`` of a menu). The element must be there."""
        block = next(
            block
            for block in message.blocks
            if block.get("type") == "actions" and any(e["action_id"] == action_id for e in block["elements"])
        )
        element = next(e for e in block["elements"] if e["action_id"] == action_id)
        action: dict[str, Any] = {
            "type": element["type"],
            "action_id": action_id,
            "block_id": block["block_id"],
            "action_ts": self.next_ts(),
        }
        if element["type"] == "button":
            action |= {"value": element["value"], "text": element["text"]}
        else:
            option = next(o for o in element["options"] if o["value"] == selected)
            action["selected_option"] = option
        key = next(self._ids)
        return {
            "type": "block_actions",
            "user": self._user(user),
            "api_app_id": APP_ID,
            "token": "unused-verification-token",
            "container": {
                "type": "message",
                "message_ts": message.ts,
                "channel_id": message.channel,
                "is_ephemeral": False,
                "thread_ts": message.thread_ts,
            },
            "trigger_id": f"{key}.{int(time.time())}.fake",
            "team": {"id": TEAM_ID, "domain": "fake"},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": message.channel, "name": "general"},
            "message": {
                "type": "message",
                "user": BOT_USER_ID,
                "ts": message.ts,
                "thread_ts": message.thread_ts,
                "text": message.text,
                "blocks": message.blocks,
            },
            "state": {"values": {}},
            "response_url": f"{self.url}/respond/{key}",
            "actions": [action],
        }

    def view_submission(self, view: dict[str, Any], text: str, *, user: str = ALICE) -> dict[str, Any]:
        """The ``view_submission`` payload for ``user`` typing ``text`` into the one text input
        of the modal ``view`` and submitting it."""
        (block,) = [block for block in view["blocks"] if block.get("type") == "input"]
        element = block["element"]
        values = {block["block_id"]: {element["action_id"]: {"type": element["type"], "value": text}}}
        return {
            "type": "view_submission",
            "team": {"id": TEAM_ID, "domain": "fake"},
            "user": self._user(user),
            "api_app_id": APP_ID,
            "token": "unused-verification-token",
            "trigger_id": f"{next(self._ids)}.{int(time.time())}.fake",
            "view": {**view, "team_id": TEAM_ID, "state": {"values": values}, "hash": "fake-hash"},
            "response_urls": [],
            "is_enterprise_install": False,
            "enterprise": None,
        }

    def _user(self, user: str) -> dict[str, Any]:
        name = self.users.get(user, {}).get("name", "someone")
        return {"id": user, "username": name, "name": name, "team_id": TEAM_ID}

    async def post_http(
        self,
        url: str,
        payload: dict[str, Any],
        *,
        form: bool = False,
        retry_num: int | None = None,
        timestamp: int | None = None,
        secret: str = SIGNING_SECRET,
    ) -> tuple[int, str]:
        """Deliver like Slack's HTTP mode: a signed POST, optionally marked as a retry."""
        body = urlencode(payload) if form else json.dumps(payload)
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded" if form else "application/json",
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": sign(secret, stamp, body),
        }
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = "http_timeout"
        async with (
            ClientSession() as session,
            session.post(url, data=body.encode(), headers=headers) as reply,
        ):
            return reply.status, await reply.text()

    async def send_envelope(
        self, kind: str, payload: dict[str, Any], *, retry_attempt: int = 0, within: float = 5
    ) -> dict[str, Any] | None:
        """Deliver like Socket Mode; return the payload of the app's acknowledgement."""
        if not self._sockets:
            raise RuntimeError("no Socket Mode connection")
        envelope_id = f"env-{next(self._ids)}"
        acked: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
        self._acks[envelope_id] = acked
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind != "events_api",
        }
        if kind == "events_api":
            envelope["retry_attempt"] = retry_attempt
            envelope["retry_reason"] = "timeout" if retry_attempt else ""
        await self._sockets[-1].send_str(json.dumps(envelope))
        try:
            async with asyncio.timeout(within):
                return await acked
        finally:
            self._acks.pop(envelope_id, None)

    async def ask_to_reconnect(self) -> None:
        """Send Slack's ``disconnect`` message, as before it refreshes a Socket Mode connection."""
        await self._sockets[-1].send_str(json.dumps({"type": "disconnect", "reason": "refresh_requested"}))

    def fail_next(self, method: str, *faults: Fault) -> None:
        """Answer the next calls to ``method`` with ``faults``, in order, before serving it again."""
        self.faults.setdefault(method, []).extend(faults)

    async def wait_connected(self, *, within: float = 10) -> None:
        await self.wait_for(lambda: self._sockets, within=within)

    def next_ts(self) -> str:
        number = next(self._ts)
        return f"{1_790_000_000 + number}.{number:06d}"

    # --- the Web API --------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            args.update(await request.json())
        else:
            args.update({key: str(value) for key, value in (await request.post()).items()})
        token = request.headers.get("Authorization", "").removeprefix("Bearer ") or args.get("token", "")
        args.pop("token", None)
        self.calls.append(Call(method, args))
        if self.faults.get(method):
            fault = self.faults[method].pop(0)
            await self._touch()
            if fault.retry_after is not None:
                return web.json_response(
                    {"ok": False, "error": "ratelimited"},
                    status=fault.status,
                    headers={"Retry-After": str(fault.retry_after)},
                )
            return web.Response(status=fault.status, text="upstream connect error")
        try:
            result = self._answer(method, args, str(token))
        except _ApiError as error:
            result = {"ok": False, "error": str(error)}
        await self._touch()
        return web.json_response(result)

    def _answer(self, method: str, args: dict[str, Any], token: str) -> dict[str, Any]:
        expected = APP_TOKEN if method == "apps.connections.open" else BOT_TOKEN
        if token != expected:
            raise _ApiError("invalid_auth")
        handler = _METHODS.get(method)
        if handler is None or method in self.unsupported:
            raise _ApiError("unknown_method")
        return {"ok": True, **handler(self, args)}

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": "https://fake.slack.test/",
            "team": "Fake Team",
            "user": "studio",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"url": self.url.replace("http://", "ws://") + "/socket"}

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user = self.users.get(str(args.get("user")))
        if user is None:
            raise _ApiError("user_not_found")
        return {"user": {"is_admin": False, "is_owner": False, "is_primary_owner": False, **user}}

    def _post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args.get("channel"))
        text = _text_of(args)
        message = Message(
            channel,
            self.next_ts(),
            args.get("thread_ts") or None,
            text,
            broadcast=bool(args.get("reply_broadcast")) and args.get("reply_broadcast") != "false",
            versions=[text],
            blocks=_blocks_of(args),
        )
        self.messages[message.ts] = message
        return {"channel": channel, "ts": message.ts, "message": {"text": text, "ts": message.ts}}

    def _update(self, args: dict[str, Any]) -> dict[str, Any]:
        message = self._message(args)
        message.text = _text_of(args)
        message.versions.append(message.text)
        if "blocks" in args:
            message.blocks = _blocks_of(args)
        return {"channel": message.channel, "ts": message.ts, "text": message.text}

    def _delete(self, args: dict[str, Any]) -> dict[str, Any]:
        message = self._message(args)
        message.deleted = True
        return {"channel": message.channel, "ts": message.ts}

    def _post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args.get("channel"))
        if not args.get("user"):
            raise _ApiError("user_not_in_channel")
        self.ephemerals.append(
            Ephemeral(channel, str(args["user"]), _text_of(args), args.get("thread_ts") or None)
        )
        return {"message_ts": self.next_ts()}

    def _views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        view = args.get("view")
        if isinstance(view, str):
            view = json.loads(view)
        trigger = str(args.get("trigger_id") or "")
        if not trigger or trigger in self.views:
            raise _ApiError("invalid_trigger_id")  # a trigger opens one view, once
        if not isinstance(view, dict) or view.get("type") != "modal" or not view.get("title"):
            raise _ApiError("invalid_arguments")
        if len(str(view.get("private_metadata", ""))) > 3000:
            raise _ApiError("invalid_arguments")
        opened = {**view, "id": f"V{next(self._ids):08d}"}
        self.views[trigger] = opened
        return {"view": opened}

    def _files_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        upload = self.files.get(str(args.get("file")))
        if upload is None or upload.deleted:
            raise _ApiError("file_not_found")
        upload.deleted = True
        return {}

    def _start_stream(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args.get("channel"))
        if not args.get("thread_ts"):
            raise _ApiError("invalid_arguments")
        if channel.startswith("C") and not (args.get("recipient_user_id") and args.get("recipient_team_id")):
            raise _ApiError("invalid_arguments")
        text = _text_of(args, limit=MAX_MARKDOWN_CHARS, required=False)
        message = Message(channel, self.next_ts(), args["thread_ts"], text, streamed=True, streaming=True)
        message.versions.append(text)
        self.messages[message.ts] = message
        return {"channel": channel, "ts": message.ts}

    def _append_stream(self, args: dict[str, Any]) -> dict[str, Any]:
        message = self._streaming_message(args)
        if self.stream_expires_after is not None and message.appends >= self.stream_expires_after:
            message.streaming = False
            raise _ApiError("message_not_in_streaming_state")
        message.appends += 1
        message.text += _text_of(args, limit=MAX_MARKDOWN_CHARS, required=False)
        message.versions.append(message.text)
        return {"channel": message.channel, "ts": message.ts}

    def _stop_stream(self, args: dict[str, Any]) -> dict[str, Any]:
        message = self._streaming_message(args)
        message.text += _text_of(args, limit=MAX_MARKDOWN_CHARS, required=False)
        message.versions.append(message.text)
        message.streaming = False
        return {"channel": message.channel, "ts": message.ts, "message": {"text": message.text}}

    def _get_upload_url(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("filename") or not str(args.get("length", "")).isdigit():
            raise _ApiError("invalid_arguments")
        file_id = f"F{next(self._ids):08d}"
        self.files[file_id] = UploadedFile(
            file_id, str(args["filename"]), int(args["length"]), args.get("alt_txt") or None
        )
        return {"upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}

    def _complete_upload(self, args: dict[str, Any]) -> dict[str, Any]:
        entries = json.loads(str(args.get("files", "[]")))
        channel = self._channel(args["channel_id"]) if args.get("channel_id") else None
        done = []
        for entry in entries:
            upload = self.files.get(str(entry.get("id")))
            if upload is None or upload.data is None:
                raise _ApiError("file_not_found")
            upload.title = entry.get("title")
            upload.channel = channel
            upload.thread_ts = args.get("thread_ts") or None
            upload.initial_comment = args.get("initial_comment") or None
            done.append({"id": upload.id, "name": upload.filename, "title": upload.title})
        return {"files": done}

    def _channel(self, channel: object) -> str:
        if not channel:
            raise _ApiError("channel_not_found")
        if channel in self.outside_channels:
            raise _ApiError("not_in_channel")
        return str(channel)

    def _message(self, args: dict[str, Any]) -> Message:
        message = self.messages.get(str(args.get("ts")))
        if message is None or message.deleted or message.channel != args.get("channel"):
            raise _ApiError("message_not_found")
        return message

    def _streaming_message(self, args: dict[str, Any]) -> Message:
        message = self._message(args)
        if not message.streaming:
            raise _ApiError("message_not_in_streaming_state")
        return message

    # --- the other endpoints ------------------------------------------------------------------

    async def _upload(self, request: web.Request) -> web.Response:
        upload = self.files.get(request.match_info["file_id"])
        data = await request.read()
        if upload is None or len(data) != upload.length:
            return web.Response(status=400, text="bad upload")
        upload.data = data
        await self._touch()
        return web.Response(text=f"OK - {len(data)}")

    async def _respond(self, request: web.Request) -> web.Response:
        self.responses.append(await request.json())
        await self._touch()
        return web.Response(text="ok")

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(autoping=True)
        await socket.prepare(request)
        self._sockets.append(socket)
        self.socket_connections += 1
        await socket.send_str(json.dumps({"type": "hello", "num_connections": 1}))
        await self._touch()
        try:
            async for frame in socket:
                if frame.type is not WSMsgType.TEXT:
                    continue
                reply = json.loads(frame.data)
                acked = self._acks.get(str(reply.get("envelope_id")))
                if acked is not None and not acked.done():
                    acked.set_result(reply.get("payload"))
        finally:
            self._sockets.remove(socket)
            await self._touch()
        return socket


class _ApiError(Exception):
    """Answered as ``{"ok": false, "error": ...}`` with HTTP 200, as Slack does."""


def _blocks_of(args: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = args.get("blocks") or []
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    for block in blocks:
        if block.get("type") == "actions":
            ids = [element["action_id"] for element in block["elements"]]
            if len(ids) != len(set(ids)) or len(ids) > 25 or len(str(block.get("block_id", ""))) > 255:
                raise _ApiError("invalid_blocks")
    return list(blocks)


def _text_of(args: dict[str, Any], *, limit: int = MAX_MESSAGE_CHARS, required: bool = True) -> str:
    text = str(args.get("markdown_text") or args.get("text") or "")
    for chunk in args.get("chunks") or []:
        if isinstance(chunk, dict) and chunk.get("type") == "markdown_text":
            text += str(chunk.get("text", ""))
    if required and not text:
        raise _ApiError("no_text")
    if len(text) > limit:
        raise _ApiError("msg_too_long")
    return text


_METHODS: dict[str, Callable[[FakeSlack, dict[str, Any]], dict[str, Any]]] = {
    "auth.test": FakeSlack._auth_test,
    "apps.connections.open": FakeSlack._connections_open,
    "users.info": FakeSlack._users_info,
    "chat.postMessage": FakeSlack._post_message,
    "chat.update": FakeSlack._update,
    "chat.delete": FakeSlack._delete,
    "chat.postEphemeral": FakeSlack._post_ephemeral,
    "views.open": FakeSlack._views_open,
    "files.delete": FakeSlack._files_delete,
    "chat.startStream": FakeSlack._start_stream,
    "chat.appendStream": FakeSlack._append_stream,
    "chat.stopStream": FakeSlack._stop_stream,
    "files.getUploadURLExternal": FakeSlack._get_upload_url,
    "files.completeUploadExternal": FakeSlack._complete_upload,
}
