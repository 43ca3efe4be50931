"""``Engine.handle``: route a request, reserve its budget, run the generator, settle or refund."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from functools import partial
from typing import TypeVar

from core import metrics
from core.admission import Admission, QueueFull
from core.breaker import CircuitBreaker
from core.commands import MAX_PROMPT_CHARS, command_for, usage_hint
from core.context import current_request
from core.conversations import ConversationStore, EventKind
from core.errors import GenerationError, ModerationError, ProviderUnavailable
from core.generator import Generator, Resumable
from core.history import describe_media
from core.jobs import JobState, JobStore
from core.ledger import Hold, Ledger, Refusal
from core.money import MICROS_PER_USD, format_usd
from core.parts import (
    Audio,
    Checkpoint,
    Failure,
    GeneratorPart,
    Image,
    Intent,
    Part,
    Request,
    Status,
    TextDelta,
    Usage,
)
from core.router import Classifier, Route, route_by_rules, route_follow_up

log = logging.getLogger(__name__)

ROUTER_SERVICE = "router"
HISTORY_EVENTS = 100
"""Events of a conversation loaded per request; generators trim them further to a token budget."""
START_WIDTH = 8
"""Requests making their way to a provider call at the same time (see ``_Turn``)."""
OPTIONAL_INTENTS = frozenset({Intent.SUMMARY})
"""Intents an engine may lack a generator for; requests for them are told it isn't available."""
T = TypeVar("T")

_WHAT: dict[Intent, str] = {
    Intent.IMAGE: "an image",
    Intent.SONG: "a song",
    Intent.RESEARCH: "a research paper",
    Intent.CHAT: "a chat answer",
    Intent.SUMMARY: "a summary",
}


class _Suspended(Exception):
    """A checkpointed job was stopped by ``Engine.suspend``."""


@dataclass(frozen=True, slots=True)
class Resumption:
    """A job from before a restart, ready to be rendered at ``request.destination``."""

    request: Request
    transaction_id: int
    parts: AsyncIterator[Part]


class Engine:
    """The platform-neutral heart of the bot. Adapters call ``handle`` and render its parts."""

    def __init__(
        self,
        *,
        ledger: Ledger,
        generators: Mapping[Intent, Generator],
        classifier: Classifier | None = None,
        admission: Admission | None = None,
        breakers: Mapping[Intent, CircuitBreaker] | None = None,
        jobs: JobStore | None = None,
        conversations: ConversationStore | None = None,
        start_width: int = START_WIDTH,
    ) -> None:
        missing = set(Intent) - set(generators) - OPTIONAL_INTENTS
        if missing:
            raise ValueError(f"no generator for {sorted(missing)}")
        self.ledger = ledger
        self.generators = dict(generators)
        self.classifier = classifier
        self.admission = admission
        self.breakers = dict(breakers) if breakers else {intent: CircuitBreaker() for intent in Intent}
        self.jobs = jobs
        self.conversations = conversations
        """Where requests with a ``conversation`` find their history and are remembered."""
        self._active = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._draining = False
        self._suspending = asyncio.Event()
        self._starting = asyncio.Semaphore(start_width)

    @property
    def active(self) -> int:
        """Requests being handled right now."""
        return self._active

    def suspend(self) -> None:
        """End every running job that has a checkpoint: its stream closes with a notice, its hold
        and job row stay, and ``resume_unfinished`` picks it up at the next start. Use after
        ``drain`` ran out of time, before cancelling what is left (which refunds)."""
        self._draining = True
        self._suspending.set()

    async def drain(self, grace_s: float) -> bool:
        """Refuse new requests and wait up to ``grace_s`` for running ones to finish.
        Returns whether everything finished; the caller cancels what is left (which refunds)."""
        self._draining = True
        try:
            async with asyncio.timeout(grace_s):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    def handle(self, request: Request) -> AsyncIterator[Part]:
        """Stream the answer to ``request``. Never raises (except cancellation): every problem
        becomes a ``Failure`` part, and whatever was reserved and not spent is refunded."""
        turn = _Turn(self._starting)
        return self._tracked(request, self._handle(request, turn), turn)

    async def _tracked(
        self, request: Request, parts: AsyncIterator[Part], turn: _Turn
    ) -> AsyncIterator[Part]:
        """Count the request as active (for ``drain``), tag its logs, and turn crashes into a Failure."""
        current_request.set(request)
        if self._draining:
            await _close(parts)
            yield _failure(
                request.intent,
                "busy",
                "I'm restarting right now. Please ask again in a minute. Nothing was charged.",
            )
            return
        self._active += 1
        self._idle.clear()
        consumer_left = False
        try:
            await turn.take()
            async with closing_stream(parts):
                async for part in parts:
                    turn.release()
                    try:
                        yield part
                    except GeneratorExit:
                        consumer_left = True
                        raise
        except Exception:
            log.exception("request failed unexpectedly")
            if not consumer_left:  # nobody is listening any more, and a closing generator can't yield
                yield _failure(
                    request.intent,
                    "failed",
                    f"Something went wrong on my side (ref `{request.id}`). Nothing was charged.",
                )
        finally:
            turn.release()
            self._active -= 1
            if not self._active:
                self._idle.set()

    async def _handle(self, request: Request, turn: _Turn) -> AsyncIterator[Part]:
        received = time.monotonic()
        text = request.text.strip()
        if not text and request.intent is not Intent.SUMMARY:
            yield _failure(request.intent, "invalid", usage_hint(request.intent))
            return
        if len(text) > MAX_PROMPT_CHARS:
            yield _failure(
                request.intent,
                "invalid",
                f"That prompt is {len(text):,} characters; the limit is {MAX_PROMPT_CHARS:,}. "
                "Please shorten it. Nothing was charged.",
            )
            return
        if self.admission is not None:
            wait = self.admission.limit_rate(f"{request.scope}:{request.user}")
            if wait is not None:
                yield _failure(
                    request.intent,
                    "rate_limited",
                    f"You're sending requests faster than {self.admission.user_requests_per_minute} a "
                    f"minute. Try again in {wait:.0f} s. Nothing was charged.",
                )
                return
        request = await self._with_history(request)
        route = await self._route(request, text, turn)
        work = _single(route) if isinstance(route, Failure) else self._work(request, route, received, turn)
        remembered = self._remembered(request, route, work, question=text)
        async with closing_stream(remembered):
            async for part in remembered:
                yield part

    async def _remembered(
        self, request: Request, route: Route | Failure, work: AsyncIterator[Part], *, question: str | None
    ) -> AsyncIterator[Part]:
        """Pass ``work`` through, recording the question (unless None: already stored) and the
        answer in the request's conversation, when it has one."""
        memory = _Memory.of(self.conversations, request, route)
        if memory is None:
            async with closing_stream(work):
                async for part in work:
                    yield part
            return
        # Written while the work starts rather than before it: the question is not needed to
        # answer it, and with many requests at once every write ahead of the provider call queues
        # behind everyone else's. The answer is recorded after it, so the order holds.
        asked = asyncio.ensure_future(memory.remember_question(question)) if question is not None else None
        try:
            async with closing_stream(work):
                async for part in work:
                    memory.see(part)
                    yield part
        finally:
            if asked is not None:
                await asked
            await memory.remember_answer()

    async def _with_history(self, request: Request) -> Request:
        """The request with its conversation's earlier turns, when it belongs to one."""
        if self.conversations is None or request.conversation is None:
            return request
        try:
            history = await self.conversations.history(request.conversation, limit=HISTORY_EVENTS)
        except Exception:
            log.exception("could not load the conversation's history; answering without it")
            return request
        return replace(request, history=tuple(history))

    async def _work(
        self, request: Request, route: Route, received: float, turn: _Turn
    ) -> AsyncIterator[Part]:
        """Reserve and run the routed work, or say why it can't run."""
        if route.intent is Intent.SUMMARY:
            unavailable = self._cannot_summarize(request)
            if unavailable is not None:
                yield _failure(route.intent, "invalid", unavailable)
                return
        paused_for = self.breakers[route.intent].retry_after()
        if paused_for is not None:
            yield _failure(
                route.intent,
                "paused",
                f"The {route.intent.value} service keeps failing, so I've paused {route.intent.value} "
                f"requests for {paused_for:.0f} s. Please try again then. Nothing was charged.",
            )
            return
        generator = self.generators[route.intent]
        reservation = await self.ledger.reserve(
            request.scope,
            generator.estimate(route.prompt),
            user=request.user,
            service=route.intent.value,
            prompt=route.prompt,
            request_id=request.id,
            demo=generator.demo,
        )
        if isinstance(reservation, Refusal):
            yield _failure(route.intent, "refused", budget_refusal(reservation, route.intent))
            return
        run = self._run(
            route, request, reservation, received, partial(generator.generate, route.prompt, request), turn
        )
        async with closing_stream(run):
            async for part in run:
                yield part

    async def _run(
        self,
        route: Route,
        request: Request,
        hold: Hold,
        received: float,
        generate: Callable[[], AsyncIterator[GeneratorPart]],
        turn: _Turn,
    ) -> AsyncIterator[Part]:
        """Run one reserved job to its end: queue, generate, record, deliver, settle or refund."""
        intent = route.intent
        breaker = self.breakers[intent]
        actual: int | None = None
        started = time.monotonic()
        first_text = True
        checkpointed = route.source == "resumed"  # a resumed job already has its checkpoint
        job = _JobRow(self.jobs, request, route, hold, exists=checkpointed)
        details: dict[str, object] = {"service": intent.value, "route": route.source, "reserved": hold.amount}
        try:
            async with self._admitted(hold) as waiting:
                async for status in waiting:
                    await job.enter(JobState.QUEUED)
                    yield status
                started = time.monotonic()
                await job.enter(JobState.RUNNING)
                turn.release()
                parts = generate()
                async with closing_stream(parts):
                    while True:
                        try:
                            suspendable = checkpointed and self.jobs is not None
                            part = await self._next_part(parts, suspendable=suspendable)
                        except _Suspended:
                            # The provider keeps the job; the next start resumes it from the checkpoint.
                            metrics.REQUESTS.labels(intent.value, "suspended").inc()
                            log.info("job suspended for resumption after restart", extra=details)
                            yield TextDelta(
                                f"⏸️ I'm restarting. {_WHAT[intent].capitalize()} is still being made, "
                                "and I'll post it here when I'm back."
                            )
                            return
                        if part is None:
                            break
                        if isinstance(part, Usage):
                            actual = (actual or 0) + part.cost
                        elif isinstance(part, Checkpoint):
                            checkpointed = True
                            if self.jobs is not None:
                                await self.jobs.save_checkpoint(request.id, dict(part.data))
                        elif isinstance(part, Image | Audio):
                            await self._advance(request, JobState.DELIVERING)
                            yield part
                            await self._advance(request, JobState.DELIVERED)
                        else:
                            if first_text and isinstance(part, TextDelta):
                                first_text = False
                                waited = time.monotonic() - received
                                metrics.TIME_TO_FIRST_TEXT.labels(intent.value).observe(waited)
                            yield part
        except QueueFull:
            breaker.record_other()
            await self.ledger.refund(hold, note="queue full")
            await self._advance(request, JobState.REFUNDED, error="queue full")
            yield _failure(
                intent,
                "busy",
                "I'm very busy right now and my queue is full. Please try again in a minute. "
                "Nothing was charged.",
            )
            return
        except GenerationError as error:
            outcome = "moderated" if isinstance(error, ModerationError) else "failed"
            metrics.PROVIDER_ERRORS.labels(intent.value, type(error).__name__).inc()
            if isinstance(error, ProviderUnavailable):
                breaker.record_outage()
            else:
                breaker.record_other()
            if error.charge:
                await self._settle(hold, actual if actual is not None else hold.amount, intent)
                await self._advance(request, JobState.FAILED, error=str(error))
                suffix = ""
            else:
                await self.ledger.refund(hold, note=f"{outcome}: {error}"[:500])
                await self._advance(request, JobState.REFUNDED, error=str(error))
                suffix = " Nothing was charged."
            details |= {"status": outcome, "latency_ms": _since(started)}
            log.warning("generation failed: %s", error, extra=details)
            yield _failure(intent, outcome, error.user_message + suffix)
            return
        except BaseException as error:
            breaker.record_other()
            if self._draining and checkpointed and self.jobs is not None:
                # Shutting down mid-job: the provider keeps working and the next start resumes
                # from the checkpoint, so the hold stays and nothing is refunded.
                log.info("job left for resumption after restart", extra=details)
                raise
            # Crashes, cancellation and an adapter closing the stream early all refund.
            await self.ledger.refund(hold, note=f"interrupted: {error!r}"[:500])
            await self._advance(request, JobState.REFUNDED, error=f"interrupted: {error!r}")
            raise
        breaker.record_success()
        charged = actual if actual is not None else hold.amount
        await self._settle(hold, charged, intent)
        await self._advance(request, JobState.DONE)
        metrics.REQUESTS.labels(intent.value, "done").inc()
        metrics.JOB_DURATION.labels(intent.value).observe(time.monotonic() - started)
        details |= {"status": "done", "cost": charged, "latency_ms": _since(started)}
        log.info("request done", extra=details)

    def _cannot_summarize(self, request: Request) -> str | None:
        if Intent.SUMMARY not in self.generators:
            return "Summaries aren't available here yet. Nothing was charged."
        if self.conversations is None or request.conversation is None:
            return "I can only summarize a conversation I'm part of: ask in a thread where I've answered."
        if not request.history:
            return "There's nothing to summarize here yet: I have no earlier messages of this conversation."
        return None

    async def _next_part(
        self, parts: AsyncIterator[GeneratorPart], *, suspendable: bool
    ) -> GeneratorPart | None:
        """The generator's next part (None at its end); for a checkpointed job, raises
        ``_Suspended`` if ``suspend`` is called first. Racing costs a task per part, so only
        checkpointed (polling) jobs, which yield few parts, pay it."""
        if not suspendable:
            return await anext(parts, None)
        step = asyncio.ensure_future(anext(parts, None))
        stop = asyncio.ensure_future(self._suspending.wait())
        try:
            await asyncio.wait({step, stop}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            # End the pending step too: closing a generator another task is still running fails,
            # and that error would replace (swallow) the cancellation.
            step.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await step
            raise
        finally:
            stop.cancel()
        if step.done():
            return step.result()
        step.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await step
        raise _Suspended

    async def _advance(self, request: Request, state: JobState, *, error: str = "") -> None:
        if self.jobs is not None:
            await self.jobs.advance(request.id, state, error=error)

    async def resume_unfinished(self) -> list[Resumption]:
        """Pick up the jobs a previous process left unfinished. Call once at start-up, before
        ``Ledger.sweep_orphans(keep=...)`` with the returned transaction ids.

        A job with a checkpoint is resumed from it (never resubmitted) and delivered to its
        destination; a delivered one is only charged; one that never reached its provider is
        refunded and its requester told to ask again.
        """
        if self.jobs is None:
            return []
        resumptions: list[Resumption] = []
        for job in await self.jobs.unfinished():
            request = job.request()
            hold = await self.ledger.hold_for(job.transaction_id)
            generator = self.generators[job.intent]
            if hold is None:
                await self.jobs.advance(job.id, JobState.DONE, error="ledger closed before the restart")
            elif job.state is JobState.DELIVERED:
                await self._settle(hold, hold.amount, job.intent)
                await self.jobs.advance(job.id, JobState.DONE)
            elif job.checkpoint and isinstance(generator, Resumable):
                log.info("resuming job %s (%s) from its checkpoint", job.id, job.intent.value)
                checkpoint, resumable = job.checkpoint, generator
                route = Route(job.intent, job.prompt, "resumed")
                turn = _Turn(self._starting)
                run = self._run(
                    route,
                    request,
                    hold,
                    time.monotonic(),
                    partial(resumable.resume, checkpoint, job.prompt, request),
                    turn,
                )
                remembered = self._remembered(request, route, run, question=None)
                resumptions.append(
                    Resumption(request, job.transaction_id, self._tracked(request, remembered, turn))
                )
            else:
                await self.ledger.refund(hold, note="restarted before the provider had the job")
                await self.jobs.advance(job.id, JobState.REFUNDED, error="restarted before submission")
                apology = _failure(
                    job.intent,
                    "failed",
                    f"I restarted before your request for {_WHAT[job.intent]} (“{job.prompt[:80]}”) "
                    "reached the provider. Nothing was charged; please ask again.",
                )
                resumptions.append(Resumption(request, job.transaction_id, _single(apology)))
        return resumptions

    async def _settle(self, hold: Hold, charged: int, intent: Intent | None) -> None:
        await self.ledger.settle(hold, charged)
        service = intent.value if intent else ROUTER_SERVICE
        metrics.SPEND.labels(str(hold.scope), service).inc(charged / MICROS_PER_USD)

    @asynccontextmanager
    async def _admitted(self, hold: Hold) -> AsyncIterator[AsyncIterator[Status]]:
        """A running slot for the job; iterate the yielded stream for queue progress until it
        starts. Without admission control the stream is empty and the job starts at once."""
        if self.admission is None:
            yield _no_statuses()
            return
        admission = self.admission
        async with admission.slot(hold.scope) as waiter:

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
                    await admission.wait_for_change()

            yield queued()

    async def _route(self, request: Request, text: str, turn: _Turn) -> Route | Failure:
        if request.intent is not None:
            return Route(request.intent, text, "command")
        ruled = route_by_rules(text)
        if ruled is not None:
            return ruled
        fallback = route_follow_up(text, request.history) or Route(Intent.CHAT, text, "fallback")
        if self.classifier is None:
            return fallback
        classifier = self.classifier
        turn.release()  # the classifier is a network call: others start meanwhile
        reservation = await self.ledger.reserve(
            request.scope,
            classifier.estimate(text),
            user=request.user,
            service=ROUTER_SERVICE,
            prompt=text,
            request_id=request.id,
            demo=classifier.demo,
        )
        if isinstance(reservation, Refusal):
            return _failure(None, "refused", budget_refusal(reservation, None))
        try:
            # Classifiers written before conversations existed take the text alone.
            answer = await (
                classifier.classify(text, request.history) if request.history else classifier.classify(text)
            )
        except Exception as error:
            await self.ledger.refund(reservation, note=f"classifier failed: {error!r}"[:500])
            log.warning("classifier failed (%r); answering as %s", error, fallback.intent.value)
            return fallback
        await self._settle(reservation, answer.cost, None)
        return Route(answer.intent, answer.prompt.strip() or text, "classifier")


def budget_refusal(refusal: Refusal, intent: Intent | None) -> str:
    """Tell the person what the budget has left, what the work costs, and when it resets."""
    report = refusal.report
    what = _WHAT[intent] if intent else "working out what you asked for"
    return (
        f"The budget here can't cover {what} ({format_usd(refusal.needed)}): "
        f"{format_usd(report.remaining)} of {format_usd(report.limit)} is left this month. "
        f"It resets on {report.resets_on.isoformat()} (UTC). Nothing was charged."
    )


def _failure(intent: Intent | None, outcome: str, message: str) -> Failure:
    metrics.REQUESTS.labels(intent.value if intent else "unrouted", outcome).inc()
    return Failure(message)


def _since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


async def _single(part: Part) -> AsyncIterator[Part]:
    yield part


async def _close(parts: AsyncIterator[object]) -> None:
    aclose = getattr(parts, "aclose", None)
    if aclose is not None:
        await aclose()


async def _no_statuses() -> AsyncIterator[Status]:
    return
    yield


@asynccontextmanager
async def closing_stream(parts: AsyncIterator[T]) -> AsyncIterator[AsyncIterator[T]]:
    """Close an async generator as soon as its consumer stops, not whenever it is collected,
    so its ``finally`` blocks (refunds, HTTP cleanup) run in order."""
    try:
        yield parts
    finally:
        await _close(parts)


class _Turn:
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


class _JobRow:
    """The job row of one run, written when the job first reaches a state: a job admitted at once
    is created running, which saves a write before the provider call."""

    def __init__(
        self, jobs: JobStore | None, request: Request, route: Route, hold: Hold, *, exists: bool
    ) -> None:
        self._jobs = jobs
        self._request = request
        self._route = route
        self._hold = hold
        self._exists = exists
        self._state: JobState | None = None

    async def enter(self, state: JobState) -> None:
        if self._jobs is None or state is self._state:
            return
        self._state = state
        if self._exists:
            await self._jobs.advance(self._request.id, state)
            return
        self._exists = True
        route = self._route
        await self._jobs.create(
            self._request, intent=route.intent, prompt=route.prompt, hold=self._hold, state=state
        )


class _Memory:
    """Records one request's exchange in its conversation: the question when work starts, and
    the answer (its text, media and failure) once the stream ends, however it ends."""

    def __init__(
        self, store: ConversationStore, request: Request, conversation: str, route: Route | Failure
    ) -> None:
        self._store = store
        self._request = request
        self._conversation = conversation
        self._summary = isinstance(route, Route) and route.intent is Intent.SUMMARY
        self._text: list[str] = []
        self._media: list[tuple[EventKind, str]] = []
        self._failure: str | None = None

    @classmethod
    def of(cls, store: ConversationStore | None, request: Request, route: Route | Failure) -> _Memory | None:
        if store is None or request.conversation is None:
            return None
        return cls(store, request, request.conversation, route)

    def see(self, part: Part) -> None:
        if isinstance(part, TextDelta):
            self._text.append(part.text)
        elif isinstance(part, Image):
            self._media.append((EventKind.IMAGE, describe_media(Intent.IMAGE, part.prompt)))
        elif isinstance(part, Audio):
            self._media.append((EventKind.SONG, describe_media(Intent.SONG, part.prompt or part.title)))
        elif isinstance(part, Failure):
            self._failure = part.message

    async def remember_question(self, text: str) -> None:
        """Store what was asked; a ``/summary`` command is not part of the conversation itself."""
        if self._request.intent is Intent.SUMMARY:
            return
        command = command_for(self._request.intent) if self._request.intent else None
        try:
            await self._record(EventKind.USER_MESSAGE, f"/{command.name} {text}" if command else text)
        except Exception:
            log.exception("could not record the question in its conversation")

    async def remember_answer(self) -> None:
        try:
            text = "".join(self._text).strip()
            if self._summary:
                # A failed summary says nothing about the conversation, and must not make the bot
                # "known" in a thread it never answered in.
                if text and self._failure is None:
                    await self._record(EventKind.SUMMARY, text)
                return
            if text:
                await self._record(EventKind.ANSWER, text)
            for kind, description in self._media:
                await self._record(kind, description)
            if self._failure is not None:
                await self._record(EventKind.FAILURE, self._failure)
        except Exception:
            log.exception("could not record the answer in its conversation")

    async def _record(self, kind: EventKind, text: str) -> None:
        request = self._request
        await self._store.record(
            self._conversation,
            scope=request.scope,
            user=request.user,
            kind=kind,
            text=text,
            request_id=request.id,
        )
