"""Fixtures shared by every test: an in-memory-fast ledger on a temp file and a demo engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
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

IMAGE_COST = usd_to_micros("0.04")
SONG_COST = usd_to_micros("0.05")
RESEARCH_COST = usd_to_micros("0.01")
CHAT_COST = usd_to_micros("0.002")
DEFAULT_LIMIT = usd_to_micros("20")


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    opened = await Ledger.open(f"sqlite:///{tmp_path}/ledger.db", default_limit=DEFAULT_LIMIT)
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
        conversations=ConversationStore(ledger),
    )


@pytest.fixture
def engine(ledger: Ledger) -> Engine:
    return demo_engine(ledger)
