"""The answers a surface is delivering right now, so that stopping lets them post their last words."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Iterator
from typing import Any

FINAL_WRITES_S = 5.0
"""At shutdown, how long answers get for their last platform calls once the engine has ended their
streams (``Engine.shutdown`` ends every stream first), before what is left is cancelled."""


class Inflight:
    """A set of answer tasks: tracked while they run, waited for (then cancelled) at shutdown."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    @contextlib.contextmanager
    def track(self) -> Iterator[None]:
        """Count the current task as an answer until the block ends."""
        task = asyncio.current_task()
        if task is None:
            yield
            return
        self._tasks.add(task)
        try:
            yield
        finally:
            self._tasks.discard(task)

    def spawn(self, work: Coroutine[Any, Any, None], *, name: str | None = None) -> asyncio.Task[None]:
        """Run ``work`` as a tracked answer task."""
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def join(self) -> None:
        """Wait until every answer started so far (and any started meanwhile) has finished."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def finish(self, within: float = FINAL_WRITES_S) -> None:
        """Give running answers ``within`` seconds to end, then cancel the rest and wait for them.
        (Real time, not an injected clock: it only bounds platform calls that hang.)"""
        current = asyncio.current_task()
        running = {task for task in self._tasks if task is not current}
        if not running:
            return
        _, late = await asyncio.wait(running, timeout=within)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
