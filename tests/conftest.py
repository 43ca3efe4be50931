"""Fixtures shared by every test: a ledger on a fresh database and a demo engine.

The database is a SQLite file, or, in modules marked ``backends``, each test runs twice: on SQLite
and on a fresh database of a throwaway PostgreSQL server the session starts (``tests/pg.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import openai
import pytest

from core.conversations import ConversationStore
from core.demo import (
    DemoChatGenerator,
    DemoImageGenerator,
    DemoResearchGenerator,
    DemoSongGenerator,
    DemoSummaryGenerator,
)
from core.engine import Engine
from core.ledger import Ledger
from core.money import usd_to_micros
from core.parts import Intent
from tests import pg
from tests.fakes.fake_bfl import FakeBfl
from tests.fakes.fake_openai import FakeOpenAI

IMAGE_COST = usd_to_micros("0.04")
SONG_COST = usd_to_micros("0.05")
RESEARCH_COST = usd_to_micros("0.01")
CHAT_COST = usd_to_micros("0.002")
DEFAULT_LIMIT = usd_to_micros("20")


BACKENDS = ("sqlite", "postgresql")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "database_url" in metafunc.fixturenames and metafunc.definition.get_closest_marker("backends"):
        metafunc.parametrize("database_url", BACKENDS, indirect=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[pg.Server]:
    """One throwaway PostgreSQL server for the whole run, stopped and deleted at its end."""
    if pg.binaries() is None:
        pytest.skip(pg.MISSING)
    with pg.running() as server:
        yield server


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database: a SQLite file, or (parametrised) a new PostgreSQL database."""
    if getattr(request, "param", "sqlite") == "postgresql":
        server: pg.Server = request.getfixturevalue("postgres_server")
        return server.create()
    return f"sqlite:///{tmp_path}/ledger.db"


@pytest.fixture
async def ledger(database_url: str) -> AsyncIterator[Ledger]:
    opened = await Ledger.open(database_url, default_limit=DEFAULT_LIMIT)
    try:
        yield opened
    finally:
        await opened.close()


def demo_engine(ledger: Ledger) -> Engine:
    """An engine on the offline demo generators with no artificial delays, remembering
    conversations in the ledger's database."""
    return Engine(
        ledger=ledger,
        generators={
            Intent.IMAGE: DemoImageGenerator(cost=IMAGE_COST),
            Intent.SONG: DemoSongGenerator(cost=SONG_COST, delay_s=0),
            Intent.RESEARCH: DemoResearchGenerator(cost=RESEARCH_COST, delay_s=0),
            Intent.CHAT: DemoChatGenerator(cost=CHAT_COST, delay_s=0),
            Intent.SUMMARY: DemoSummaryGenerator(cost=RESEARCH_COST, delay_s=0),
        },
        conversations=ConversationStore(ledger.database),
    )


@pytest.fixture
def engine(ledger: Ledger) -> Engine:
    return demo_engine(ledger)


# --- fakes of the providers, at the wire ---------------------------------------------------------


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0)) as client:
        yield client


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    fake = FakeOpenAI()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()


@pytest.fixture
def openai_client(fake_openai: FakeOpenAI, http: httpx.AsyncClient) -> openai.AsyncOpenAI:
    """The real SDK on the shared client; no SDK retries unless a test asks for them."""
    return openai.AsyncOpenAI(
        api_key="sk-test", base_url=fake_openai.base_url, http_client=http, max_retries=0
    )


@pytest.fixture
async def fake_bfl() -> AsyncIterator[FakeBfl]:
    fake = FakeBfl()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()
