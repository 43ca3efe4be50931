"""The one injectable clock: monotonic time and sleeps for pacing, wall time for stored rows."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """What every timed part of the bot reads, so tests can move time instead of sleeping."""

    def now(self) -> float:
        """Monotonic seconds, for intervals and deadlines."""
        ...

    async def sleep(self, seconds: float) -> None: ...

    def utc(self) -> datetime:
        """The wall-clock time (timezone-aware, UTC), for what is stored and when it expires."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def utc(self) -> datetime:
        return datetime.now(UTC)
