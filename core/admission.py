"""Admission control: caps on running jobs (global and per scope), a bounded FIFO queue, a
per-user request rate, and turns through the start, so a flood degrades into clear messages
instead of unbounded work."""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from core.clock import Clock, SystemClock
from core.parts import Scope, Status

START_WIDTH = 8
"""Requests making their way to a provider call at the same time (see ``StartTurn``)."""


class QueueFull(Exception):
    """Too many requests are already waiting."""


@dataclass(eq=False)
class _Waiter:
    scope: Scope
    admitted: asyncio.Event = field(default_factory=asyncio.Event)


class Admission:
    """Decides when a job may start. Use ``limit_rate`` first, then ``async with slot(scope)``."""

    def __init__(
        self,
        *,
        max_jobs: int,
        max_jobs_per_scope: int,
        max_queue: int,
        user_requests_per_minute: int,
        clock: Clock | None = None,
    ) -> None:
        self.max_jobs = max_jobs
        self.max_jobs_per_scope = max_jobs_per_scope
        self.max_queue = max_queue
        self.user_requests_per_minute = user_requests_per_minute
        self._clock = clock or SystemClock()
        self._running: dict[Scope, int] = {}
        self._total = 0
        self._waiting: list[_Waiter] = []
        self._changed = asyncio.Event()
        self._recent: dict[str, deque[float]] = {}

    @property
    def running(self) -> int:
        return self._total

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def limit_rate(self, user: str) -> float | None:
        """Record a request by ``user``; return seconds to wait if over the per-minute limit."""
        if self.user_requests_per_minute <= 0:
            return None
        now = self._clock.now()
        recent = self._recent.setdefault(user, deque())
        while recent and recent[0] <= now - 60:
            recent.popleft()
        if len(recent) >= self.user_requests_per_minute:
            return max(1.0, math.ceil(recent[0] + 60 - now))
        recent.append(now)
        if len(self._recent) > 10_000:  # keep memory bounded under a flood of distinct users
            self._forget_idle(now)
        return None

    def _forget_idle(self, now: float) -> None:
        for user in [user for user, times in self._recent.items() if not times or times[-1] <= now - 60]:
            del self._recent[user]

    def position(self, waiter: object) -> int:
        """1-based place in the queue (0 once admitted)."""
        for index, queued in enumerate(self._waiting):
            if queued is waiter:
                return index + 1
        return 0

    @asynccontextmanager
    async def slot(self, scope: Scope) -> AsyncIterator[_Waiter]:
        """Hold a running slot for ``scope``. Yields at once with a waiter whose ``admitted`` event
        is set when the job may start; ``position(waiter)`` says where it stands meanwhile."""
        if len(self._waiting) >= self.max_queue and not self._fits(scope):
            raise QueueFull
        waiter = _Waiter(scope)
        self._waiting.append(waiter)
        self._admit()
        try:
            yield waiter
        finally:
            if waiter.admitted.is_set():
                self._total -= 1
                self._running[scope] -= 1
                if not self._running[scope]:
                    del self._running[scope]
            else:
                self._waiting.remove(waiter)
            self._admit()

    async def wait_for_change(self) -> None:
        """Return when the queue moves (someone admitted or gone)."""
        await self._changed.wait()

    def _fits(self, scope: Scope) -> bool:
        return self._total < self.max_jobs and self._running.get(scope, 0) < self.max_jobs_per_scope

    def _admit(self) -> None:
        for waiter in list(self._waiting):
            if self._fits(waiter.scope):
                self._waiting.remove(waiter)
                self._total += 1
                self._running[waiter.scope] = self._running.get(waiter.scope, 0) + 1
                waiter.admitted.set()
        # Wake everyone watching positions, then re-arm for the next change.
        self._changed.set()
        self._changed = asyncio.Event()


@asynccontextmanager
async def admitted(admission: Admission | None, scope: Scope) -> AsyncIterator[AsyncIterator[Status]]:
    """A running slot for a job of ``scope``; iterate the yielded stream for queue progress until
    it starts. Without admission control the stream is empty and the job starts at once."""
    if admission is None:
        yield _no_statuses()
        return
    async with admission.slot(scope) as waiter:

        async def queued() -> AsyncIterator[Status]:
            shown = ""
            while not waiter.admitted.is_set():
                ahead = admission.position(waiter) - 1
                status = "Queued: waiting for a free slot" + (
                    f" ({ahead} ahead of you)…" if ahead > 0 else "…"
                )
                if status != shown:
                    shown = status
                    yield Status(status)
                    # The slot may have come while the reader was busy with that status (an edit
                    # waiting its turn); waiting now would be for a change that may never come.
                    if waiter.admitted.is_set():
                        break
                await admission.wait_for_change()

        yield queued()


async def _no_statuses() -> AsyncIterator[Status]:
    return
    yield


class StartTurn:
    """A request's turn through its start: everything up to the provider call (or the first part
    it shows). ``START_WIDTH`` requests take their turns at once, in arrival order; the rest wait.

    The bot's share of time to first text is mostly CPU spent before the provider hears of a
    request. Run round-robin, a burst of requests all reach their providers at the end of the
    whole burst's work; taken in turns, the first ones go out first and the median halves.
    """

    def __init__(self, slots: asyncio.Semaphore) -> None:
        self._slots = slots
        self._held = False

    async def take(self) -> None:
        await self._slots.acquire()
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._slots.release()
