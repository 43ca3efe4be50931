"""A clock for tests: time moves only when the test says so, and sleepers wake in order."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

DEFAULT_UTC_START = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


class FakeClock:
    """Time moves only when a test calls ``advance``; sleepers wake in deadline order. Wall time
    (``utc``) starts at ``utc_start`` and moves with it."""

    def __init__(self, start: float = 0.0, *, utc_start: datetime = DEFAULT_UTC_START) -> None:
        self._start = start
        self._now = start
        self._utc_start = utc_start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._counter = 0

    def now(self) -> float:
        return self._now

    def utc(self) -> datetime:
        return self._utc_start + timedelta(seconds=self._now - self._start)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._counter += 1
        self._sleepers.append((self._now + seconds, self._counter, future))
        self._sleepers.sort(key=lambda sleeper: sleeper[:2])
        await future

    @property
    def sleepers(self) -> int:
        return sum(1 for *_, future in self._sleepers if not future.done())

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking each sleeper due and letting it run before the next wakes."""
        target = self._now + seconds
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, future = self._sleepers.pop(0)
            self._now = max(self._now, deadline)
            if not future.done():
                future.set_result(None)
            await settle()
        self._now = target
        await settle()


async def settle(rounds: int = 20) -> None:
    """Give every ready task a chance to run."""
    for _ in range(rounds):
        await asyncio.sleep(0)
