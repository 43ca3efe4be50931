"""``Engine.handle``: route a request, reserve its budget, run the generator, settle or refund."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace
from functools import partial

from core.admission import START_WIDTH, Admission, StartTurn
from core.breaker import CircuitBreaker
from core.commands.catalogue import MAX_PROMPT_CHARS, usage_hint
from core.context import current_request
from core.conversations import ConversationStore
from core.dashboard import DashboardLinks
from core.generator import Generator, RequestAware
from core.handoff import Handoff
from core.jobs import Job, JobStore, Resumption, resume_unfinished, take_over_abandoned
from core.ledger import Hold, Ledger, Refusal
from core.memory import remembering
from core.outcomes import (
    ROUTER_SERVICE,
    HoldNotReleased,
    budget_refusal,
    failure,
    not_configured,
    nothing_charged,
    release,
    settle,
)
from core.parts import Audio, Destination, Failure, GeneratorPart, Image, Intent, Part, Request
from core.policy import Policies, judge, policies_for, switched_off
from core.router import Classifier, Route, route_attached, route_by_rules, route_follow_up
from core.run import RESTARTING, JobRun, RunServices
from core.streams import close, closing_stream, single
from core.studio import BadOption, StudioStore, delivered, typed_options, with_attached_source

__all__ = ["RESTARTING", "SUSPEND_GRACE_S", "Engine", "Resumption", "budget_refusal"]

log = logging.getLogger(__name__)

HISTORY_EVENTS = 100
"""Events of a conversation loaded per request; generators trim them further to a token budget."""
SUSPEND_GRACE_S = 5.0
"""After ``suspend``, how long ``shutdown`` waits for every stream to hand its last part (the
resume notice or the refund ``Failure``) to its consumer. The engine ends its own work at once;
this only bounds a consumer that is slow to read that last part (a platform call in flight)."""


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
        policies: Policies | None = None,
        dashboard: DashboardLinks | None = None,
        studio: StudioStore | None = None,
    ) -> None:
        self.ledger = ledger
        self.studio = studio or StudioStore(ledger.database)
        """Every delivered image and song, for the buttons under it (``core.studio.press``)."""
        self.dashboard = dashboard
        """Links to the web dashboard that every surface's ``/budget dashboard`` hands out."""
        self.generators = dict(generators)
        self.intents = frozenset(self.generators)
        """The intents this engine can serve: a service turned off has no generator."""
        self.classifier = classifier
        self.admission = admission
        self.breakers = dict(breakers) if breakers else {intent: CircuitBreaker() for intent in Intent}
        self.jobs = jobs
        self.handoff = Handoff()
        """The running adapters that deliver jobs taken over from dead processes."""
        self.conversations = conversations
        """Where requests with a ``conversation`` find their history and are remembered."""
        self.policies = policies or policies_for(ledger.database)
        """Each scope's access policy: switched-off channels, allowlists and services."""
        self._active = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._services = RunServices(
            ledger=ledger,
            jobs=jobs,
            admission=admission,
            breakers=self.breakers,
            draining=asyncio.Event(),
            suspending=asyncio.Event(),
        )
        self._starting = asyncio.Semaphore(start_width)

    @property
    def active(self) -> int:
        """Requests being handled right now."""
        return self._active

    async def shutdown(self, grace_s: float) -> None:
        """Stop taking requests, let running work finish for up to ``grace_s`` seconds, then
        ``suspend`` the rest and wait (at most ``SUSPEND_GRACE_S``) for every stream to end."""
        if await self.drain(grace_s):
            return
        log.info("grace period over: suspending %d running requests", self._active)
        self.suspend()
        if not await self.drain(SUSPEND_GRACE_S):
            log.warning("%d streams were not read to their end after suspending", self._active)

    async def drain(self, grace_s: float) -> bool:
        """Refuse new requests and wait up to ``grace_s`` for running ones to finish.
        Returns whether everything finished."""
        self._services.draining.set()
        try:
            async with asyncio.timeout(grace_s):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    def suspend(self) -> None:
        """End every running job promptly; nobody needs to cancel anything. A job with a
        checkpoint keeps its hold and job row, and its stream ends with a notice that it will be
        posted here after the restart (``resume_unfinished`` picks it up). Any other job is
        refunded, and its stream ends with a ``Failure`` saying so. Requests arriving from now on
        are refused. Use after ``drain`` ran out of time."""
        self._services.draining.set()
        self._services.suspending.set()
        for job in list(self._services.running):
            job.stop()

    def handle(self, request: Request) -> AsyncIterator[Part]:
        """Stream the answer to ``request``. Never raises (except cancellation): every problem
        becomes a ``Failure`` part, and whatever was reserved and not spent is refunded."""
        turn = StartTurn(self._starting)
        return self._tracked(request, self._handle(request, turn), turn)

    async def resume_unfinished(
        self, *, reaches: Callable[[Destination | None], bool] | None = None
    ) -> list[Resumption]:
        """Pick up the jobs a previous process left unfinished (with ``reaches``, only those this
        process can deliver). Call once at start-up, before ``Ledger.sweep_orphans(keep=...)``
        with the returned transaction ids."""
        if self.jobs is None:
            return []
        await self.ledger.leases.end_leases_of_gone_processes()
        return await resume_unfinished(
            self.jobs, self.ledger, self.generators, run=self._resumed, reaches=reaches
        )

    async def take_over_abandoned(self) -> int:
        """Claim the jobs of processes that stopped renewing their leases, which a running
        adapter here can deliver (``handoff``), and hand them to it; returns how many."""
        if self.jobs is None:
            return 0
        resumptions = await take_over_abandoned(
            self.jobs, self.ledger, self.generators, run=self._resumed, reaches=self.handoff.reaches
        )
        for resumption in resumptions:
            if not self.handoff.deliver(resumption):  # its adapter closed since: the next start has it
                await close(resumption.parts)
                log.warning("job %s taken over, but no adapter is left to deliver it", resumption.request.id)
        return len(resumptions)

    async def tend(self) -> None:
        """One round of upkeep: renew our leases, take over dead processes' jobs we can deliver,
        then release the expired holds left (not paid work waiting for its platform)."""
        leases = self.ledger.leases
        await leases.renew()
        await self.take_over_abandoned()
        await leases.sweep(spare_jobs=True)

    async def maintain(self) -> None:
        """``tend`` every lease renewal interval (``Leases.renew_s``), until cancelled."""
        every = self.ledger.leases.renew_s
        while True:
            await self.ledger.database.clock.sleep(every)
            try:
                await self.tend()
            except Exception:
                log.exception("lease upkeep or take-over failed; trying again in %.0f s", every)

    async def _tracked(
        self, request: Request, parts: AsyncIterator[Part], turn: StartTurn
    ) -> AsyncIterator[Part]:
        """Count the request as active (for ``drain``), tag its logs, and turn crashes into a Failure."""
        current_request.set(request)
        if self._services.draining.is_set():
            await close(parts)
            message = "I'm restarting right now. Please ask again in a minute. Nothing was charged."
            yield failure(request.intent, "busy", message)
            return
        self._active += 1
        self._idle.clear()
        consumer_left = False
        thrown: BaseException | None = None
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
                    except BaseException as error:  # the consumer failed to deliver and threw it in
                        consumer_left, thrown = True, error
                        raise
        except Exception as error:
            if error is thrown:  # the consumer's own error goes back to it
                raise
            log.exception("request failed unexpectedly")
            if not consumer_left:  # nobody is listening any more, and a closing generator can't yield
                stuck = error.hold if isinstance(error, HoldNotReleased) else None
                charged = nothing_charged(stuck, released=stuck is None)
                message = f"Something went wrong on my side (ref `{request.id}`). {charged}"
                yield failure(request.intent, "failed", message)
        finally:
            turn.release()
            self._active -= 1
            if not self._active:
                self._idle.set()

    async def _handle(self, request: Request, turn: StartTurn) -> AsyncIterator[Part]:
        received = time.monotonic()
        text = request.text.strip()
        refused = self._refused(request, text)
        if refused is not None:
            yield refused
            return
        if request.access is not None:  # someone asked somewhere: the channel and allowlist apply
            verdict = judge(await self.policies.policy(request.scope), request)
            if verdict.silent:  # a switched-off channel: no answer, no charge
                return
            if verdict.message:
                yield failure(request.intent, "forbidden", verdict.message)
                return
        request = await self._with_history(request)
        route = await self._route(request, text, turn)
        work: AsyncIterator[Part]
        if isinstance(route, Failure):
            work, intent = single(route), None
        else:
            work, intent = self._work(request, route, received, turn), route.intent
        remembered = remembering(self.conversations, request, work, intent=intent, question=text)
        async with closing_stream(remembered):
            async for part in remembered:
                yield part

    def _refused(self, request: Request, text: str) -> Failure | None:
        """A request refused before anything else: an empty or too long prompt, or too many."""
        if not text and not request.attachments and request.intent is not Intent.SUMMARY:
            return failure(request.intent, "invalid", usage_hint(request.intent))
        if len(text) > MAX_PROMPT_CHARS:
            return failure(
                request.intent,
                "invalid",
                f"That prompt is {len(text):,} characters; the limit is {MAX_PROMPT_CHARS:,}. "
                "Please shorten it. Nothing was charged.",
            )
        if self.admission is not None:
            wait = self.admission.limit_rate(f"{request.scope}:{request.user}")
            if wait is not None:
                return failure(
                    request.intent,
                    "rate_limited",
                    f"You're sending requests faster than {self.admission.user_requests_per_minute} a "
                    f"minute. Try again in {wait:.0f} s. Nothing was charged.",
                    retry_after_s=wait,
                )
        return None

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
        self, request: Request, route: Route, received: float, turn: StartTurn
    ) -> AsyncIterator[Part]:
        """Reserve and run the routed work, or say why it can't run. A service switched off here
        is explained, never swapped for another one (a "draw …" with images off gets no chat)."""
        unavailable = self._unavailable(route.intent, request)
        if unavailable is None and not (await self.policies.policy(request.scope)).serves(route.intent):
            unavailable = switched_off(route.intent)
        if unavailable is not None:
            yield failure(route.intent, "unavailable", unavailable)
            return
        paused_for = self.breakers[route.intent].retry_after()
        if paused_for is not None:
            yield failure(
                route.intent,
                "paused",
                f"The {route.intent.value} service keeps failing, so I've paused {route.intent.value} "
                f"requests for {paused_for:.0f} s. Please try again then. Nothing was charged.",
            )
            return
        if route.intent is Intent.IMAGE:
            image_work = _image_work(request, route)
            if isinstance(image_work, Failure):
                yield image_work
                return
            request, route = image_work
        generator = self.generators[route.intent]
        if isinstance(generator, RequestAware):
            refusal = generator.refusal(request)
            if refusal is not None:
                yield failure(route.intent, "invalid", refusal)
                return
            estimate = generator.estimate_for(route.prompt, request)
        else:
            estimate = generator.estimate(route.prompt)
        reservation = await self.ledger.reserve(
            request.scope,
            estimate,
            user=request.user,
            service=route.intent.value,
            prompt=route.prompt,
            request_id=request.id,
            demo=generator.demo,
        )
        if isinstance(reservation, Refusal):
            yield failure(route.intent, "refused", budget_refusal(reservation, route.intent))
            return
        generate = partial(generator.generate, route.prompt, request)
        run = self._run(route, request, reservation, received, generate, turn)
        async with closing_stream(run):
            async for part in run:
                yield part

    def _run(
        self,
        route: Route,
        request: Request,
        hold: Hold,
        received: float,
        generate: Callable[[], AsyncIterator[GeneratorPart]],
        turn: StartTurn,
    ) -> AsyncIterator[Part]:
        run = JobRun(
            self._services,
            route=route,
            request=request,
            hold=hold,
            received=received,
            generate=generate,
            turn=turn,
        )
        return self._recorded(request, route, run.stream())

    async def _recorded(
        self, request: Request, route: Route, parts: AsyncIterator[Part]
    ) -> AsyncIterator[Part]:
        """Record each delivered image or song before it is handed on, labelled with its job and
        the actions a surface offers under it; a failed record only loses the buttons."""
        provider = type(self.generators.get(route.intent)).__name__
        async with closing_stream(parts):
            async for part in parts:
                if isinstance(part, Image | Audio):
                    try:
                        await self.studio.record(request, part, provider=provider)
                    except Exception:
                        log.exception("could not record delivered media; it goes out without buttons")
                    else:
                        part = delivered(part, request.id)
                yield part

    def _resumed(
        self, job: Job, hold: Hold, resume: Callable[[], AsyncIterator[GeneratorPart]]
    ) -> AsyncIterator[Part]:
        """A job picked up after a restart, run, remembered and tracked like a new request."""
        request, route, turn = (
            job.request(),
            Route(job.intent, job.prompt, "resumed"),
            StartTurn(self._starting),
        )
        run = self._run(route, request, hold, time.monotonic(), resume, turn)
        remembered = remembering(self.conversations, request, run, intent=job.intent, question=None)
        return self._tracked(request, remembered, turn)

    def _unavailable(self, intent: Intent, request: Request) -> str | None:
        """Why ``intent`` can't be served here, or None when it can."""
        if intent is Intent.SUMMARY:
            if Intent.SUMMARY not in self.generators:
                return "Summaries aren't available here yet. Nothing was charged."
            if self.conversations is None or request.conversation is None:
                return "I can only summarize a conversation I'm part of: ask in a thread where I've answered."
            if not request.history:
                return (
                    "There's nothing to summarize here yet: I have no earlier messages of this conversation."
                )
            return None
        if intent not in self.generators:
            return not_configured(intent)
        return None

    async def _route(self, request: Request, text: str, turn: StartTurn) -> Route | Failure:
        if request.intent is not None:
            return Route(request.intent, text, "command")
        if request.attachments:
            return route_attached(text, request.attachments)
        ruled = route_by_rules(text)
        if ruled is not None:
            return ruled
        fallback = route_follow_up(text, request.history) or Route(Intent.CHAT, text, "fallback")
        if self.classifier is None:
            return fallback
        turn.release()  # the classifier is a network call: others start meanwhile
        return await self._classified(request, text, self.classifier, fallback)

    async def _classified(
        self, request: Request, text: str, classifier: Classifier, fallback: Route
    ) -> Route | Failure:
        """Ask the (paid) classifier; on any failure, refund it and take ``fallback``."""
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
            return failure(None, "refused", budget_refusal(reservation, None))
        try:
            answer = await classifier.classify(text, request.history)
        except Exception as error:
            await release(self.ledger, reservation, note=f"classifier failed: {error!r}"[:500])
            log.warning("classifier failed (%r); answering as %s", error, fallback.intent.value)
            return fallback
        await settle(self.ledger, reservation, answer.cost, None)
        return Route(answer.intent, answer.prompt.strip() or text, "classifier")


def _image_work(request: Request, route: Route) -> tuple[Request, Route] | Failure:
    """An image request with its options: a mention's typed flags read as ``/imagine`` reads
    them, and an attached picture as the source to work on."""
    if request.studio is None:
        try:
            prompt, options = typed_options(request.text, route.prompt)
        except BadOption as bad:
            return failure(route.intent, "invalid", str(bad))
        if not prompt:
            return failure(route.intent, "invalid", usage_hint(route.intent))
        route, request = replace(route, prompt=prompt), replace(request, studio=options)
    return with_attached_source(request), route
