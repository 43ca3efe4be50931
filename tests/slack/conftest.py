"""Slack test helpers: a fake Slack per test and the real Bolt app pointed at it."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from adapters.slack import SlackBot, SlackConfig
from core.attachments import AttachmentReader
from core.clock import Clock
from core.engine import Engine
from core.errors import ProviderUnavailable
from core.generator import Generator
from core.ledger import Ledger
from core.parts import GeneratorPart, Intent, Request, Scope, Status, TextDelta
from tests.clock import FakeClock
from tests.conftest import CHAT_COST, IMAGE_COST, RESEARCH_COST, demo_engine
from tests.fakes.fake_slack import BOT_TOKEN, SIGNING_SECRET, TEAM_ID, FakeSlack

SCOPE = Scope("slack", TEAM_ID)


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


def http_config(slack: FakeSlack, **overrides: Any) -> SlackConfig:
    values: dict[str, Any] = {
        "bot_token": BOT_TOKEN,
        "signing_secret": SIGNING_SECRET,
        "port": 0,
        "host": "127.0.0.1",
        "api_url": slack.api_url,
    }
    values.update(overrides)
    return SlackConfig(**values)


class Harness:
    """A started bot in HTTP mode and the fake Slack it talks to."""

    def __init__(self, slack: FakeSlack, bot: SlackBot) -> None:
        self.slack = slack
        self.bot = bot

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.bot.http_port}/slack/events"

    async def mention(self, text: str, **kwargs: Any) -> dict[str, Any]:
        """Deliver an ``app_mention`` and wait until its reply is complete."""
        payload = self.slack.mention(text, **kwargs)
        await self.deliver(payload)
        return payload

    async def deliver(self, payload: dict[str, Any], *, retry_num: int | None = None) -> None:
        status, body = await self.slack.post_http(self.url, payload, retry_num=retry_num)
        assert status == 200, body
        await self.bot.drain()

    async def command(self, name: str, text: str = "", **kwargs: Any) -> dict[str, str]:
        """Run a slash command, check it was acknowledged with an empty 200, wait for the work."""
        payload = self.slack.command(name, text, **kwargs)
        status, body = await self.slack.post_http(self.url, payload, form=True)
        assert (status, body) == (200, "")
        await self.bot.drain()
        return payload


@asynccontextmanager
async def running(bot: SlackBot) -> AsyncIterator[SlackBot]:
    await bot.start()
    try:
        yield bot
    finally:
        await bot.stop()


StartHttp = Callable[..., Any]


@pytest.fixture
async def start_http(slack: FakeSlack, ledger: Ledger) -> AsyncIterator[StartHttp]:
    """``await start_http(engine, clock=..., **config)`` → a ``Harness``; stopped at the end."""
    bots: list[SlackBot] = []

    async def start(
        engine: Engine,
        *,
        clock: Clock | None = None,
        attachments: AttachmentReader | None = None,
        **config: Any,
    ) -> Harness:
        bot = SlackBot(
            http_config(slack, **config), engine=engine, ledger=ledger, clock=clock, attachments=attachments
        )
        await bot.start()
        bots.append(bot)
        return Harness(slack, bot)

    yield start
    for bot in bots:
        await bot.stop()


async def tick(clock: FakeClock, seconds: float) -> None:
    """Wait until something sleeps on ``clock``, then move it forward."""
    async with asyncio.timeout(5):
        while not clock.sleepers:  # noqa: ASYNC110 (FakeClock has no event for a new sleeper)
            await asyncio.sleep(0.001)
    await clock.advance(seconds)


# --- engines with test generators ----------------------------------------------------------------


class GatedChat:
    """A chat generator that yields exactly what the test feeds it, when it feeds it."""

    intent = Intent.CHAT
    demo = True

    def __init__(self) -> None:
        self.pieces: asyncio.Queue[str | None] = asyncio.Queue()

    def estimate(self, prompt: str) -> int:
        return CHAT_COST

    async def generate(self, prompt: str, request: Request) -> AsyncIterator[GeneratorPart]:
        while (piece := await self.pieces.get()) is not None:
            yield TextDelta(piece)


class LongResearch:
    """A research paper far longer than one Slack message, in numbered paragraphs."""

    intent = Intent.RESEARCH
    demo = True

    def __init__(self, paragraphs: int = 40) -> None:
        self.text = "\n\n".join(
            f"Paragraph {n}: " + " ".join(f"word{n}-{w}" for w in range(30)) for n in range(paragraphs)
        )

    def estimate(self, prompt: str) -> int:
        return RESEARCH_COST

    async def generate(self, prompt: str, request: Request) -> AsyncIterator[GeneratorPart]:
        for piece in re.findall(r"\S+\s*|\s+", self.text):
            yield TextDelta(piece)


class BrokenImages:
    """An image provider that is down."""

    intent = Intent.IMAGE
    demo = False

    def estimate(self, prompt: str) -> int:
        return IMAGE_COST

    async def generate(self, prompt: str, request: Request) -> AsyncIterator[GeneratorPart]:
        yield Status("Submitting…")
        raise ProviderUnavailable("The image service is down right now; please try again later.")


def engine_with(ledger: Ledger, *generators: Generator) -> Engine:
    """The demo engine with some generators replaced."""
    base = demo_engine(ledger)
    replaced = dict(base.generators) | {generator.intent: generator for generator in generators}
    return Engine(ledger=ledger, generators=replaced)


async def run_clock_until(clock: FakeClock, condition: Callable[[], object], *, within: float = 10) -> None:
    """Advance ``clock`` a second at a time, letting real I/O run in between, until ``condition()``."""
    async with asyncio.timeout(within):
        while not condition():
            await clock.advance(1)
            await asyncio.sleep(0.01)
