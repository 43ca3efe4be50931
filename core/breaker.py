"""A circuit breaker per service: after repeated provider outages, answer at once for a while
instead of piling up requests that will fail anyway."""

from __future__ import annotations

from core.clock import Clock, SystemClock


class CircuitBreaker:
    """Closed → open after ``threshold`` consecutive outages → half-open after ``cooldown_s``
    (one trial request) → closed on success, open again on failure."""

    def __init__(self, *, threshold: int = 5, cooldown_s: float = 30.0, clock: Clock | None = None) -> None:
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self._clock = clock or SystemClock()
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_running = False

    def retry_after(self) -> float | None:
        """``None`` if a request may go ahead now (and claims the trial when half-open);
        otherwise seconds until the breaker will let one through."""
        if self._opened_at is None:
            return None
        remaining = self._opened_at + self.cooldown_s - self._clock.now()
        if remaining > 0:
            return remaining
        if self._trial_running:
            return self.cooldown_s
        self._trial_running = True
        return None

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._trial_running = False

    def record_outage(self) -> None:
        self._failures += 1
        self._trial_running = False
        if self._opened_at is not None or self._failures >= self.threshold:
            self._opened_at = self._clock.now()

    def record_other(self) -> None:
        """A failure that says nothing about the provider's health (moderation, a bad prompt)."""
        self._trial_running = False
