"""Engine.handle: validation, budget refusal, settlement, refunds, classifier charging, never raising."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import pytest

from core.conversations import ConversationStore
from core.engine import RESTARTING, Engine
from core.errors import GenerationError, ModerationError
from core.jobs import JobState, JobStore
from core.ledger import Ledger
from core.parts import (
    Checkpoint,
    Failure,
    GeneratorPart,
    Intent,
    Part,
    Request,
    Scope,
    Status,
    TextDelta,
    Turn,
    Usage,
)
from core.router import Classification
from tests.conftest import demo_engine

SCOPE = Scope("test", "guild")


@dataclass
class ScriptedGenerator:
    """A generator whose behaviour each test sets: parts to yield, then optionally an error."""

    intent: Intent = Intent.IMAGE
    demo: bool = False
    cost: int = 40_000
    parts: list[GeneratorPart] = field(default_factory=lambda: [TextDelta("done")])
    error: Exception | None = None
    block: asyncio.Event | None = None
    calls: list[str] = field(default_factory=list)

    def estimate(self, prompt: str) -> int:
        return self.cost

    async def generate(self, prompt: str, request: Request) -> AsyncIterator[GeneratorPart]:
        self.calls.append(prompt)
        for part in self.parts:
            yield part
        if self.block is not None:
            await self.block.wait()
        if self.error is not None:
            raise self.error


def engine_with(ledger: Ledger, generator: ScriptedGenerator, **kwargs: object) -> Engine:
    base = demo_engine(ledger)
    generators = dict(base.generators)
    generators[generator.intent] = generator  # type: ignore[assignment]
    return Engine(ledger=ledger, generators=generators, **kwargs)  # type: ignore[arg-type]


async def collect(engine: Engine, text: str, intent: Intent | None = Intent.IMAGE) -> list[Part]:
    return [part async for part in engine.handle(Request(scope=SCOPE, user="ann", text=text, intent=intent))]


async def test_success_charges_the_estimate(ledger: Ledger) -> None:
    generator = ScriptedGenerator()
    parts = await collect(engine_with(ledger, generator), "a fox")
    assert parts == [TextDelta("done")]
    report = await ledger.report(SCOPE)
    assert (report.used, report.held) == (40_000, 0)
    assert report.recent[0].prompt == "a fox" and report.recent[0].user == "ann"


async def test_usage_parts_set_the_actual_charge_and_never_reach_the_adapter(ledger: Ledger) -> None:
    generator = ScriptedGenerator(parts=[TextDelta("x"), Usage(1_234), Usage(100)])
    parts = await collect(engine_with(ledger, generator), "a fox")
    assert parts == [TextDelta("x")]
    assert (await ledger.report(SCOPE)).used == 1_334


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (GenerationError("The image service is down.", detail="503"), "refunded"),
        (ModerationError("The image service declined this prompt."), "refunded"),
    ],
)
async def test_failures_are_refunded_and_explained(ledger: Ledger, error: Exception, status: str) -> None:
    generator = ScriptedGenerator(parts=[], error=error)
    parts = await collect(engine_with(ledger, generator), "a fox")
    assert isinstance(parts[-1], Failure)
    assert parts[-1].message.endswith("Nothing was charged.")
    report = await ledger.report(SCOPE)
    assert (report.used, report.held, report.recent[0].status) == (0, 0, status)


async def test_a_billed_failure_is_charged(ledger: Ledger) -> None:
    generator = ScriptedGenerator(
        parts=[], error=GenerationError("Timed out after it was billed.", charge=True)
    )
    parts = await collect(engine_with(ledger, generator), "a fox")
    assert parts == [Failure("Timed out after it was billed.")]
    assert (await ledger.report(SCOPE)).used == 40_000


async def test_an_unexpected_crash_becomes_a_failure_and_a_refund(ledger: Ledger) -> None:
    generator = ScriptedGenerator(parts=[], error=KeyError("boom"))
    parts = await collect(engine_with(ledger, generator), "a fox")
    assert len(parts) == 1 and isinstance(parts[0], Failure)
    assert "Nothing was charged" in parts[0].message and "boom" not in parts[0].message
    report = await ledger.report(SCOPE)
    assert (report.used, report.held, report.recent[0].status) == (0, 0, "refunded")


async def test_cancellation_mid_stream_refunds(ledger: Ledger) -> None:
    block = asyncio.Event()
    generator = ScriptedGenerator(parts=[TextDelta("partial")], block=block)
    engine = engine_with(ledger, generator)
    seen: list[Part] = []
    streaming = asyncio.Event()

    async def consume() -> None:
        async for part in engine.handle(Request(scope=SCOPE, user="ann", text="a fox", intent=Intent.IMAGE)):
            seen.append(part)
            streaming.set()

    task = asyncio.create_task(consume())
    await streaming.wait()
    assert seen == [TextDelta("partial")]
    assert (await ledger.report(SCOPE)).held == 40_000
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    report = await ledger.report(SCOPE)
    assert (report.used, report.held, report.recent[0].status) == (0, 0, "refunded")


async def test_an_adapter_closing_the_stream_early_refunds(ledger: Ledger) -> None:
    generator = ScriptedGenerator(parts=[TextDelta("a"), TextDelta("b")])
    stream = engine_with(ledger, generator).handle(
        Request(scope=SCOPE, user="ann", text="x", intent=Intent.IMAGE)
    )
    assert await anext(stream) == TextDelta("a")
    await stream.aclose()
    report = await ledger.report(SCOPE)
    assert (report.used, report.held) == (0, 0)


async def test_exhausted_budget_runs_nothing_and_says_what_remains(ledger: Ledger) -> None:
    await ledger.set_limit(SCOPE, 30_000, by="admin")
    generator = ScriptedGenerator()
    [failure] = await collect(engine_with(ledger, generator), "a fox")
    assert isinstance(failure, Failure)
    assert "$0.03 of $0.03 is left" in failure.message
    assert "resets on" in failure.message and "Nothing was charged." in failure.message
    assert generator.calls == []
    assert (await ledger.report(SCOPE)).recent == []


@pytest.mark.parametrize(
    ("text", "intent", "expected"),
    [
        ("", Intent.IMAGE, "Usage: `/imagine PROMPT [--ar 16:9] [--seed 42]`"),
        ("   ", Intent.SONG, "Usage: `/song PROMPT`"),
        ("", None, "Commands:"),
        ("x" * 4001, Intent.IMAGE, "the limit is 4,000"),
    ],
)
async def test_bad_prompts_get_a_clear_message_and_cost_nothing(
    ledger: Ledger, text: str, intent: Intent | None, expected: str
) -> None:
    generator = ScriptedGenerator()
    [failure] = await collect(engine_with(ledger, generator), text, intent)
    assert isinstance(failure, Failure) and expected in failure.message
    assert generator.calls == [] and (await ledger.report(SCOPE)).recent == []


@dataclass
class FakeClassifier:
    answer: Classification | Exception
    demo: bool = False
    seen: list[str] = field(default_factory=list)

    def estimate(self, text: str) -> int:
        return 10_000

    async def classify(self, text: str, history: Sequence[Turn] = ()) -> Classification:
        self.seen.append(text)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


async def test_unsure_mentions_go_to_the_classifier_which_is_charged(ledger: Ledger) -> None:
    generator = ScriptedGenerator(intent=Intent.SONG, cost=50_000)
    classifier = FakeClassifier(Classification(Intent.SONG, "the sea at night", cost=321))
    engine = engine_with(ledger, generator, classifier=classifier)
    await collect(engine, "something about the sea at night, with a chorus", intent=None)
    assert classifier.seen == ["something about the sea at night, with a chorus"]
    assert generator.calls == ["the sea at night"]
    report = await ledger.report(SCOPE)
    assert report.by_service == {"router": 321, "song": 50_000}


async def test_confident_rules_skip_the_classifier(ledger: Ledger) -> None:
    classifier = FakeClassifier(Classification(Intent.CHAT, "x", cost=1))
    generator = ScriptedGenerator(intent=Intent.IMAGE)
    await collect(engine_with(ledger, generator, classifier=classifier), "draw a lighthouse at dusk", None)
    assert classifier.seen == [] and generator.calls == ["a lighthouse at dusk"]


async def test_classifier_failure_falls_back_to_chat_and_is_refunded(ledger: Ledger) -> None:
    classifier = FakeClassifier(ValueError("not JSON"))
    chat = ScriptedGenerator(intent=Intent.CHAT, cost=2_000, parts=[TextDelta("hi!")])
    parts = await collect(engine_with(ledger, chat, classifier=classifier), "tell me about lighthouses", None)
    assert parts == [TextDelta("hi!")]
    report = await ledger.report(SCOPE)
    assert report.by_service == {"chat": 2_000}
    assert [row.status for row in report.recent] == ["charged", "refunded"]


async def test_demo_runs_are_marked_as_demo(engine: Engine, ledger: Ledger) -> None:
    await collect(engine, "a fox")
    assert (await ledger.report(SCOPE)).recent[0].demo


async def test_drain_refuses_new_work_and_waits_for_running_streams(ledger: Ledger) -> None:
    gate = asyncio.Event()
    generator = ScriptedGenerator(parts=[TextDelta("partial")], block=gate)
    engine = engine_with(ledger, generator)
    stream = engine.handle(Request(scope=SCOPE, user="ann", text="a fox", intent=Intent.IMAGE))
    assert await anext(stream) == TextDelta("partial")
    assert engine.active == 1

    assert not await engine.drain(0.01)  # still running: the grace period runs out
    [refused] = await collect(engine, "another fox")
    assert isinstance(refused, Failure)
    assert "restarting" in refused.message

    drained = asyncio.create_task(engine.drain(5))
    gate.set()
    assert [part async for part in stream] == []
    assert await drained
    assert engine.active == 0
    assert (await ledger.report(SCOPE)).used == 40_000


class SlowHistory(ConversationStore):
    """Conversation history that loads only when the test lets it: a start that takes a while."""

    def __init__(self, ledger: Ledger) -> None:
        super().__init__(ledger.database)
        self.loading = 0
        self.go = asyncio.Event()

    async def history(self, conversation: str, *, limit: int = 100) -> list[Turn]:
        self.loading += 1
        await self.go.wait()
        return await super().history(conversation, limit=limit)


async def ask(engine: Engine, number: int) -> list[Part]:
    """Ask for image number ``number``, in a conversation of its own (so its history is loaded)."""
    request = Request(
        scope=SCOPE, user="ann", text=f"fox {number}", intent=Intent.IMAGE, conversation=f"c{number}"
    )
    return [part async for part in engine.handle(request)]


async def test_requests_take_their_start_in_turns_in_arrival_order(ledger: Ledger) -> None:
    store, generator = SlowHistory(ledger), ScriptedGenerator()
    engine = engine_with(ledger, generator, conversations=store, start_width=2)

    answers = [asyncio.create_task(ask(engine, number)) for number in range(3)]
    for _ in range(20):
        await asyncio.sleep(0)
    assert store.loading == 2, "the third request waits for a turn while two are starting"
    store.go.set()

    assert await asyncio.gather(*answers) == [[TextDelta("done")]] * 3
    assert generator.calls == ["fox 0", "fox 1", "fox 2"]


async def test_a_request_cancelled_while_waiting_for_its_turn_leaves_nothing_behind(ledger: Ledger) -> None:
    store, generator = SlowHistory(ledger), ScriptedGenerator()
    engine = engine_with(ledger, generator, conversations=store, start_width=1)

    first, waiting = asyncio.create_task(ask(engine, 0)), asyncio.create_task(ask(engine, 1))
    for _ in range(20):
        await asyncio.sleep(0)
    waiting.cancel()
    store.go.set()

    assert await first == [TextDelta("done")]
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert engine.active == 0
    assert await ask(engine, 2) == [TextDelta("done")]  # its turn was not kept


async def read_all(stream: AsyncIterator[Part], seen: list[Part], started: asyncio.Event) -> None:
    """A consumer as adapters write it: read every part, never cancelled."""
    async for part in stream:
        seen.append(part)
        started.set()


async def test_shutdown_ends_every_running_stream_by_itself(ledger: Ledger) -> None:
    gate = asyncio.Event()
    chat = ScriptedGenerator(intent=Intent.CHAT, parts=[TextDelta("partial")], block=gate)
    song = ScriptedGenerator(intent=Intent.SONG, cost=50_000, parts=[Checkpoint({"id": "w1"})], block=gate)
    song.parts.append(Status("Generating…"))
    generators = dict(demo_engine(ledger).generators)
    generators[Intent.CHAT], generators[Intent.SONG] = chat, song  # type: ignore[assignment]
    jobs = JobStore(ledger.database)
    engine = Engine(ledger=ledger, generators=generators, jobs=jobs)
    asked = [
        Request(scope=SCOPE, user="ann", text=text, intent=intent)
        for text, intent in (("hello", Intent.CHAT), ("the sea", Intent.SONG))
    ]
    seen: list[list[Part]] = [[], []]
    started = [asyncio.Event(), asyncio.Event()]
    readers = [
        asyncio.create_task(read_all(engine.handle(request), parts, event))
        for request, parts, event in zip(asked, seen, started, strict=True)
    ]
    await asyncio.gather(*(event.wait() for event in started))

    await asyncio.wait_for(engine.shutdown(0.01), 5)

    assert all(reader.done() and not reader.cancelled() for reader in readers)
    chat_parts, song_parts = seen
    assert chat_parts == [TextDelta("partial"), Failure(RESTARTING)]
    assert isinstance(song_parts[-1], TextDelta) and "post it here when I'm back" in song_parts[-1].text
    report = await ledger.report(SCOPE)
    assert (report.used, report.held) == (0, 50_000)  # the song's hold stays for the next start
    assert {row.service: row.status for row in report.recent} == {"chat": "refunded", "song": "held"}
    chat_job, song_job = [await jobs.get(request.id) for request in asked]
    assert chat_job is not None and chat_job.state is JobState.REFUNDED
    assert song_job is not None and song_job.state is JobState.RUNNING
    assert engine.active == 0
    [refused] = await collect(engine, "after the shutdown")
    assert isinstance(refused, Failure) and "restarting" in refused.message


async def test_suspend_while_the_consumer_holds_a_part_ends_at_its_next_read(ledger: Ledger) -> None:
    gate = asyncio.Event()
    generator = ScriptedGenerator(parts=[TextDelta("a"), TextDelta("b")], block=gate)
    engine = engine_with(ledger, generator)
    stream = engine.handle(Request(scope=SCOPE, user="ann", text="x", intent=Intent.IMAGE))
    assert await anext(stream) == TextDelta("a")  # the consumer is busy with "a": not waiting
    engine.suspend()
    assert [part async for part in stream] == [Failure(RESTARTING)]
    report = await ledger.report(SCOPE)
    assert (report.used, report.held, report.recent[0].status) == (0, 0, "refunded")


async def test_a_request_still_routing_when_suspended_is_refunded_not_started(ledger: Ledger) -> None:
    store = SlowHistory(ledger)
    generator = ScriptedGenerator()
    engine = engine_with(ledger, generator, conversations=store)
    answer = asyncio.create_task(ask(engine, 0))
    for _ in range(20):
        await asyncio.sleep(0)
    assert store.loading == 1
    engine.suspend()
    store.go.set()
    assert await answer == [Failure(RESTARTING)]
    assert generator.calls == []
    assert (await ledger.report(SCOPE)).held == 0


async def test_someone_elses_cancellation_still_cancels_a_suspended_job(ledger: Ledger) -> None:
    gate = asyncio.Event()
    generator = ScriptedGenerator(parts=[TextDelta("partial")], block=gate)
    engine = engine_with(ledger, generator)
    seen: list[Part] = []
    started = asyncio.Event()
    reader = asyncio.create_task(
        read_all(
            engine.handle(Request(scope=SCOPE, user="ann", text="x", intent=Intent.IMAGE)), seen, started
        )
    )
    await started.wait()
    reader.cancel()  # the process is going down: cancelled from outside as well
    engine.suspend()
    with pytest.raises(asyncio.CancelledError):
        await reader
    assert (await ledger.report(SCOPE)).held == 0


@pytest.mark.parametrize(
    ("intent", "text", "named"),
    [
        (Intent.IMAGE, "a fox", "Image generation"),
        (Intent.SONG, "a sea shanty", "Song generation"),
        (None, "draw a lighthouse at dusk", "Image generation"),  # routed by the rules
    ],
)
async def test_a_service_without_a_generator_is_not_configured_and_costs_nothing(
    ledger: Ledger, intent: Intent | None, text: str, named: str
) -> None:
    generators = dict(demo_engine(ledger).generators)
    del generators[Intent.IMAGE], generators[Intent.SONG]
    engine = Engine(ledger=ledger, generators=generators)
    assert engine.intents == frozenset({Intent.RESEARCH, Intent.CHAT, Intent.SUMMARY})
    [failure] = await collect(engine, text, intent)
    assert failure == Failure(f"{named} isn't configured on this bot. Nothing was charged.")
    assert (await ledger.report(SCOPE)).recent == []
    assert await collect(engine, "hello there", Intent.CHAT) != []  # the rest still works


async def test_an_engine_without_a_summary_generator_says_summaries_are_unavailable(ledger: Ledger) -> None:
    generators = dict(demo_engine(ledger).generators)
    del generators[Intent.SUMMARY]
    engine = Engine(ledger=ledger, generators=generators, conversations=ConversationStore(ledger.database))
    request = Request(scope=SCOPE, user="ann", text="", intent=Intent.SUMMARY, conversation="c1")
    assert [part async for part in engine.handle(request)] == [
        Failure("Summaries aren't available here yet. Nothing was charged.")
    ]
