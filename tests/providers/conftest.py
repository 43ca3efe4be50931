"""Fixtures for provider tests: running fakes, the real httpx client, an instant clock, an engine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass

import pytest

from core.engine import Engine
from core.generator import Generator
from core.ledger import BudgetReport, Ledger, Transaction
from core.parts import Checkpoint, Failure, GeneratorPart, Intent, Part, Request, Scope, Status
from core.providers import RetryPolicy
from core.router import Classifier
from tests.conftest import demo_engine
from tests.fakes.fake_songs import FakeSunoApi, FakeUdio

SCOPE = Scope("test", "guild")
POLICY = RetryPolicy(attempts=3)


class InstantClock:
    """A clock whose sleeps return at once, moving time on and remembering each requested delay."""

    def __init__(self) -> None:
        self.time = 1000.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.time += max(0.0, seconds)
        await asyncio.sleep(0)


@dataclass(frozen=True)
class Outcome:
    """What one request produced: its parts, the budget afterwards, and its ledger rows."""

    parts: list[Part]
    report: BudgetReport
    rows: list[Transaction]

    @property
    def failure(self) -> str | None:
        failures = [part.message for part in self.parts if isinstance(part, Failure)]
        return failures[-1] if failures else None

    @property
    def statuses(self) -> list[str]:
        return [part.text for part in self.parts if isinstance(part, Status)]

    def row(self, service: str) -> Transaction:
        return next(row for row in self.rows if row.service == service)


async def ask(engine: Engine, text: str, intent: Intent | None = None) -> Outcome:
    """Send one request through the real engine and ledger."""
    request = Request(scope=SCOPE, user="u1", text=text, intent=intent)
    parts = [part async for part in engine.handle(request)]
    report = await engine.ledger.report(SCOPE)
    return Outcome(parts, report, [row for row in report.recent if row.request_id == request.id])


async def until_checkpoint(parts: AsyncIterator[GeneratorPart]) -> Checkpoint:
    """Run a generator up to its checkpoint, then stop it, as a shutdown mid-job would."""
    try:
        async for part in parts:
            if isinstance(part, Checkpoint):
                return part
    finally:
        assert isinstance(parts, AsyncGenerator)
        await parts.aclose()
    raise AssertionError("the generator never yielded a checkpoint")


def engine_with(
    ledger: Ledger, generator: Generator | None = None, *, classifier: Classifier | None = None
) -> Engine:
    """The demo engine with ``generator`` standing in for its intent."""
    generators = dict(demo_engine(ledger).generators)
    if generator is not None:
        generators[generator.intent] = generator
    return Engine(ledger=ledger, generators=generators, classifier=classifier)


@pytest.fixture
def clock() -> InstantClock:
    return InstantClock()


@pytest.fixture
async def fake_udio() -> AsyncIterator[FakeUdio]:
    fake = FakeUdio()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()


@pytest.fixture
async def fake_suno() -> AsyncIterator[FakeSunoApi]:
    fake = FakeSunoApi()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()
