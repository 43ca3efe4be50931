"""Durable jobs: rows for every generation, resumption from a checkpoint after a restart, charged once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from core.conversations import ConversationStore
from core.engine import RESTARTING, Engine
from core.history import turn_text
from core.jobs import JobState, JobStore
from core.ledger import Ledger, Refusal
from core.parts import (
    Audio,
    Checkpoint,
    Delivered,
    Destination,
    Failure,
    GeneratorPart,
    Image,
    Intent,
    Part,
    Request,
    Scope,
    Status,
    TextDelta,
)
from tests.clock import FakeClock
from tests.conftest import DEFAULT_LIMIT, demo_engine

pytestmark = pytest.mark.backends

SCOPE = Scope("discord", "guild-1")
DESTINATION = Destination(platform="discord", channel="chan-9", message="msg-3", extra={"guild": "guild-1"})
SONG = Audio(data=b"RIFF....", filename="song.wav", mime_type="audio/wav", title="The Sea")


@dataclass
class SlowSong:
    """Submits (yielding a checkpoint), then polls until the test lets it finish."""

    intent: Intent = Intent.SONG
    demo: bool = False
    submitted: list[str] = field(default_factory=list)
    resumed: list[Mapping[str, str]] = field(default_factory=list)
    finish: asyncio.Event = field(default_factory=asyncio.Event)
    checkpoint_first: bool = True
    wait_when_resumed: bool = False

    def estimate(self, prompt: str) -> int:
        return 50_000

    async def generate(self, prompt: str, request: Request) -> AsyncIterator[GeneratorPart]:
        yield Status("Submitting…")
        if self.checkpoint_first:
            self.submitted.append(prompt)
            yield Checkpoint({"work_id": f"work-{len(self.submitted)}"})
        yield Status("Generating…")
        await self.finish.wait()
        yield SONG

    async def resume(
        self, checkpoint: Mapping[str, str], prompt: str, request: Request
    ) -> AsyncIterator[GeneratorPart]:
        self.resumed.append(checkpoint)
        yield Status("Still generating…")
        if self.wait_when_resumed:
            await self.finish.wait()
        yield SONG


def song_engine(ledger: Ledger, song: SlowSong) -> Engine:
    generators = dict(demo_engine(ledger).generators)
    generators[Intent.SONG] = song
    return Engine(
        ledger=ledger,
        generators=generators,
        jobs=JobStore(ledger.database),
        conversations=ConversationStore(ledger.database),
    )


def song_request(conversation: str | None = None) -> Request:
    return Request(
        scope=SCOPE,
        user="ann",
        text="the sea",
        intent=Intent.SONG,
        destination=DESTINATION,
        conversation=conversation,
    )


async def test_every_generation_is_a_job_row_that_ends_done(ledger: Ledger) -> None:
    song = SlowSong()
    song.finish.set()
    engine = song_engine(ledger, song)
    request = song_request()
    parts = [part async for part in engine.handle(request)]
    assert parts[-1] == SONG
    job = await JobStore(ledger.database).get(request.id)
    assert job is not None
    assert (job.state, job.checkpoint, job.destination) == (JobState.DONE, {"work_id": "work-1"}, DESTINATION)
    assert (await ledger.report(SCOPE)).used == 50_000


async def test_shutdown_mid_job_keeps_it_and_the_next_start_resumes_it_charged_once(
    database_url: str,
) -> None:
    url = database_url
    ledger = await Ledger.open(url, default_limit=DEFAULT_LIMIT)
    song = SlowSong()
    engine = song_engine(ledger, song)
    request = song_request()
    seen: list[Part] = []
    generating = asyncio.Event()

    async def consume() -> None:
        async for part in engine.handle(request):
            seen.append(part)
            if part == Status("Generating…"):
                generating.set()

    task = asyncio.create_task(consume())
    await generating.wait()
    assert not await engine.drain(0.01)  # the song is still cooking when the grace period ends
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert (await ledger.report(SCOPE)).held == 50_000  # not refunded: the provider is still working
    await ledger.close()

    # The next process: the job is resumed from its checkpoint, never resubmitted.
    ledger = await Ledger.open(url, default_limit=DEFAULT_LIMIT)
    try:
        restarted_song = SlowSong()
        engine = song_engine(ledger, restarted_song)
        [resumption] = await engine.resume_unfinished()
        assert await ledger.sweep_orphans(keep=[resumption.transaction_id]) == 0
        assert resumption.request.destination == DESTINATION
        assert resumption.request.id == request.id
        parts = [part async for part in resumption.parts]
        assert parts == [Status("Still generating…"), SONG]
        assert restarted_song.submitted == []
        assert restarted_song.resumed == [{"work_id": "work-1"}]
        report = await ledger.report(SCOPE)
        assert (report.used, report.held) == (50_000, 0)
        assert [row.status for row in report.recent] == ["charged"]
        job = await JobStore(ledger.database).get(request.id)
        assert job is not None
        assert job.state is JobState.DONE
        assert await engine.resume_unfinished() == []  # delivered once
    finally:
        await ledger.close()


async def test_a_job_that_never_reached_its_provider_is_refunded_with_an_apology(database_url: str) -> None:
    url = database_url
    ledger = await Ledger.open(url, default_limit=DEFAULT_LIMIT)
    song = SlowSong(checkpoint_first=False)
    engine = song_engine(ledger, song)
    stream = engine.handle(song_request())
    assert await anext(stream) == Status("Submitting…")
    await ledger.close()  # the process dies here: no refund, no checkpoint

    ledger = await Ledger.open(url, default_limit=DEFAULT_LIMIT)
    try:
        [resumption] = await song_engine(ledger, SlowSong()).resume_unfinished()
        [apology] = [part async for part in resumption.parts]
        assert isinstance(apology, Failure)
        assert "I restarted before your request for a song (“the sea”)" in apology.message
        assert "Nothing was charged" in apology.message
        report = await ledger.report(SCOPE)
        assert (report.used, report.held, report.recent[0].status) == (0, 0, "refunded")
    finally:
        await ledger.close()
        await crashed(stream)


async def test_a_crash_during_delivery_delivers_again_and_charges_once(database_url: str) -> None:
    url = database_url
    ledger = await Ledger.open(url, default_limit=DEFAULT_LIMIT)
    song = SlowSong()
    song.finish.set()
    stream = song_engine(ledger, song).handle(song_request())
    while not isinstance(await anext(stream), Audio):
        pass
    await ledger.close()  # dies while the platform upload is in flight: was it delivered? unknown

    ledger = await Ledger.open(url, default_limit=DEFAULT_LIMIT)
    try:
        [resumption] = await song_engine(ledger, SlowSong()).resume_unfinished()
        assert [part async for part in resumption.parts][-1] == SONG  # at least once
        report = await ledger.report(SCOPE)
        assert (report.used, report.held) == (50_000, 0)
    finally:
        await ledger.close()
        await crashed(stream)


async def test_a_delivered_job_is_only_charged_after_a_restart(database_url: str) -> None:
    url = database_url
    ledger = await Ledger.open(url, default_limit=DEFAULT_LIMIT)
    song = SlowSong()
    song.finish.set()
    request = song_request()
    stream = song_engine(ledger, song).handle(request)
    while not isinstance(await anext(stream), Audio):
        pass
    await JobStore(ledger.database).advance(
        request.id, JobState.DELIVERED
    )  # the upload returned, then: crash
    await ledger.close()

    ledger = await Ledger.open(url, default_limit=DEFAULT_LIMIT)
    try:
        engine = song_engine(ledger, SlowSong())
        assert await engine.resume_unfinished() == []  # nothing to deliver again
        report = await ledger.report(SCOPE)
        assert (report.used, report.held) == (50_000, 0)
        job = await JobStore(ledger.database).get(request.id)
        assert job is not None
        assert job.state is JobState.DONE
    finally:
        await ledger.close()
        await crashed(stream)


async def crashed(stream: AsyncIterator[Part]) -> None:
    """Dispose of a stream whose process "died": its clean-up finds the database gone."""
    with contextlib.suppress(ValueError):
        await stream.aclose()  # type: ignore[attr-defined]


async def test_suspend_ends_a_checkpointed_job_with_a_notice_and_keeps_it_for_the_next_start(
    database_url: str,
) -> None:
    url = database_url
    ledger = await Ledger.open(url, default_limit=DEFAULT_LIMIT)
    engine = song_engine(ledger, SlowSong())
    request = song_request()
    stream = engine.handle(request)
    while await anext(stream) != Status("Generating…"):
        pass
    assert not await engine.drain(0.01)
    engine.suspend()
    rest = [part async for part in stream]
    assert len(rest) == 1
    assert isinstance(rest[0], TextDelta)
    assert "I'm restarting" in rest[0].text
    assert "post it here when I'm back" in rest[0].text
    assert (await ledger.report(SCOPE)).held == 50_000
    job = await JobStore(ledger.database).get(request.id)
    assert job is not None
    assert job.state is JobState.RUNNING
    await ledger.close()

    ledger = await Ledger.open(url, default_limit=DEFAULT_LIMIT)
    try:
        [resumption] = await song_engine(ledger, SlowSong()).resume_unfinished()
        assert [part async for part in resumption.parts][-1] == SONG
        report = await ledger.report(SCOPE)
        assert (report.used, report.held) == (50_000, 0)
    finally:
        await ledger.close()


async def test_a_resumed_job_suspended_again_keeps_its_hold_for_the_start_after(database_url: str) -> None:
    url = database_url
    ledger = await Ledger.open(url, default_limit=DEFAULT_LIMIT)
    stream = song_engine(ledger, SlowSong()).handle(song_request())
    while await anext(stream) != Status("Generating…"):
        pass
    await ledger.close()
    await crashed(stream)

    ledger = await Ledger.open(url, default_limit=DEFAULT_LIMIT)
    engine = song_engine(ledger, SlowSong(wait_when_resumed=True))
    [resumption] = await engine.resume_unfinished()
    resumed = resumption.parts
    assert await anext(resumed) == Status("Still generating…")
    engine.suspend()  # a second shutdown while the resumed song still cooks
    rest = [part async for part in resumed]
    assert isinstance(rest[-1], TextDelta) and "I'm restarting" in rest[-1].text
    assert (await ledger.report(SCOPE)).held == 50_000  # still the provider's job: not refunded
    await ledger.close()

    ledger = await Ledger.open(url, default_limit=DEFAULT_LIMIT)
    try:
        [third] = await song_engine(ledger, SlowSong()).resume_unfinished()
        assert [part async for part in third.parts][-1] == SONG
        report = await ledger.report(SCOPE)
        assert (report.used, report.held) == (50_000, 0)
    finally:
        await ledger.close()


async def test_a_resumed_job_is_remembered_in_the_conversation_it_was_asked_in(database_url: str) -> None:
    url = database_url
    ledger = await Ledger.open(url, default_limit=DEFAULT_LIMIT)
    stream = song_engine(ledger, SlowSong()).handle(song_request(conversation="test:thread:7"))
    while await anext(stream) != Status("Generating…"):
        pass
    await ledger.close()
    await crashed(stream)

    ledger = await Ledger.open(url, default_limit=DEFAULT_LIMIT)
    try:
        engine = song_engine(ledger, SlowSong())
        [resumption] = await engine.resume_unfinished()
        assert resumption.request.conversation == "test:thread:7"
        assert [part async for part in resumption.parts][-1] == SONG
        history = await ConversationStore(ledger.database).history("test:thread:7")
        assert [(turn.role, turn.text, turn.intent) for turn in history] == [
            ("user", "the sea", Intent.SONG),
            ("assistant", "", None),
        ]
        assert history[-1].media == (Delivered(Intent.SONG, "The Sea"),)
        assert [turn_text(turn) for turn in history] == ["/song the sea", "[delivered song: The Sea]"]
    finally:
        await ledger.close()


async def test_suspend_refunds_a_job_without_a_checkpoint_and_says_so(ledger: Ledger) -> None:
    song = SlowSong(checkpoint_first=False)
    engine = song_engine(ledger, song)
    request = song_request()
    stream = engine.handle(request)
    while await anext(stream) != Status("Generating…"):
        pass
    engine.suspend()
    [stopped] = [part async for part in stream]  # nothing to resume from: it ends now, refunded
    assert isinstance(stopped, Failure)
    assert stopped.message == RESTARTING
    report = await ledger.report(SCOPE)
    assert (report.used, report.held, report.recent[0].status) == (0, 0, "refunded")
    job = await JobStore(ledger.database).get(request.id)
    assert job is not None and job.state is JobState.REFUNDED
    assert await song_engine(ledger, SlowSong()).resume_unfinished() == []


async def test_finished_jobs_and_their_prompts_expire_unfinished_ones_stay(ledger: Ledger) -> None:
    jobs = JobStore(ledger.database)
    for number, state in enumerate((JobState.DONE, JobState.REFUNDED, JobState.RUNNING, JobState.DONE)):
        request = Request(scope=SCOPE, user="ann", text=f"prompt {number}", destination=DESTINATION)
        hold = await ledger.reserve(SCOPE, 1, user="ann", service="song", prompt="p", request_id=request.id)
        assert not isinstance(hold, Refusal)
        await jobs.create(request, intent=Intent.SONG, prompt=f"prompt {number}", hold=hold, state=state)
    # The first three were last touched long ago; the fourth just now.
    await ledger.database.write(
        "UPDATE jobs SET updated_at = '2000-01-01T00:00:00+00:00' WHERE prompt != 'prompt 3'"
    )

    assert await jobs.purge(timedelta(days=30)) == 2

    left = await ledger.database.fetchall("SELECT prompt, state FROM jobs ORDER BY prompt")
    assert left == [("prompt 2", "running"), ("prompt 3", "done")]


async def test_job_rows_are_stamped_by_the_database_clock(database_url: str) -> None:
    clock = FakeClock(utc_start=datetime(2026, 3, 1, tzinfo=UTC))
    ledger = await Ledger.open(database_url, default_limit=DEFAULT_LIMIT, clock=clock)
    try:
        jobs = JobStore(ledger.database)
        request = Request(scope=SCOPE, user="ann", text="the sea", destination=DESTINATION)
        hold = await ledger.reserve(SCOPE, 1, user="ann", service="song", prompt="p", request_id=request.id)
        assert not isinstance(hold, Refusal)
        await jobs.create(request, intent=Intent.SONG, prompt="the sea", hold=hold, state=JobState.DONE)
        assert await jobs.purge(timedelta(days=30)) == 0
        await clock.advance(timedelta(days=31).total_seconds())
        assert await jobs.purge(timedelta(days=30)) == 1
    finally:
        await ledger.close()


FOX = Image(data=b"\x89PNG....", filename="a-fox.png", mime_type="image/png", prompt="a fox")


@dataclass
class PaintedFox:
    """An image provider that bills on delivery of the picture (no checkpoint)."""

    intent: Intent = Intent.IMAGE
    demo: bool = False

    def estimate(self, prompt: str) -> int:
        return 40_000

    async def generate(self, prompt: str, request: Request) -> AsyncIterator[GeneratorPart]:
        yield Status("Painting…")
        yield FOX


def fox_engine(ledger: Ledger) -> Engine:
    generators = dict(demo_engine(ledger).generators)
    generators[Intent.IMAGE] = PaintedFox()
    return Engine(ledger=ledger, generators=generators, jobs=JobStore(ledger.database))


def fox_request() -> Request:
    return Request(scope=SCOPE, user="ann", text="a fox", intent=Intent.IMAGE, destination=DESTINATION)


async def test_media_the_platform_refused_is_charged_and_kept_for_a_later_delivery(ledger: Ledger) -> None:
    request = fox_request()
    stream = fox_engine(ledger).handle(request)
    while not isinstance(await anext(stream), Image):
        pass
    await stream.aclose()  # the upload failed (404 Unknown Channel): the adapter stops reading

    report = await ledger.report(SCOPE)
    assert (report.used, report.held, report.recent[0].status) == (40_000, 0, "charged")
    jobs = JobStore(ledger.database)
    job = await jobs.get(request.id)
    assert job is not None and job.state is JobState.UNDELIVERED
    assert await jobs.result(request.id) == FOX
    assert [kept.id for kept in await jobs.undelivered(SCOPE)] == [request.id]
    assert await fox_engine(ledger).resume_unfinished() == []  # not delivered to a dead channel again


async def test_an_error_thrown_in_by_the_consumer_charges_paid_media_and_goes_back_to_it(
    ledger: Ledger,
) -> None:
    request = fox_request()
    stream = fox_engine(ledger).handle(request)
    while not isinstance(await anext(stream), Image):
        pass
    with contextlib.suppress(LookupError):
        await stream.athrow(LookupError("404 Unknown Channel"))  # type: ignore[attr-defined]
    assert (await ledger.report(SCOPE)).used == 40_000
    assert await JobStore(ledger.database).result(request.id) == FOX


async def test_a_submitted_job_whose_reader_vanished_is_charged_and_keeps_its_checkpoint(
    ledger: Ledger,
) -> None:
    engine = song_engine(ledger, SlowSong())
    request = song_request()
    generating = asyncio.Event()

    async def consume() -> None:
        async for part in engine.handle(request):
            if part == Status("Generating…"):
                generating.set()

    reader = asyncio.create_task(consume())
    await generating.wait()
    reader.cancel()  # the adapter's task died mid-poll; the provider has (and bills for) the job
    await asyncio.gather(reader, return_exceptions=True)

    report = await ledger.report(SCOPE)
    assert (report.used, report.held, report.recent[0].status) == (50_000, 0, "charged")
    job = await JobStore(ledger.database).get(request.id)
    assert job is not None
    assert (job.state, job.checkpoint) == (JobState.UNDELIVERED, {"work_id": "work-1"})


async def test_work_the_provider_never_had_is_still_refunded_when_the_reader_leaves(ledger: Ledger) -> None:
    stream = song_engine(ledger, SlowSong(checkpoint_first=False)).handle(song_request())
    assert await anext(stream) == Status("Submitting…")
    await stream.aclose()
    report = await ledger.report(SCOPE)
    assert (report.used, report.held, report.recent[0].status) == (0, 0, "refunded")
