"""Token buckets on a fake clock: bursts go at once, the rate holds, the kept token serves the final edit."""

from __future__ import annotations

import itertools

import pytest

from adapters.discord.surface import PACE as DISCORD_PACE
from core.pacing import UNLIMITED, Buckets, Pace, TokenBucket
from tests.clock import FakeClock


def test_a_burst_goes_out_at_once_leaving_the_reserve() -> None:
    clock = FakeClock()
    bucket = TokenBucket(Pace(burst=5, per_second=1.0, reserve=1), clock=clock)
    for _ in range(4):
        assert bucket.ready_in(urgent=False) == 0
        bucket.take()
    assert bucket.ready_in(urgent=False) == pytest.approx(1.0)
    assert bucket.ready_in(urgent=True) == 0, "the kept token is there for an urgent edit"
    bucket.take()
    assert bucket.ready_in(urgent=True) == pytest.approx(1.0)


async def test_the_sustained_rate_holds() -> None:
    clock = FakeClock()
    bucket = TokenBucket(Pace(burst=2, per_second=0.5, reserve=1), clock=clock)
    sent: list[float] = []
    while clock.now() < 60:
        wait = bucket.ready_in(urgent=False)
        if wait:
            await clock.advance(wait)
        bucket.take()
        sent.append(clock.now())
    assert sent[0] == 0.0
    assert [later - earlier for earlier, later in itertools.pairwise(sent)] == pytest.approx(
        [2.0] * (len(sent) - 1)
    )


async def test_the_final_edit_goes_as_soon_as_a_token_is_there() -> None:
    clock = FakeClock()
    bucket = TokenBucket(Pace(burst=2, per_second=1.0, reserve=1), clock=clock)
    bucket.take()  # a routine edit at 0
    await clock.advance(0.3)
    assert bucket.ready_in(urgent=False) == pytest.approx(0.7)
    assert bucket.ready_in(urgent=True) == 0  # not one interval after the last edit: now
    bucket.take()
    assert bucket.ready_in(urgent=True) == pytest.approx(0.7), "and otherwise as soon as one refills"
    await clock.advance(0.7)
    assert bucket.ready_in(urgent=True) == 0


async def test_discords_pace_never_makes_more_than_5_edits_in_5_seconds() -> None:
    """Edits as fast as allowed, routine and urgent mixed, never meet the per-channel limit."""
    clock = FakeClock()
    bucket = TokenBucket(DISCORD_PACE, clock=clock)
    sent: list[float] = []
    for number in range(40):
        urgent = number % 3 == 0
        wait = bucket.ready_in(urgent=urgent)
        if wait:
            await clock.advance(wait)
        bucket.take()
        sent.append(clock.now())
    assert max(sum(1 for t in sent if start <= t < start + 5.0 - 1e-9) for start in sent) <= 5


def test_unlimited_never_waits() -> None:
    bucket = TokenBucket(UNLIMITED, clock=FakeClock())
    for _ in range(1000):
        assert bucket.ready_in(urgent=False) == 0
        bucket.take()


async def test_buckets_are_shared_per_destination_and_idle_ones_dropped() -> None:
    clock = FakeClock()
    buckets = Buckets(Pace(burst=2, per_second=1.0), clock=clock)
    first = buckets.of("channel-1")
    first.take()
    assert buckets.of("channel-1") is first
    buckets.of("channel-2").take()
    assert len(buckets) == 2
    await clock.advance(1.0)  # both full again
    buckets.of("channel-3")
    assert len(buckets) == 1


def test_a_pace_must_leave_a_token_beyond_its_reserve() -> None:
    with pytest.raises(ValueError, match="reserve"):
        Pace(burst=1, per_second=1.0, reserve=1)
