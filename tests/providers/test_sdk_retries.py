"""The openai SDK, as the bot builds it, retries what the server refused and never what it may be running."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import httpx
import openai
import pytest

from bot.providers import build_providers
from bot.settings import Settings, load_settings
from bot.shared_http import sdk_http
from bot.wiring import http_client
from core.clock import SystemClock
from core.ledger import Ledger
from core.parts import Intent
from tests.fakes.fake_openai import FakeOpenAI, Hangup, Stream, error
from tests.providers.conftest import ask, engine_with


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake_openai: FakeOpenAI) -> Settings:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("OPENAI_MAX_RETRIES", "2")
    return load_settings()


@pytest.fixture
async def shared(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The bot's own shared client (aiohttp underneath), as in production."""
    async with http_client(settings) as client:
        yield client


async def test_a_request_whose_connection_dies_unanswered_is_sent_once(
    settings: Settings, shared: httpx.AsyncClient, fake_openai: FakeOpenAI, ledger: Ledger
) -> None:
    fake_openai.chat.append(Hangup())
    providers = build_providers(settings, http=shared, clock=SystemClock())
    engine = engine_with(ledger, providers.generators[Intent.CHAT])

    outcome = await ask(engine, "how are the tides today", Intent.CHAT)

    assert len(fake_openai.bodies()) == 1
    assert outcome.failure is not None and "I haven't resent it" in outcome.failure
    assert outcome.row("chat").status == "refunded"


async def test_a_request_the_server_refused_is_retried(
    settings: Settings, shared: httpx.AsyncClient, fake_openai: FakeOpenAI, ledger: Ledger
) -> None:
    fake_openai.chat.extend(
        [error(503, "overloaded", headers={"retry-after-ms": "1"}), Stream("Calm.", usage=(5, 1))]
    )
    providers = build_providers(settings, http=shared, clock=SystemClock())
    engine = engine_with(ledger, providers.generators[Intent.CHAT])

    outcome = await ask(engine, "how are the tides today", Intent.CHAT)

    assert outcome.failure is None
    assert len(fake_openai.bodies()) == 2


@contextlib.asynccontextmanager
async def raw_server(mode: str) -> AsyncIterator[str]:
    """A server that reads each request, then never answers ("silent") or hangs up ("hangup");
    with mode "closed", an address where nothing listens."""
    if mode == "closed":
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        yield f"http://127.0.0.1:{port}/v1"
        return

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        if mode == "silent":
            await asyncio.Event().wait()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
    finally:
        server.close()


@pytest.mark.parametrize(
    ("mode", "raised", "sent"),
    [
        ("closed", openai.APIConnectionError, 2),  # never connected: tried again
        ("silent", openai.APITimeoutError, 1),
        ("hangup", openai.APIConnectionError, 1),
    ],
)
async def test_only_a_connection_that_never_opened_is_retried(
    settings: Settings, mode: str, raised: type[openai.APIError], sent: int
) -> None:
    attempts: list[object] = []
    trace = aiohttp.TraceConfig()

    async def count(*_: object) -> None:
        attempts.append(None)

    trace.on_request_start.append(count)
    async with http_client(settings) as shared, raw_server(mode) as base_url:
        shared._session = aiohttp.ClientSession(trace_configs=[trace])
        client = openai.AsyncOpenAI(
            api_key="sk-test", base_url=base_url, http_client=sdk_http(shared), max_retries=1
        )
        client = client.with_options(timeout=0.5)
        with pytest.raises(raised):
            await client.post("/chat/completions", cast_to=httpx.Response, body={"model": "m"})

    assert len(attempts) == sent
