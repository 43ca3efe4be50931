"""Live sessions with a real WebSocket client (``websockets``) against the running server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.clock import settle
from tests.fakes.fake_openai import Stream
from tests.web.conftest import Web

ANSWER = "Lighthouses guide ships home at night."


@asynccontextmanager
async def session(web: Web, key: str, session_id: str = "s1") -> AsyncIterator[ClientConnection]:
    async with connect(f"{web.ws_url}/ws/session/{session_id}") as socket:
        await socket.send(json.dumps({"type": "auth", "api_key": key}))
        assert json.loads(await socket.recv()) == {"type": "ready", "session_id": session_id}
        yield socket


async def events_until_done(socket: ClientConnection, *, requests: int = 1) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while sum(event["type"] == "done" for event in events) < requests:
        events.append(json.loads(await socket.recv()))
    return events


async def test_a_message_streams_tokens_then_done_with_its_cost_and_is_stored(web: Web) -> None:
    web.fake.chat.append(Stream(ANSWER, usage=(60, 25)))
    key = await web.key()

    async with session(web, key) as socket:
        await socket.send(json.dumps({"type": "message", "text": "/research lighthouses", "id": "m1"}))
        events = await events_until_done(socket)

    tokens = [event["text"] for event in events if event["type"] == "token"]
    assert "".join(tokens) == ANSWER and len(tokens) == len(ANSWER.split())
    request_ids = {event["request_id"] for event in events}
    assert len(request_ids) == 1 and all(event["message_id"] == "m1" for event in events)
    rows = await web.rows()
    assert [(row.user, row.service, row.status) for row in rows] == [("api:alice", "research", "charged")]
    assert events[-1] == {
        "type": "done",
        "request_id": rows[0].request_id,
        "message_id": "m1",
        "cost_usd": rows[0].charged / 1_000_000,
    }

    async with httpx.AsyncClient(base_url=web.url, headers={"Authorization": f"Bearer {key}"}) as http:
        stored = (await http.get("/v1/sessions/s1")).json()
        other = await http.get("/v1/sessions/s1", headers={"Authorization": f"Bearer {await web.key('bob')}"})
    assert [(event["kind"], event["text"]) for event in stored["events"]] == [
        ("user_message", "lighthouses"),
        ("answer", ANSWER),
    ]
    assert stored["summary"] is None
    assert other.status_code == 404  # another key never sees this session


async def test_several_requests_run_at_once_each_event_naming_its_request(web: Web) -> None:
    web.fake.chat.extend([Stream("first answer here"), Stream("second answer here")])
    async with session(web, await web.key()) as socket:
        await socket.send(json.dumps({"type": "message", "text": "/research one"}))
        await socket.send(json.dumps({"type": "message", "text": "/research two"}))
        events = await events_until_done(socket, requests=2)

    by_request: dict[str, str] = {}
    for event in events:
        if event["type"] == "token":
            by_request[event["request_id"]] = by_request.get(event["request_id"], "") + event["text"]
    assert sorted(by_request.values()) == ["first answer here", "second answer here"]
    assert [row.status for row in await web.rows()] == ["charged", "charged"]


async def test_reconnecting_continues_the_conversation(web: Web) -> None:
    web.fake.chat.extend([Stream("Ahoy there."), Stream(ANSWER)])
    key = await web.key()
    async with session(web, key, "trip") as socket:
        await socket.send(json.dumps({"type": "message", "text": "/research say hello like a sailor"}))
        await events_until_done(socket)
    async with session(web, key, "trip") as socket:
        await socket.send(json.dumps({"type": "message", "text": "/research and now lighthouses"}))
        await events_until_done(socket)

    sent = web.fake.bodies()[-1]["messages"]
    assert {"role": "assistant", "content": "Ahoy there."} in sent
    assert sent[-1]["content"] == "and now lighthouses"


async def test_commands_work_as_on_the_platforms(web: Web) -> None:
    async with session(web, await web.key()) as socket:
        await socket.send(json.dumps({"type": "message", "text": "/budget"}))
        budget = await events_until_done(socket)
        await socket.send(json.dumps({"type": "message", "text": "/forget all"}))
        forget = await events_until_done(socket)

    assert budget[0]["type"] == "token" and "Remaining: $20.00" in budget[0]["text"]
    assert budget[-1]["cost_usd"] == 0
    assert "Only admins" in forget[0]["text"]  # a key has no admin rights in its scope


async def test_a_bad_key_is_refused_and_the_socket_closed(web: Web) -> None:
    async with connect(f"{web.ws_url}/ws/session/s1") as socket:
        await socket.send(json.dumps({"type": "auth", "api_key": "sk-studio-nope"}))
        refusal = json.loads(await socket.recv())
        with pytest.raises(ConnectionClosed) as closed:
            await socket.recv()
    assert refusal["type"] == "error" and refusal["code"] == "invalid_api_key"
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_a_session_left_disconnected_is_summarized_once_and_charged(web: Web) -> None:
    web.fake.chat.extend([Stream(ANSWER), Stream("They talked about lighthouses.", usage=(90, 10))])
    key = await web.key()
    async with session(web, key) as socket:
        await socket.send(json.dumps({"type": "message", "text": "/research lighthouses"}))
        await events_until_done(socket)
    await web.rows()  # every answer has ended
    await settle()

    await web.clock.advance(59)
    assert len(web.fake.bodies()) == 1  # not yet
    await web.clock.advance(1)
    rows = await web.rows()
    for _ in range(100):
        if len(rows) == 2 and rows[-1].status != "held":
            break
        await settle()
        rows = await web.rows()

    assert [(row.service, row.user, row.status) for row in rows] == [
        ("research", "api:alice", "charged"),
        ("summary", "api:alice", "charged"),
    ]
    async with httpx.AsyncClient(base_url=web.url, headers={"Authorization": f"Bearer {key}"}) as http:
        stored = (await http.get("/v1/sessions/s1")).json()
    assert stored["summary"] == "They talked about lighthouses."

    await web.clock.advance(600)  # nothing new since: no second summary
    assert len(web.fake.bodies()) == 2


async def test_reconnecting_in_time_cancels_the_summary(web: Web) -> None:
    web.fake.chat.append(Stream(ANSWER))
    key = await web.key()
    async with session(web, key) as socket:
        await socket.send(json.dumps({"type": "message", "text": "/research lighthouses"}))
        await events_until_done(socket)
    await web.rows()
    await settle()
    await web.clock.advance(30)
    async with session(web, key):
        await web.clock.advance(120)
        assert len(web.fake.bodies()) == 1
