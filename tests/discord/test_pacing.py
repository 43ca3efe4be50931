"""One request pacer per client: many answers streaming at once take turns under Discord's global limit."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import discord
import pytest

from adapters.discord.pacing import RequestPacer
from adapters.discord.surface import PACE, DiscordSurface
from core.pacing import Buckets
from core.parts import Part, TextDelta
from core.render import render
from tests.clock import FakeClock, settle

SURFACES = 10
LIMIT = 8


@dataclass
class RecordedMessage:
    """Stands in for a ``discord.Message``: records when each edit reached it, in virtual time."""

    id: int
    clock: FakeClock
    posted: float
    edits: list[float] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)

    async def edit(self, *, embed: discord.Embed, **_: Any) -> RecordedMessage:
        self.edits.append(self.clock.now())
        self.texts.append(embed.description or "")
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
        view: discord.ui.View | None = None,
    ) -> Any:
        message = RecordedMessage(next(self.ids), self.clock, posted=self.clock.now())
        self.messages.append(message)
        return message

    async def refuse(self, embed: discord.Embed) -> None:
        raise AssertionError("nothing is refused here")


async def answer_parts(clock: FakeClock) -> AsyncIterator[Part]:
    """Text for 2 s: posted at once, one edit when the channel's bucket allows, then the final."""
    for pause, text in ((0.0, "Hello"), (0.5, " there"), (0.5, ", you"), (1.0, ".")):
        await clock.sleep(pause)
        yield TextDelta(text)


async def stream_everywhere(clock: FakeClock, pacer: RequestPacer | None) -> list[RecordedMessage]:
    """Ten answers, each in its own channel, rendered at once through the client's pacing; return
    their messages, which know when they were posted and edited (virtual time)."""
    ids = itertools.count(1)
    outlets = [RecordedOutlet(clock, ids) for _ in range(SURFACES)]
    edits = Buckets(PACE, clock=clock)

    async def answer(channel: int, outlet: RecordedOutlet) -> None:
        surface = DiscordSurface(outlet, clock=clock, uploading_notice_bytes=1)
        await render(answer_parts(clock), surface, clock=clock, bucket=edits.of(str(channel)), gate=pacer)

    answers = asyncio.gather(*(answer(channel, outlet) for channel, outlet in enumerate(outlets)))
    await settle()
    for _ in range(600):
        await clock.advance(0.01)
    await answers
    messages = [message for outlet in outlets for message in outlet.messages]
    for message in messages:
        assert message.texts[-1] == "Hello there, you."
    return messages


def calls_of(messages: list[RecordedMessage]) -> list[float]:
    return sorted([message.posted for message in messages] + [t for m in messages for t in m.edits])


async def test_many_answers_stay_under_the_limit_in_every_window() -> None:
    clock = FakeClock()
    messages = await stream_everywhere(clock, RequestPacer(clock=clock, limit=LIMIT, window_s=1.0))

    assert len(messages) == SURFACES
    calls = calls_of(messages)
    assert len(calls) == SURFACES * 3
    assert max(sum(1 for t in calls if start <= t < start + 1.0 - 1e-9) for start in calls) <= LIMIT
    # A burst up to the limit goes out at once: the first eight answers show their text at t=0.
    assert sorted(message.posted for message in messages)[:LIMIT] == [0.0] * LIMIT


async def test_without_a_pacer_every_answer_writes_at_the_same_moment() -> None:
    clock = FakeClock()
    calls = calls_of(await stream_everywhere(clock, None))

    # Posted at once; the changes coalesced into one edit when the channel's bucket has a token
    # beyond the kept one; the final text sent as soon as the stream ends, from the kept token.
    edit_at = 1 / PACE.per_second
    assert calls == pytest.approx([0.0] * SURFACES + [edit_at] * SURFACES + [2.0] * SURFACES)


async def test_waiting_posts_go_before_waiting_edits_and_given_up_turns_are_skipped() -> None:
    clock = FakeClock()
    pacer = RequestPacer(clock=clock, limit=2, window_s=1.0)
    granted: list[tuple[str, float]] = []

    async def take(name: str, *, urgent: bool) -> None:
        await pacer.turn(urgent=urgent)
        granted.append((name, clock.now()))

    await take("first", urgent=False)
    await take("second", urgent=False)  # the window is full now
    edit = asyncio.create_task(take("edit", urgent=False))
    abandoned = asyncio.create_task(take("abandoned", urgent=True))
    await settle()
    post = asyncio.create_task(take("post", urgent=True))
    await settle()
    abandoned.cancel()
    await clock.advance(1.0)
    await clock.advance(1.0)
    await asyncio.gather(edit, post)

    assert granted == [("first", 0.0), ("second", 0.0), ("post", 1.0), ("edit", 1.0)]
    assert abandoned.cancelled()
