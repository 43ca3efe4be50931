"""Fixtures for the Discord tests: a fake Discord, a virtual clock, and the real client against both."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import discord
import pytest

from adapters.discord import DiscordConfig, StudioClient
from adapters.discord.runner import point_at
from core.attachments import AttachmentReader
from core.clock import Clock
from core.engine import Engine, Resumption
from core.ledger import BudgetReport, Ledger
from core.parts import Scope
from tests.conftest import demo_engine
from tests.fakes.fake_discord import FakeDiscord


class AutoClock:
    """Virtual time that jumps forward whenever something sleeps: waits cost nothing, yet every
    timestamp taken from it shows the spacing the code asked for."""

    def __init__(self) -> None:
        self._now = 0.0

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        self._now += max(0.0, seconds)
        await asyncio.sleep(0)


StartBot = Callable[..., Awaitable[asyncio.Task[None]]]
TOLERANCE = 1e-9
"""Virtual time is a float sum: a one-second gap may come out as 0.9999999999999991."""
EDIT_LIMIT, EDIT_WINDOW_S = 5, 5.0
"""Discord's edits per channel: 5 per 5 s."""


def within_edit_limit(times: Sequence[float]) -> bool:
    """No ``EDIT_WINDOW_S`` seconds hold more than ``EDIT_LIMIT`` of these edit times."""
    return all(
        sum(1 for t in times if start - TOLERANCE <= t < start + EDIT_WINDOW_S - TOLERANCE) <= EDIT_LIMIT
        for start in times
    )


@pytest.fixture
def clock() -> AutoClock:
    return AutoClock()


@pytest.fixture
async def fake(clock: AutoClock) -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(clock=clock.now) as server:
        yield server


@pytest.fixture
async def start_bot(
    fake: FakeDiscord, ledger: Ledger, clock: AutoClock, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[StartBot]:
    """``await start_bot(engine=..., **config)`` runs the adapter against the fake until the test ends
    (or until the test cancels the task it returns). ``bot_ledger``, ``bot_clock`` and
    ``resumptions`` replace the fixtures' ledger and clock and the default of no resumed jobs."""
    # run_discord repoints discord.py's class-level URLs; put them back afterwards.
    monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)
    monkeypatch.setattr(
        discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    )
    tasks: list[asyncio.Task[None]] = []

    async def start(
        engine: Engine | None = None,
        bot_ledger: Ledger | None = None,
        *,
        bot_clock: Clock | None = None,
        resumptions: Sequence[Resumption] = (),
        attachments: AttachmentReader | None = None,
        **overrides: Any,
    ) -> asyncio.Task[None]:
        config = DiscordConfig(
            token=fake.token,
            api_url=fake.api_url,
            gateway_url=fake.gateway_url,
            guild_ready_timeout=0.01,
            **overrides,
        )
        used_ledger = bot_ledger or ledger
        # What run_discord does, keeping hold of the client to wait until it is ready.
        point_at(config)
        client = StudioClient(
            config,
            engine=engine or demo_engine(used_ledger),
            ledger=used_ledger,
            clock=bot_clock or clock,
            resumptions=resumptions,
            attachments=attachments,
        )

        async def run() -> None:
            async with client:
                await client.start(config.token)

        task = asyncio.create_task(run())
        tasks.append(task)
        ready = asyncio.create_task(client.wait_until_ready())
        await asyncio.wait([task, ready], timeout=10, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if task.done():
            task.result()
        assert client.is_ready(), "the client never became ready"
        return task

    yield start
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def settled_report(ledger: Ledger, scope: Scope, *, within: float = 10.0) -> BudgetReport:
    """The scope's report once nothing is held any more (the engine settles after the last part)."""
    deadline = time.monotonic() + within
    while True:
        report = await ledger.report(scope)
        if report.held == 0 and report.recent and all(row.status != "held" for row in report.recent):
            return report
        if time.monotonic() > deadline:
            raise AssertionError(f"{scope} still has money held: {report}")
        await asyncio.sleep(0.005)
