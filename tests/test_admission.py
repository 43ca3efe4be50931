"""Admission control and circuit breakers, through Engine.handle with a real ledger."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from core.admission import Admission, admitted
from core.breaker import CircuitBreaker
from core.engine import Engine
from core.errors import ModerationError, ProviderUnavailable
from core.ledger import Ledger
from core.parts import Failure, GeneratorPart, Intent, Part, Request, Scope, Status, TextDelta
from tests.clock import FakeClock, settle
from tests.conftest import demo_engine

GUILD_A = Scope("test", "a")
GUILD_B = Scope("test", "b")


@dataclass
class GatedGenerator:
    """Each job streams one delta, then waits until the test opens its gate."""

    intent: Intent = Intent.IMAGE
    demo: bool = False
    gates: list[asyncio.Event] = field(default_factory=list)
    error: Exception | None = None
    started: int = 0

    def estimate(self, prompt: str) -> int:
        return 1_000

    async def generate(self, prompt: str, request: Request) -> AsyncIterator[GeneratorPart]:
        self.started += 1
        if self.error is not None:
            raise self.error
        gate = asyncio.Event()
        self.gates.append(gate)
        yield TextDelta(prompt)
        await gate.wait()


def build(ledger: Ledger, generator: GatedGenerator, **kwargs: object) -> Engine:
    generators = dict(demo_engine(ledger).generators)
    generators[Intent.IMAGE] = generator
    return Engine(ledger=ledger, generators=generators, **kwargs)  # type: ignore[arg-type]


class Job:
    def __init__(self, engine: Engine, scope: Scope, text: str, user: str = "u") -> None:
        self.parts: list[Part] = []
        request = Request(scope=scope, user=user, text=text, intent=Intent.IMAGE)
        self.task = asyncio.create_task(self._consume(engine, request))

    async def _consume(self, engine: Engine, request: Request) -> None:
        async for part in engine.handle(request):
            self.parts.append(part)

    @property
    def texts(self) -> list[str]:
        return [part.text for part in self.parts if isinstance(part, TextDelta | Status)]


async def wait_until(condition: object) -> None:
    for _ in range(200):
        if callable(condition) and condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never became true")


async def test_per_scope_cap_queues_with_position_while_other_scopes_run(ledger: Ledger) -> None:
    generator = GatedGenerator()
    admission = Admission(max_jobs=10, max_jobs_per_scope=1, max_queue=10, user_requests_per_minute=0)
    engine = build(ledger, generator, admission=admission)

    first = Job(engine, GUILD_A, "one")
    await wait_until(lambda: generator.started == 1)
    second = Job(engine, GUILD_A, "two")
    third = Job(engine, GUILD_A, "three")
    other = Job(engine, GUILD_B, "elsewhere")
    await wait_until(lambda: generator.started == 2)
    await settle()

    assert other.texts == ["elsewhere"]  # another guild is not held up
    assert second.texts == ["Queued: waiting for a free slot…"]
    assert third.texts == ["Queued: waiting for a free slot (1 ahead of you)…"]
    assert (admission.running, admission.waiting) == (2, 2)

    generator.gates[0].set()  # the first job finishes: the second starts, the third moves up
    await first.task
    await wait_until(lambda: generator.started == 3)
    await settle()
    assert second.texts[-1] == "two"
    assert third.texts[-1] == "Queued: waiting for a free slot…"

    for gate in generator.gates:
        gate.set()
    await wait_until(lambda: generator.started == 4)
    generator.gates[-1].set()
    await asyncio.gather(second.task, third.task, other.task)
    assert (admission.running, admission.waiting) == (0, 0)
    assert (await ledger.report(GUILD_A)).used == 3_000


async def test_a_full_queue_refuses_at_once_and_charges_nothing(ledger: Ledger) -> None:
    generator = GatedGenerator()
    admission = Admission(max_jobs=1, max_jobs_per_scope=1, max_queue=2, user_requests_per_minute=0)
    engine = build(ledger, generator, admission=admission)
    jobs = [Job(engine, Scope("test", str(n)), f"job {n}") for n in range(50)]
    await wait_until(lambda: sum(job.task.done() for job in jobs) == 47)

    refused = [job for job in jobs if job.task.done()]
    assert all(
        isinstance(job.parts[-1], Failure) and "queue is full" in job.parts[-1].message for job in refused
    )
    assert (admission.running, admission.waiting) == (1, 2)  # memory stays bounded by the caps

    for _ in range(3):
        for gate in generator.gates:
            gate.set()
        await asyncio.sleep(0.01)
    await asyncio.gather(*(job.task for job in jobs))
    statuses = [row.status for n in range(50) for row in (await ledger.report(Scope("test", str(n)))).recent]
    assert statuses.count("charged") == 3
    assert statuses.count("refunded") == 47


async def test_cancelling_a_queued_job_refunds_it_and_frees_its_place(ledger: Ledger) -> None:
    generator = GatedGenerator()
    admission = Admission(max_jobs=1, max_jobs_per_scope=1, max_queue=5, user_requests_per_minute=0)
    engine = build(ledger, generator, admission=admission)
    running = Job(engine, GUILD_A, "running")
    await wait_until(lambda: generator.started == 1)
    queued = Job(engine, GUILD_B, "queued")
    await wait_until(lambda: admission.waiting == 1)
    queued.task.cancel()
    await asyncio.gather(queued.task, return_exceptions=True)
    assert admission.waiting == 0
    report = await ledger.report(GUILD_B)
    assert (report.held, report.recent[0].status) == (0, "refunded")
    generator.gates[0].set()
    await running.task


async def test_per_user_rate_limit_says_when_to_come_back(ledger: Ledger) -> None:
    clock = FakeClock(start=1_000)
    admission = Admission(
        max_jobs=10, max_jobs_per_scope=10, max_queue=10, user_requests_per_minute=2, clock=clock
    )
    engine = build(ledger, GatedGenerator(), admission=admission)

    async def ask(user: str) -> Part:  # plain chat: answered by the demo chat generator
        return [part async for part in engine.handle(Request(scope=GUILD_A, user=user, text="hello"))][-1]

    assert isinstance(await ask("ann"), TextDelta)
    await clock.advance(20)
    assert isinstance(await ask("ann"), TextDelta)
    limited = await ask("ann")
    assert isinstance(limited, Failure)
    assert "faster than 2 a minute. Try again in 40 s" in limited.message
    assert isinstance(await ask("bob"), TextDelta)  # another user is not limited
    await clock.advance(40)
    assert isinstance(await ask("ann"), TextDelta)
    assert len((await ledger.report(GUILD_A)).recent) == 4  # the refused request reserved nothing


async def test_breaker_opens_after_outages_and_recovers_after_cooldown(ledger: Ledger) -> None:
    clock = FakeClock()
    generator = GatedGenerator(error=ProviderUnavailable("The image service is down (HTTP 503)."))
    breakers = {intent: CircuitBreaker(threshold=3, cooldown_s=30, clock=clock) for intent in Intent}
    engine = build(ledger, generator, breakers=breakers)

    async def ask() -> Part:
        request = Request(scope=GUILD_A, user="u", text="x", intent=Intent.IMAGE)
        return [part async for part in engine.handle(request)][-1]

    for _ in range(3):
        failure = await ask()
        assert isinstance(failure, Failure)
        assert "down (HTTP 503)" in failure.message
    paused = await ask()
    assert isinstance(paused, Failure)
    assert "paused image requests for 30 s" in paused.message
    assert generator.started == 3  # the provider was not called again
    assert len((await ledger.report(GUILD_A)).recent) == 3  # and nothing was reserved

    await clock.advance(31)
    generator.error = None
    trial = Job(engine, GUILD_A, "trial")
    await wait_until(lambda: generator.started == 4)
    generator.gates[-1].set()
    await trial.task
    assert trial.texts == ["trial"]
    assert breakers[Intent.IMAGE].retry_after() is None


async def test_moderation_does_not_trip_the_breaker(ledger: Ledger) -> None:
    breakers = {intent: CircuitBreaker(threshold=2, cooldown_s=30, clock=FakeClock()) for intent in Intent}
    engine = build(ledger, GatedGenerator(error=ModerationError("Declined.")), breakers=breakers)
    for _ in range(5):
        parts = [part async for part in engine.handle(Request(scope=GUILD_A, user="u", text="x"))]
        assert "paused" not in getattr(parts[-1], "message", "")
    assert breakers[Intent.IMAGE].retry_after() is None


async def test_a_slot_freed_while_the_queued_status_is_being_shown_starts_the_job() -> None:
    # A renderer busy posting "Queued…" (pacing its edits) is away when the slot frees up: the
    # last change it will hear of has already happened.
    admission = Admission(max_jobs=1, max_jobs_per_scope=1, max_queue=5, user_requests_per_minute=0)
    first = contextlib.AsyncExitStack()
    await first.enter_async_context(admitted(admission, GUILD_A))  # holds the only slot
    async with admitted(admission, GUILD_B) as waiting:
        assert isinstance(await anext(waiting), Status)  # "Queued…", then the reader goes away
        await first.aclose()  # meanwhile the first job ends
        assert admission.running == 1
        remaining = [part async for part in waiting]  # back: the wait is over, not forever
    assert remaining == []
