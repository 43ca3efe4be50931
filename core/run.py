"""One reserved job run to its end: queued, generated, delivered, then settled or refunded."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

from core import metrics
from core.admission import Admission, QueueFull, StartTurn, admitted
from core.breaker import CircuitBreaker
from core.errors import GenerationError, ModerationError, ProviderUnavailable
from core.jobs import JobRow, JobState, JobStore
from core.ledger import Hold, Ledger
from core.outcomes import WHAT, HoldNotReleased, failure, nothing_charged, release, settle
from core.parts import Audio, Checkpoint, GeneratorPart, Image, Intent, Media, Part, Request, TextDelta, Usage
from core.router import Route
from core.streams import closing_stream

log = logging.getLogger(__name__)
T = TypeVar("T")

RESTARTING = "I'm restarting, so I had to stop here. Nothing was charged; please ask again in a minute."
"""How a stream stopped by ``Engine.suspend`` ends when its work had no checkpoint to resume from."""


class Suspended(Exception):
    """A running job was stopped by ``Engine.suspend``."""


class Stopper:
    """Lets ``Engine.suspend`` stop one running job promptly without a task per part.

    The job runs in its consumer's task. While it waits on its generator (or its queue place),
    ``stop`` cancels that task, the way ``asyncio.timeout`` does, and ``step`` turns that one
    cancellation back into ``Suspended``. While the consumer is busy with a part the job
    yielded, nothing is cancelled: the next ``step`` raises ``Suspended`` instead.
    """

    def __init__(self, *, stopped: bool) -> None:
        self._task: asyncio.Task[object] | None = None
        self._stopped = stopped
        self._waiting = False
        self._cancelled = False

    def stop(self) -> None:
        self._stopped = True
        if self._waiting and not self._cancelled and self._task is not None:
            self._cancelled = True
            self._task.cancel()

    async def step(self, start: Callable[[], Awaitable[T]]) -> T:
        """Await ``start()``, unless the job was stopped before or while it waits."""
        self.enter()
        try:
            result = await start()
        except BaseException as error:
            self.interrupted(error)
            raise
        self.passed()
        return result

    # ``enter``, ``interrupted`` and ``passed`` are ``step`` taken apart, for the per-part loop,
    # where a coroutine per part would cost a tenth of the core's throughput.

    def enter(self) -> None:
        """About to wait: raise ``Suspended`` if stopped already, else become stoppable."""
        if self._stopped:
            raise Suspended
        self._task = asyncio.current_task()  # a consumer may read each part from another task
        self._waiting = True

    def interrupted(self, error: BaseException) -> None:
        """The wait raised ``error``: turn this job's own cancellation into ``Suspended``."""
        self._waiting = False
        # A generator may turn the cancellation into an error of its own: still ours.
        if self._cancelled and self._ours():
            raise Suspended from None

    def passed(self) -> None:
        """The wait returned; raise ``Suspended`` if a generator swallowed our cancellation."""
        self._waiting = False
        if self._cancelled and self._ours():
            raise Suspended

    def _ours(self) -> bool:
        """Whether this job's own cancellation arrived (and no one else's): then undo it."""
        if not self._cancelled or self._task is None:
            return False
        self._cancelled = False
        return self._task.uncancel() == 0


@dataclass(frozen=True, slots=True, kw_only=True)
class RunServices:
    """What every job run shares with its engine."""

    ledger: Ledger
    jobs: JobStore | None
    admission: Admission | None
    breakers: dict[Intent, CircuitBreaker]
    draining: asyncio.Event
    """Set once the engine stops taking requests (``drain``)."""
    suspending: asyncio.Event
    """Set by ``suspend``: running jobs end now."""
    running: set[Stopper] = field(default_factory=set)
    """The stoppers of the jobs running now, for ``Engine.suspend``."""


class JobRun:
    """One reserved job: ``stream`` yields its parts and always leaves the hold settled,
    refunded, or (for suspended work with a checkpoint) kept for the next start."""

    def __init__(
        self,
        services: RunServices,
        *,
        route: Route,
        request: Request,
        hold: Hold,
        received: float,
        generate: Callable[[], AsyncIterator[GeneratorPart]],
        turn: StartTurn,
    ) -> None:
        self._services = services
        self._route, self._request, self._hold = route, request, hold
        self._intent = route.intent
        self._received = received
        self._generate = generate
        self._turn = turn
        self._breaker = services.breakers[route.intent]
        self._actual: int | None = None
        self._started = time.monotonic()
        self._first_text = True
        self._checkpointed = route.source == "resumed"  # a resumed job already has its checkpoint
        self._row = JobRow(services.jobs, request, route, hold, exists=self._checkpointed)
        self._details: dict[str, object] = {
            "service": route.intent.value,
            "route": route.source,
            "reserved_micros": hold.amount,
        }
        self._stopper = Stopper(stopped=services.suspending.is_set())
        self._made = False
        """Whether the provider has delivered media to us: it has been paid."""
        self._undelivered: Media | None = None
        """Media handed to the consumer that it has not yet taken."""

    async def stream(self) -> AsyncIterator[Part]:
        """Queue, generate, record, deliver, then settle; each way out is a method below."""
        self._services.running.add(self._stopper)
        try:
            async with admitted(self._services.admission, self._hold.scope) as waiting:
                while (status := await self._stopper.step(partial(anext, waiting, None))) is not None:
                    await self._row.enter(JobState.QUEUED)
                    yield status
                await self._start()
                parts = self._generate()
                async with closing_stream(parts):
                    while True:
                        self._stopper.enter()
                        try:
                            part = await anext(parts, None)
                        except BaseException as error:
                            self._stopper.interrupted(error)
                            raise
                        self._stopper.passed()
                        if part is None:
                            break
                        if isinstance(part, Usage | Checkpoint):
                            await self._consume(part)
                            continue
                        if self._first_text and isinstance(part, TextDelta):
                            self._first_text = False
                            waited = time.monotonic() - self._received
                            metrics.TIME_TO_FIRST_TEXT.labels(self._intent.value).observe(waited)
                        if not isinstance(part, Image | Audio):
                            yield part
                            continue
                        self._made, self._undelivered = True, part
                        await self._advance(JobState.DELIVERING)
                        yield part
                        self._undelivered = None
                        await self._advance(JobState.DELIVERED)
        except Suspended:
            yield await self._suspended()
            return
        except QueueFull:
            yield await self._queue_full()
            return
        except GenerationError as error:
            yield await self._failed(error)
            return
        except BaseException as error:
            await self._interrupted(error)
            raise
        finally:
            self._services.running.discard(self._stopper)
        await self._done()

    async def _start(self) -> None:
        self._started = time.monotonic()
        # The turn covers the reservation, not the job row: the row's write still precedes the
        # provider call, but in a burst the next request need not wait for its round trip.
        self._turn.release()
        await self._row.enter(JobState.RUNNING)

    async def _consume(self, part: Usage | Checkpoint) -> None:
        """Take in what is for the core: the actual cost, or the checkpoint to resume from."""
        if isinstance(part, Usage):
            self._actual = (self._actual or 0) + part.cost
            return
        self._checkpointed = True
        if self._services.jobs is not None:
            await self._services.jobs.save_checkpoint(self._request.id, dict(part.data))

    async def _suspended(self) -> Part:
        if self._checkpointed and self._services.jobs is not None:
            # The provider keeps the job; the next start resumes it from the checkpoint.
            metrics.REQUESTS.labels(self._intent.value, "suspended").inc()
            log.info("job suspended for resumption after restart", extra=self._details)
            return TextDelta(
                f"⏸️ I'm restarting. {WHAT[self._intent].capitalize()} is still being made, "
                "and I'll post it here when I'm back."
            )
        released = await release(self._services.ledger, self._hold, note="stopped by a restart")
        await self._advance(JobState.REFUNDED, error="stopped by a restart")
        log.info("job stopped and refunded for a restart", extra=self._details)
        if released:
            return failure(self._intent, "suspended", RESTARTING)
        message = f"I'm restarting, so I had to stop here. {nothing_charged(self._hold, released=False)}"
        return failure(self._intent, "suspended", message + " Please ask again in a minute.")

    async def _queue_full(self) -> Part:
        self._breaker.record_other()
        released = await release(self._services.ledger, self._hold, note="queue full")
        await self._advance(JobState.REFUNDED, error="queue full")
        return failure(
            self._intent,
            "busy",
            "I'm very busy right now and my queue is full. Please try again in a minute. "
            + nothing_charged(self._hold, released=released),
        )

    async def _failed(self, error: GenerationError) -> Part:
        outcome = "moderated" if isinstance(error, ModerationError) else "failed"
        metrics.PROVIDER_ERRORS.labels(self._intent.value, type(error).__name__).inc()
        if isinstance(error, ProviderUnavailable):
            self._breaker.record_outage()
        else:
            self._breaker.record_other()
        if error.charge:
            await self._charge()
            await self._advance(JobState.FAILED, error=str(error))
            suffix = ""
        else:
            released = await release(self._services.ledger, self._hold, note=f"{outcome}: {error}"[:500])
            await self._advance(JobState.REFUNDED, error=str(error))
            suffix = " " + nothing_charged(self._hold, released=released)
        self._details |= {"status": outcome, "latency_ms": self._since_start()}
        log.warning("generation failed: %s", error, extra=self._details)
        return failure(self._intent, outcome, error.user_message + suffix)

    async def _interrupted(self, error: BaseException) -> None:
        """Crashes, cancellation and a consumer closing the stream early (delivery failed).
        Only work the provider never received is refunded."""
        self._breaker.record_other()
        if self._services.draining.is_set() and self._checkpointed and self._services.jobs is not None:
            # Shutting down mid-job: the provider keeps working and the next start resumes
            # from the checkpoint, so the hold stays and nothing is refunded.
            log.info("job left for resumption after restart", extra=self._details)
            return
        if self._checkpointed or self._made:
            await self._undeliverable(error)
            return
        if not await release(self._services.ledger, self._hold, note=f"interrupted: {error!r}"[:500]):
            if isinstance(error, Exception):  # a crash: the person is told, and told the truth
                raise HoldNotReleased(self._hold) from error
            return
        await self._advance(JobState.REFUNDED, error=f"interrupted: {error!r}")

    async def _undeliverable(self, error: BaseException) -> None:
        """The provider was paid (it has the job, or made the media) and then delivery failed:
        charge it, and keep what was made (or the checkpoint to fetch it) in the job row."""
        charged = await self._charge()
        note = f"delivery failed: {error!r}"
        if self._services.jobs is not None:
            await self._services.jobs.keep_undelivered(self._request.id, self._undelivered, error=note)
        self._details |= {"status": "undelivered", "cost_micros": charged, "latency_ms": self._since_start()}
        log.warning(
            "delivery failed after the provider was paid; charged and kept: %r", error, extra=self._details
        )

    async def _done(self) -> None:
        self._breaker.record_success()
        charged = await self._charge()
        await self._advance(JobState.DONE)
        metrics.REQUESTS.labels(self._intent.value, "done").inc()
        metrics.JOB_DURATION.labels(self._intent.value).observe(time.monotonic() - self._started)
        self._details |= {"status": "done", "cost_micros": charged, "latency_ms": self._since_start()}
        log.info("request done", extra=self._details)

    async def _charge(self) -> int:
        """Settle the hold at the reported cost (the estimate when none was reported)."""
        charged = self._actual if self._actual is not None else self._hold.amount
        await settle(self._services.ledger, self._hold, charged, self._intent)
        return charged

    async def _advance(self, state: JobState, *, error: str = "") -> None:
        """Move the job row on. Bookkeeping only: a failed write is logged, not the person's problem
        (a restart finds the row behind and settles it from the ledger)."""
        if self._services.jobs is None:
            return
        try:
            await self._services.jobs.advance(self._request.id, state, error=error)
        except Exception:
            log.exception("could not move job %s to %s", self._request.id, state.value)

    def _since_start(self) -> int:
        return round((time.monotonic() - self._started) * 1000)
