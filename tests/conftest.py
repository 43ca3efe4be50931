"""Fixtures shared by every test: a ledger on a fresh database and a demo engine.

The database is a SQLite file, or, in modules marked ``backends``, each test runs twice: on SQLite
and on a fresh database of a throwaway PostgreSQL server the session starts (``tests/pg.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

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
