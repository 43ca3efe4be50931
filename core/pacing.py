"""Token buckets that pace a renderer's edits to a platform's limit, keeping a token for the last edit."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from core.clock import Clock


@dataclass(frozen=True, slots=True, kw_only=True)
class Pace:
    """How often one destination (a Discord channel, a Slack message) may be edited.

    A bucket holds at most ``burst`` tokens and refills at ``per_second``; every edit takes one,
    and a new message takes one if it is there (it never waits, but the edits after it do).
    Routine edits (streamed text, a changed progress line) leave ``reserve`` tokens in the bucket,
    so the edits someone is waiting for (the first text replacing a progress line, the final
    text) can always go at once. Shape it so ``burst + per_second × window`` stays within the
    platform's limit per window: then no run of edits, however timed, meets a 429.
    """

    burst: int
    per_second: float
    reserve: int = 1

    def __post_init__(self) -> None:
        if self.burst < 1 or self.per_second <= 0 or not 0 <= self.reserve < self.burst:
            raise ValueError(f"a pace needs burst ≥ 1, a positive rate and 0 ≤ reserve < burst: {self!r}")


_ROUNDING = 1e-9

UNLIMITED = Pace(burst=1, per_second=math.inf, reserve=0)
"""No limit (a terminal): every edit may go at once."""


class Gate(Protocol):
    """A limit shared by every destination of one client (Discord's global requests per second).

    ``turn`` returns when the next call may go; ``urgent`` calls are served before the others.
    """

    async def turn(self, *, urgent: bool = False) -> None: ...


class TokenBucket:
    """The edits still allowed to one destination, refilled continuously as ``clock`` runs."""

    def __init__(self, pace: Pace, *, clock: Clock) -> None:
        self.pace = pace
        self._clock = clock
        self._tokens = float(pace.burst)
        self._updated = clock.now()

    def ready_in(self, *, urgent: bool) -> float:
        """Seconds until an edit may take a token (0: now); routine ones leave the reserve."""
        if math.isinf(self.pace.per_second):
            return 0.0
        needed = 1.0 if urgent else 1.0 + self.pace.reserve
        missing = needed - self._refilled()
        # Refills are float sums: a token due now may come out a hair short of whole.
        return 0.0 if missing <= _ROUNDING else missing / self.pace.per_second

    def take(self) -> None:
        """Spend a token; callers wait out ``ready_in`` first."""
        if not math.isinf(self.pace.per_second):
            self._tokens = self._refilled() - 1.0

    def spend(self) -> None:
        """Spend a token if one is there, without waiting (a new message, which must not wait)."""
        if not math.isinf(self.pace.per_second):
            self._tokens = max(0.0, self._refilled() - 1.0)

    @property
    def full(self) -> bool:
        return math.isinf(self.pace.per_second) or self._refilled() >= self.pace.burst

    def _refilled(self) -> float:
        now = self._clock.now()
        refill = (now - self._updated) * self.pace.per_second
        self._tokens = min(float(self.pace.burst), self._tokens + refill)
        self._updated = now
        return self._tokens


class Buckets:
    """One bucket per destination, shared by every answer written there (Discord limits a channel,
    not a message). Idle buckets, full again, are dropped as new destinations come."""

    def __init__(self, pace: Pace, *, clock: Clock) -> None:
        self._pace = pace
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def of(self, destination: str) -> TokenBucket:
        bucket = self._buckets.get(destination)
        if bucket is None:
            self._buckets = {key: kept for key, kept in self._buckets.items() if not kept.full}
            bucket = self._buckets[destination] = TokenBucket(self._pace, clock=self._clock)
        return bucket

    def __len__(self) -> int:
        return len(self._buckets)
