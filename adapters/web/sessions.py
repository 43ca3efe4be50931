"""Live sessions over a WebSocket (``/ws/session/{id}``), read back with ``GET /v1/sessions/{id}``.

A session is a conversation of the core, ``web:KEY_NAME:SESSION_ID``: reconnecting with the same id
and key continues it, and another key can never read it. Messages are routed like a mention, or
dispatched like the platforms' slash commands; several may run at once, and every event names its
``request_id``. A session left disconnected for ``SESSION_SUMMARY_AFTER_S`` gets a summary, made
and charged like ``/summary``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections import Counter
from collections.abc import Coroutine
from typing import Any

from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect

from adapters.web.answers import Answer, MediaLinks
from adapters.web.chat import ERRORS
from adapters.web.errors import BY_REASON, SERVER, not_found
from adapters.web.services import WebServices, authenticate, bearer_token
from adapters.web.wire import Session, SessionEvent
from core.api_keys import ApiKey
from core.commands.dispatcher import CommandContext, Dispatcher, Reply
from core.conversations import EventKind
from core.money import MICROS_PER_USD
from core.parts import Audio, Failure, Image, Intent, Part, Status, TextDelta, new_request_id
from core.parts import Request as CoreRequest

log = logging.getLogger(__name__)

SESSION_ID = re.compile(r"[A-Za-z0-9_.-]{1,128}")
AUTH_TIMEOUT_S = 10.0
"""How long a new connection may take to send its auth message (real time: it bounds a client)."""
POLICY_VIOLATION = 1008
SESSION_EVENTS = 1000


def session_conversation(key: ApiKey, session_id: str) -> str:
    return f"web:{key.name}:{session_id}"


class Sessions:
    """Which sessions are connected, what runs in them, and the summaries waiting for them to stay away."""

    def __init__(self, services: WebServices) -> None:
        self._services = services
        self._connected: Counter[str] = Counter()
        self._running: dict[str, set[asyncio.Task[None]]] = {}
        self._waiting: dict[str, asyncio.Task[None]] = {}
        """Summaries not yet started, by conversation: a reconnection cancels them."""
        self._summaries: set[asyncio.Task[None]] = set()

    def connect(self, conversation: str) -> None:
        self._connected[conversation] += 1
        waiting = self._waiting.pop(conversation, None)
        if waiting is not None:
            waiting.cancel()

    def track(self, conversation: str, task: asyncio.Task[None]) -> None:
        """Count ``task`` (an answer) as running in ``conversation``, so its summary waits for it."""
        running = self._running.setdefault(conversation, set())
        running.add(task)
        task.add_done_callback(running.discard)

    def disconnect(self, conversation: str, key: ApiKey) -> None:
        self._connected[conversation] -= 1
        if self._connected[conversation] > 0:
            return
        del self._connected[conversation]
        if self._services.summary_after_s <= 0 or self._services.engine.conversations is None:
            return
        task = asyncio.create_task(self._summarize_later(conversation, key), name=f"summary {conversation}")
        self._waiting[conversation] = task
        self._summaries.add(task)
        task.add_done_callback(self._summaries.discard)

    async def _summarize_later(self, conversation: str, key: ApiKey) -> None:
        running = list(self._running.get(conversation, ()))
        await asyncio.gather(*running, return_exceptions=True)
        await self._services.clock.sleep(self._services.summary_after_s)
        if self._waiting.get(conversation) is not asyncio.current_task():
            return
        del self._waiting[conversation]  # from here on a reconnection no longer stops it
        await summarize(self._services, conversation, key)

    async def close(self) -> None:
        """Drop the summaries not made yet (shutdown)."""
        for task in list(self._summaries):
            task.cancel()
        await asyncio.gather(*self._summaries, return_exceptions=True)


async def summarize(services: WebServices, conversation: str, key: ApiKey) -> bool:
    """Summarize ``conversation`` unless it has nothing new since its last summary; charged to the
    key's scope. Returns whether a summary was stored."""
    store = services.engine.conversations
    if store is None:
        return False
    last = await store.events(conversation, limit=1)
    if not last or last[-1].kind is EventKind.SUMMARY:
        return False
    request = CoreRequest(
        scope=key.scope, user=key.user, text="", intent=Intent.SUMMARY, conversation=conversation
    )
    failed = False
    async for part in services.engine.handle(request):
        if isinstance(part, Failure):
            failed = True
            log.info("no summary for session %s: %s", conversation, part.message)
    return not failed


class Channel:
    """One WebSocket's outgoing events: one JSON object per frame, sends never interleaved, and
    nothing raised once the client has gone."""

    def __init__(self, websocket: WebSocket) -> None:
        self._websocket = websocket
        self._lock = asyncio.Lock()
        self.open = True

    async def send(self, event: dict[str, Any]) -> None:
        if not self.open:
            return
        async with self._lock:
            try:
                await self._websocket.send_text(json.dumps(event))
            except Exception:  # the client went away; the answer goes on without it
                self.open = False

    async def close(self, code: int, reason: str) -> None:
        if self.open:
            self.open = False
            with contextlib.suppress(Exception):
                await self._websocket.close(code, reason)


def session_routes(services: WebServices, sessions: Sessions) -> APIRouter:
    router = APIRouter(tags=["sessions"])
    dispatcher = services.dispatcher()

    @router.websocket("/ws/session/{session_id}")
    async def live_session(websocket: WebSocket, session_id: str) -> None:
        await websocket.accept()
        channel = Channel(websocket)
        if not SESSION_ID.fullmatch(session_id):
            await channel.send(_error(None, "A session id is 1-128 letters, digits, '.', '_' or '-'."))
            await channel.close(POLICY_VIOLATION, "bad session id")
            return
        key = await _authenticated(services, websocket)
        if key is None:
            await channel.send(_error(None, "Invalid API key.", code="invalid_api_key"))
            await channel.close(POLICY_VIOLATION, "invalid API key")
            return
        conversation = session_conversation(key, session_id)
        session = LiveSession(
            services,
            sessions,
            dispatcher=dispatcher,
            key=key,
            conversation=conversation,
            channel=channel,
            links=services.links(websocket),
        )
        sessions.connect(conversation)
        await channel.send({"type": "ready", "session_id": session_id})
        try:
            while True:
                session.receive(await websocket.receive_text())
        except WebSocketDisconnect:
            pass
        finally:
            channel.open = False
            session.stop_forwarding()
            sessions.disconnect(conversation, key)

    @router.get("/v1/sessions/{session_id}", response_model=Session, responses=ERRORS)
    async def read_session(session_id: str, request: Request) -> Session:
        """A session's stored events, oldest first, and its latest summary. History is kept
        ``HISTORY_DAYS`` days."""
        token = bearer_token(request)
        demo = services.demo_identity() if token is None else None
        key = demo or await authenticate(services, token)
        store = services.engine.conversations
        events = (
            await store.events(session_conversation(key, session_id), limit=SESSION_EVENTS)
            if store is not None and SESSION_ID.fullmatch(session_id)
            else []
        )
        if not events:
            raise not_found(f"No session {session_id!r} for this key (or it has expired).")
        summaries = [event.text for event in events if event.kind is EventKind.SUMMARY]
        return Session(
            id=session_id,
            events=[
                SessionEvent(
                    kind=event.kind.value,
                    text=event.text,
                    created_at=event.created_at.isoformat(),
                    request_id=event.request_id,
                    intent=event.intent.value if event.intent else None,
                )
                for event in events
            ],
            summary=summaries[-1] if summaries else None,
        )

    return router


class LiveSession:
    """One connection's messages: each becomes a request (or a command's reply) whose events are
    forwarded as they come, several at once."""

    def __init__(
        self,
        services: WebServices,
        sessions: Sessions,
        *,
        dispatcher: Dispatcher,
        key: ApiKey,
        conversation: str,
        channel: Channel,
        links: MediaLinks,
    ) -> None:
        self._services = services
        self._sessions = sessions
        self._dispatcher = dispatcher
        self._key = key
        self._conversation = conversation
        self._channel = channel
        self._links = links
        self._forwarding: set[asyncio.Task[None]] = set()

    def receive(self, frame: str) -> None:
        """Start answering one client frame (``{"type": "message", "text": …, "id"?: …}``)."""
        try:
            message = json.loads(frame)
        except ValueError:
            message = None
        text = message.get("text") if isinstance(message, dict) else None
        if not isinstance(message, dict) or message.get("type") != "message" or not isinstance(text, str):
            self._spawn(self._channel.send(_error(None, 'Send {"type": "message", "text": "…"}.')))
            return
        tag = message.get("id")
        self._spawn(self._answer(text, tag if isinstance(tag, str | int) else None))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._forwarding.add(task)
        task.add_done_callback(self._forwarding.discard)

    def stop_forwarding(self) -> None:
        """The client left: stop sending. The answers themselves run on (see ``Answer``)."""
        for task in self._forwarding:
            task.cancel()

    async def _answer(self, text: str, tag: str | int | None) -> None:
        request = await self._request(text.strip(), tag)
        if request is None:
            return
        answer = Answer(self._services.engine, request, inflight=self._services.inflight)
        self._sessions.track(self._conversation, answer.task)
        base = {"request_id": request.id} | ({"message_id": tag} if tag is not None else {})
        async for part in answer.parts():
            await self._channel.send(base | await self._event(part))
        await answer.task
        cost = await self._services.keys.request_cost(request.id)
        await self._channel.send({"type": "done"} | base | {"cost_usd": cost / MICROS_PER_USD})

    async def _request(self, text: str, tag: str | int | None) -> CoreRequest | None:
        """The request ``text`` asks for; a command answered at once is sent here and gives None."""
        key = self._key
        if not text.startswith("/"):
            return CoreRequest(scope=key.scope, user=key.user, text=text, conversation=self._conversation)
        name, _, args = text[1:].partition(" ")
        context = CommandContext(scope=key.scope, user=key.user, conversation=self._conversation)
        outcome = await self._dispatcher.dispatch(name, args, context)
        if isinstance(outcome, Reply):
            base = {"request_id": new_request_id()} | ({"message_id": tag} if tag is not None else {})
            await self._channel.send({"type": "token"} | base | {"text": outcome.text})
            await self._channel.send({"type": "done"} | base | {"cost_usd": 0.0})
            return None
        return outcome

    async def _event(self, part: Part) -> dict[str, Any]:
        if isinstance(part, TextDelta):
            return {"type": "token", "text": part.text}
        if isinstance(part, Status):
            return {"type": "status", "text": part.text}
        if isinstance(part, Image):
            return {
                "type": "image",
                "url": await self._links.url(part.data, part.filename),
                "prompt": part.prompt,
            }
        if isinstance(part, Audio):
            event: dict[str, Any] = {
                "type": "audio",
                "url": await self._links.url(part.data, part.filename),
                "title": part.title,
                "lyrics": part.lyrics,
            }
            if part.cover is not None:
                event["cover_url"] = await self._links.url(part.cover.data, part.cover.filename)
            return event
        return {"type": "error", "message": part.message, "code": BY_REASON.get(part.reason, SERVER).code}


async def _authenticated(services: WebServices, websocket: WebSocket) -> ApiKey | None:
    """The key of the connection's first message, ``{"type": "auth", "api_key": …}``."""
    try:
        async with asyncio.timeout(AUTH_TIMEOUT_S):
            frame = await websocket.receive_text()
        message = json.loads(frame)
    except (TimeoutError, ValueError, WebSocketDisconnect, RuntimeError):
        return None
    if not isinstance(message, dict) or message.get("type") != "auth":
        return None
    if message.get("demo") is True:
        return services.demo_identity()
    secret = message.get("api_key")
    return await services.keys.authenticate(secret) if isinstance(secret, str) else None


def _error(request_id: str | None, message: str, *, code: str = "invalid_request_error") -> dict[str, Any]:
    return {"type": "error", "request_id": request_id, "message": message, "code": code}
