"""One pace for every REST call the answers of a client make, so together they stay under
Discord's global limit instead of finding it through 429s."""

from __future__ import annotations

import asyncio
from collections import deque

from core.clock import Clock

GLOBAL_LIMIT = 48
"""Calls per ``WINDOW_S`` for all answers of one bot. Discord allows 50 a second (interaction
responses are not counted); two are left for the bot's few calls outside its answers."""
WINDOW_S = 1.1
"""A second, and a margin: calls reach Discord some milliseconds after they take their turn here,
not all equally late, so a window that is exactly a second here can hold 51 there."""


def global_share(shard_ids: tuple[int, ...], shard_count: int | None) -> int:
    """This process's part of ``GLOBAL_LIMIT``: Discord counts it per bot, across all its shards,
    so processes running some of the shards split it by their number of shards (at least 1)."""
    if not shard_ids or not shard_count:
        return GLOBAL_LIMIT  # this process runs every shard
    return max(1, GLOBAL_LIMIT * len(shard_ids) // shard_count)


class RequestPacer:
    """Turns for REST calls: at most ``limit`` in any ``window_s``, new messages before edits.

    The renderer paces each channel's edits, but a hundred answers streaming at once would still write
    about a hundred times a second, twice the global limit, which discord.py learns of only from
    429s (and Discord counts those towards banning a bot's address). Here every call takes a turn
    first (the renderer asks, as a ``core.pacing.Gate``, once its channel's bucket allows). A
    burst of up to ``limit`` calls goes out at once, so the first texts of many answers are not
    held back; past that, urgent calls (new messages, first and final texts) go before routine
    edits (an edit that waits coalesces with the next one, a post that waits keeps someone
    looking at nothing).
    """

    def __init__(self, *, clock: Clock, limit: int = GLOBAL_LIMIT, window_s: float = WINDOW_S) -> None:
        self._clock = clock
        self._limit = limit
        self._window_s = window_s
        self._sent: deque[float] = deque()
        self._waiting: dict[bool, deque[asyncio.Future[None]]] = {True: deque(), False: deque()}
        self._dispatcher: asyncio.Task[None] | None = None

    async def turn(self, *, urgent: bool = False) -> None:
        """Wait for a turn; ``urgent`` ones (new messages) are served before the others."""
        if self._dispatcher is None and self._free_in() <= 0:
            self._sent.append(self._clock.now())
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[urgent].append(future)
        if self._dispatcher is None:
            self._dispatcher = asyncio.create_task(self._dispatch(), name="discord request pacer")
        await future

    def _free_in(self) -> float:
        """Seconds until a call may go out (0 or less: now)."""
        now = self._clock.now()
        while self._sent and self._sent[0] <= now - self._window_s:
            self._sent.popleft()
        if len(self._sent) < self._limit:
            return 0.0
        return self._sent[0] + self._window_s - now

    async def _dispatch(self) -> None:
        try:
            while (waiter := self._next_waiter()) is not None:
                wait = self._free_in()
                if wait > 0:
                    await self._clock.sleep(wait)
                    continue  # someone more urgent may have come meanwhile
                self._pop(waiter)
                self._sent.append(self._clock.now())
                waiter.set_result(None)
        finally:
            self._dispatcher = None

    def _next_waiter(self) -> asyncio.Future[None] | None:
        for urgent in (True, False):
            queue = self._waiting[urgent]
            while queue and queue[0].done():  # given up (cancelled) while waiting
                queue.popleft()
            if queue:
                return queue[0]
        return None

    def _pop(self, waiter: asyncio.Future[None]) -> None:
        for queue in self._waiting.values():
            if queue and queue[0] is waiter:
                queue.popleft()
                return
