"""One edit budget per client: many answers streaming at once take turns under Discord's global limit."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import discord
import pytest

from adapters.discord.surface import DiscordSurface, EditBudget
from core.clock import FakeClock, settle
from core.render import MessageState, View

SURFACES = 10
PER_SECOND = 20.0


@dataclass
class RecordedMessage:
    """Stands in for a ``discord.Message``: records when each edit reached it, in virtual time."""

    id: int
    clock: FakeClock
    edits: list[float] = field(default_factory=list)

    async def edit(self, **_: Any) -> RecordedMessage:
        self.edits.append(self.clock.now())
        return self


@dataclass
class RecordedOutlet:
    clock: FakeClock
    ids: itertools.count[int]
    file_limit: int = 8_000_000
    messages: list[RecordedMessage] = field(default_factory=list)

    async def send(
        self,
        *,
        embed: discord.Embed | None = None,
        files: Sequence[discord.File] = (),
        content: str | None = None,
    ) -> Any:
        message = RecordedMessage(next(self.ids), self.clock)
        self.messages.append(message)
        return message

    async def refuse(self, embed: discord.Embed) -> None:
        raise AssertionError("nothing is refused here")


async def stream_everywhere(clock: FakeClock, budget: EditBudget | None) -> list[float]:
    """Ten answers each post at t=0 and then edit three times as fast as their own pacing allows;
    return the virtual time of every edit, in order."""
    ids = itertools.count(1)
    outlets = [RecordedOutlet(clock, ids) for _ in range(SURFACES)]
    surfaces = [
        DiscordSurface(outlet, clock=clock, edit_interval=1.0, uploading_notice_bytes=1, edit_budget=budget)
        for outlet in outlets
    ]

    async def answer(surface: DiscordSurface) -> None:
        await surface.post(View("Hello", MessageState.STREAMING))
        for text in ("Hello there", "Hello there, you"):
            await surface.edit(View(text, MessageState.STREAMING))
        await surface.edit(View("Hello there, you.", MessageState.DONE))

    answers = asyncio.gather(*(answer(surface) for surface in surfaces))
    await settle()
    for _ in range(400):
        await clock.advance(0.01)
    await answers
    for outlet in outlets:
        [message] = outlet.messages
        assert all(later - earlier >= 1.0 - 1e-9 for earlier, later in itertools.pairwise(message.edits))
    return sorted(edit for outlet in outlets for edit in outlet.messages[0].edits)


async def test_edits_of_many_answers_are_spaced_by_the_shared_budget() -> None:
    clock = FakeClock()
    edits = await stream_everywhere(clock, EditBudget(per_second=PER_SECOND, clock=clock))

    assert len(edits) == SURFACES * 3
    gaps = [later - earlier for earlier, later in itertools.pairwise(edits)]
    assert min(gaps) == pytest.approx(1 / PER_SECOND)
    assert edits[0] == 1.0  # the first edit waits only for its own message's interval
    # Each round of ten edits takes half a second; the next round starts a second after a message's last edit.
    assert edits[SURFACES - 1] == pytest.approx(1.0 + (SURFACES - 1) / PER_SECOND)
    assert edits[-1] == pytest.approx(3.0 + (SURFACES - 1) / PER_SECOND)


async def test_without_a_budget_every_answer_edits_at_the_same_moment() -> None:
    clock = FakeClock()
    edits = await stream_everywhere(clock, None)

    assert edits == [1.0] * SURFACES + [2.0] * SURFACES + [3.0] * SURFACES


async def test_turns_are_handed_out_in_order_and_an_idle_budget_does_not_hold_a_backlog() -> None:
    clock = FakeClock()
    budget = EditBudget(per_second=4.0, clock=clock)
    granted: list[tuple[int, float]] = []

    async def take(n: int) -> None:
        await budget.turn()
        granted.append((n, clock.now()))

    waiting = asyncio.gather(*(take(n) for n in range(3)))
    await settle()
    await clock.advance(1.0)
    await waiting
    assert granted == [(0, 0.0), (1, 0.25), (2, 0.5)]

    await clock.advance(10.0)  # a quiet spell earns no burst: the next turn is now, the one after spaced
    await asyncio.gather(take(3), take(4), clock.advance(0.25))
    assert granted[3:] == [(3, 11.0), (4, 11.25)]
