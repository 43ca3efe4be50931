"""Process leases: processes sharing a database never release or resume each other's live work;
a dead process's holds are taken over once its lease runs out; failed refunds are swept."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sqlite3
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.accounts import BudgetReport
from core.engine import Engine
from core.errors import GenerationError
from core.jobs import JobState, JobStore, Resumption
from core.leases import LEASE_RENEW_S, LEASE_TTL_S, Leases
from core.ledger import Hold, Ledger, Refusal
from core.parts import Destination, Failure, GeneratorPart, Intent, Part, Request, Scope, Status
from tests.clock import FakeClock, settle
from tests.conftest import demo_engine
from tests.test_jobs import SONG, SlowSong, crashed, song_engine, song_request

pytestmark = pytest.mark.backends

SCOPE = Scope("discord", "guild-1")


async def reserve(ledger: Ledger, amount: int) -> Hold | Refusal:
    return await ledger.reserve(SCOPE, amount, user="u", service="research", prompt="p", request_id="r")


async def two_processes(url: str, clock: FakeClock, *, limit: int) -> tuple[Ledger, Ledger]:
    first = await Ledger.open(url, default_limit=limit, clock=clock)
    return first, await Ledger.open(url, default_limit=limit, clock=clock)


async def test_a_second_process_never_releases_a_live_processs_holds(database_url: str) -> None:
    clock = FakeClock()
    a, b = await two_processes(database_url, clock, limit=1_000_000)  # $1
    try:
        assert isinstance(await reserve(a, 500_000), Hold)  # A: research, $0.50, running
        assert await b.sweep_orphans() == 0  # B starts: A's hold is live
        assert isinstance(await reserve(b, 500_000), Hold)
        assert isinstance(await reserve(a, 500_000), Refusal)  # never four answers on a $1 budget
        for _ in range(12):  # two minutes of A working, renewing as it goes
            await clock.advance(LEASE_RENEW_S)
            await a.leases.renew()
            await b.leases.renew()
        assert await b.leases.sweep() == 0
        assert (await b.report(SCOPE)).held == 1_000_000
    finally:
        await a.close()
        await b.close()


async def test_a_process_that_stopped_renewing_loses_its_holds_to_the_sweep(database_url: str) -> None:
    clock = FakeClock()
    a, b = await two_processes(database_url, clock, limit=1_000_000)
    try:
        assert isinstance(await reserve(a, 500_000), Hold)
        await a.database.close()  # A dies (kill -9 on another host): no more renewals
        await clock.advance(LEASE_TTL_S - 1)
        assert await b.leases.sweep() == 0  # not yet: its lease still runs
        await clock.advance(2)
        assert await b.leases.sweep() == 1
        report = await b.report(SCOPE)
        assert (report.held, report.used, report.recent[0].status) == (0, 0, "orphaned")
    finally:
        await b.close()


async def test_two_engines_on_one_database_never_steal_each_others_jobs(database_url: str) -> None:
    clock = FakeClock()
    a, b = await two_processes(database_url, clock, limit=10_000_000)
    song = SlowSong()
    request = song_request()
    stream = song_engine(a, song).handle(request)
    try:
        while await anext(stream) != Status("Generating…"):
            pass
        other = song_engine(b, SlowSong())
        assert await other.resume_unfinished() == []  # A is still making it
        assert await b.sweep_orphans() == 0
        song.finish.set()
        assert [part async for part in stream] == [SONG]
        assert await other.resume_unfinished() == []
        report = await b.report(SCOPE)
        assert (report.used, report.held, [row.status for row in report.recent]) == (50_000, 0, ["charged"])
    finally:
        await a.close()
        await b.close()


async def test_a_dead_processs_job_is_taken_over_once_its_lease_runs_out(database_url: str) -> None:
    clock = FakeClock()
    a, b = await two_processes(database_url, clock, limit=10_000_000)
    stream = song_engine(a, SlowSong()).handle(song_request())
    try:
        while await anext(stream) != Status("Generating…"):
            pass
        await a.database.close()  # A dies mid-song without a word
        other = song_engine(b, SlowSong())
        assert await other.resume_unfinished() == []
        await clock.advance(LEASE_TTL_S + 1)
        [resumption] = await other.resume_unfinished()
        assert [part async for part in resumption.parts][-1] == SONG
        assert await b.sweep_orphans(keep=[resumption.transaction_id]) == 0
        report = await b.report(SCOPE)
        assert (report.used, report.held) == (50_000, 0)
    finally:
        with contextlib.suppress(ValueError):
            await stream.aclose()  # type: ignore[attr-defined]
        await b.close()


@dataclass
class FailsWhenLetGo:
    """An image provider that fails once the test lets it (while the database is locked)."""

    go: asyncio.Event
    intent: Intent = Intent.IMAGE
    demo: bool = False

    def estimate(self, prompt: str) -> int:
        return 40_000

    async def generate(self, prompt: str, request: Request) -> AsyncIterator[GeneratorPart]:
        yield Status("Painting…")
        await self.go.wait()
        raise GenerationError("The image service is down right now.")


async def test_a_hold_a_failed_refund_left_is_swept_and_the_person_is_told_the_truth(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "locked.db"
    ledger = await Ledger.open(f"sqlite:///{path}", default_limit=10**9, clock=clock, busy_timeout_ms=50)
    generators = dict(demo_engine(ledger).generators)
    provider = FailsWhenLetGo(asyncio.Event())
    generators[Intent.IMAGE] = provider
    engine = Engine(ledger=ledger, generators=generators, jobs=JobStore(ledger.database))
    other = sqlite3.connect(path, isolation_level=None)
    try:
        stream = engine.handle(Request(scope=SCOPE, user="u", text="a fox", intent=Intent.IMAGE))
        assert await anext(stream) == Status("Painting…")
        other.execute("BEGIN IMMEDIATE")  # someone holds the write lock for longer than the busy timeout
        provider.go.set()
        rest: list[Part] = [part async for part in stream]
        other.execute("ROLLBACK")
        [failure] = rest
        assert isinstance(failure, Failure)
        assert "Nothing was charged." not in failure.message
        assert "$0.04 set aside for it is still held" in failure.message
        assert (await ledger.report(SCOPE)).held == 40_000

        await clock.advance(LEASE_TTL_S - 1)
        await ledger.leases.tend()
        assert (await ledger.report(SCOPE)).held == 40_000  # its lease is still running
        await clock.advance(2)
        await ledger.leases.tend()
        report = await ledger.report(SCOPE)
        assert (report.held, report.used, report.recent[0].status) == (0, 0, "orphaned")
    finally:
        other.close()
        await ledger.close()


class CountedLeases(Leases):
    """Leases that report each round of upkeep, so a test waits for the round itself."""

    def __init__(self, ledger: Ledger) -> None:
        super().__init__(ledger.database)
        self.rounds: asyncio.Queue[None] = asyncio.Queue()

    async def tend(self) -> None:
        await super().tend()
        self.rounds.put_nowait(None)


async def test_leases_are_tended_every_renewal_interval(database_url: str) -> None:
    clock = FakeClock()
    ledger = await Ledger.open(database_url, default_limit=1_000_000, clock=clock)
    leases = CountedLeases(ledger)
    maintenance = asyncio.create_task(leases.maintain())
    try:
        await settle()
        assert clock.sleepers == 1
        await clock.advance(LEASE_RENEW_S - 1)
        assert leases.rounds.empty()
        await clock.advance(1)
        await asyncio.wait_for(leases.rounds.get(), 5)
        await clock.advance(LEASE_RENEW_S)
        await asyncio.wait_for(leases.rounds.get(), 5)
    finally:
        maintenance.cancel()
        await asyncio.gather(maintenance, return_exceptions=True)
        await ledger.close()


async def test_holds_of_a_process_on_this_host_that_no_longer_runs_are_released_at_start_up(
    database_url: str,
) -> None:
    finished = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await finished.wait()  # its pid now names no process (kill -9, then a restart)
    ledger = await Ledger.open(database_url, default_limit=1_000_000)
    try:
        dead = Leases(ledger.database, owner=f"{socket.gethostname()}:{finished.pid}:abcd")
        alive = Leases(ledger.database)  # another process of this interpreter, still running
        for leases in (dead, alive):
            hold = await Ledger(ledger.database, default_limit=1_000_000, leases=leases).reserve(
                SCOPE, 1_000, user="u", service="song", prompt="p", request_id=leases.owner
            )
            assert isinstance(hold, Hold)
        assert await ledger.sweep_orphans() == 1  # without waiting for its lease to run out
        report = await ledger.report(SCOPE)
        assert report.held == 1_000
        assert {row.request_id: row.status for row in report.recent} == {
            dead.owner: "orphaned",
            alive.owner: "held",
        }
    finally:
        await ledger.close()


class Deliveries:
    """An adapter's side of the hand-off: which destinations it reaches, and the parts of every
    job handed to it, read to their end as an adapter would."""

    def __init__(self, engine: Engine, *, platform: str = "discord") -> None:
        self.platform = platform
        self.delivered: list[list[Part]] = []
        self._reading: list[asyncio.Task[None]] = []
        self.arrived = asyncio.Event()
        engine.handoff.open(platform, reaches=self.reaches, deliver=self.deliver)

    def reaches(self, destination: Destination) -> bool:
        return destination.platform == self.platform

    def deliver(self, resumption: Resumption) -> None:
        async def read() -> None:
            self.delivered.append([part async for part in resumption.parts])

        self._reading.append(asyncio.create_task(read()))
        self.arrived.set()

    async def done(self) -> list[list[Part]]:
        await asyncio.gather(*self._reading)
        return self.delivered


async def a_song_whose_process_dies(a: Ledger) -> AsyncIterator[Part]:
    """A's song, submitted (its checkpoint saved) and generating when A dies without a word."""
    stream = song_engine(a, SlowSong()).handle(song_request())
    while await anext(stream) != Status("Generating…"):
        pass
    await a.database.close()
    return stream


async def test_a_live_process_takes_over_a_dead_processs_song_and_delivers_it_once(database_url: str) -> None:
    clock = FakeClock()
    a, b = await two_processes(database_url, clock, limit=10_000_000)
    stream = await a_song_whose_process_dies(a)
    song = SlowSong()
    survivor = song_engine(b, song)
    deliveries = Deliveries(survivor)
    try:
        await clock.advance(LEASE_TTL_S - 1)
        await survivor.tend()
        assert deliveries.delivered == [] and (await b.report(SCOPE)).held == 50_000  # A's lease still runs
        await clock.advance(2)
        await survivor.tend()
        [parts] = await deliveries.done()
        assert parts[-1] == SONG
        assert (song.submitted, song.resumed) == ([], [{"work_id": "work-1"}])  # resumed, never resubmitted
        for _ in range(3):  # later rounds find nothing more to take over
            await clock.advance(LEASE_RENEW_S)
            await survivor.tend()
        assert len(deliveries.delivered) == 1
        report = await b.report(SCOPE)
        assert (report.used, report.held, [row.status for row in report.recent]) == (50_000, 0, ["charged"])
        job = await JobStore(b.database).get(song_request_id(report))
        assert job is not None and job.state is JobState.DONE
    finally:
        with contextlib.suppress(ValueError):
            await stream.aclose()  # type: ignore[attr-defined]
        await b.close()


async def test_a_dead_processs_job_that_never_reached_its_provider_is_refunded_by_the_survivor(
    database_url: str,
) -> None:
    clock = FakeClock()
    a, b = await two_processes(database_url, clock, limit=10_000_000)
    stream = song_engine(a, SlowSong(checkpoint_first=False)).handle(song_request())
    assert await anext(stream) == Status("Submitting…")
    await a.database.close()  # A dies before its provider had the job
    survivor = song_engine(b, SlowSong())
    deliveries = Deliveries(survivor)
    try:
        await clock.advance(LEASE_TTL_S + 1)
        await survivor.tend()
        [[apology]] = await deliveries.done()
        assert isinstance(apology, Failure)
        assert apology.message.startswith("I was interrupted before your request for a song (“the sea”)")
        report = await b.report(SCOPE)
        assert (report.used, report.held, report.recent[0].status) == (0, 0, "refunded")
        note = await b.database.fetchone("SELECT note FROM transactions WHERE id = ?", (report.recent[0].id,))
        assert note == ("its process stopped before the provider had the job",)
    finally:
        await crashed(stream)
        await b.close()


def song_request_id(report: BudgetReport) -> str:
    [row] = report.recent
    return row.request_id


async def test_of_two_live_processes_exactly_one_takes_a_dead_processs_job_over(database_url: str) -> None:
    clock = FakeClock()
    a = await Ledger.open(database_url, default_limit=10_000_000, clock=clock)
    survivors = [await Ledger.open(database_url, default_limit=10_000_000, clock=clock) for _ in range(2)]
    stream = await a_song_whose_process_dies(a)
    engines = [song_engine(ledger, SlowSong()) for ledger in survivors]
    deliveries = [Deliveries(engine) for engine in engines]
    try:
        await clock.advance(LEASE_TTL_S + 1)
        await asyncio.gather(*(engine.tend() for engine in engines))
        delivered = [await each.done() for each in deliveries]
        assert sorted(len(parts) for parts in delivered) == [0, 1]
        assert sum(len(engine.generators[Intent.SONG].resumed) for engine in engines) == 1  # type: ignore[attr-defined]
        report = await survivors[0].report(SCOPE)
        assert (report.used, report.held) == (50_000, 0)
    finally:
        with contextlib.suppress(ValueError):
            await stream.aclose()  # type: ignore[attr-defined]
        for ledger in survivors:
            await ledger.close()


async def test_a_process_leaves_a_dead_processs_job_it_cannot_deliver_and_its_money_held(
    database_url: str,
) -> None:
    clock = FakeClock()
    a, b = await two_processes(database_url, clock, limit=10_000_000)
    stream = await a_song_whose_process_dies(a)
    slack_only = song_engine(b, SlowSong())
    deliveries = Deliveries(slack_only, platform="slack")  # the song was asked on Discord
    try:
        await clock.advance(LEASE_TTL_S + 1)
        await slack_only.tend()
        assert await deliveries.done() == []
        assert (await b.report(SCOPE)).held == 50_000  # paid work: kept for a Discord process
        discord = Deliveries(slack_only)  # a Discord adapter starts in that process
        await slack_only.tend()
        [parts] = await discord.done()
        assert parts[-1] == SONG
        assert (await b.report(SCOPE)).used == 50_000
    finally:
        with contextlib.suppress(ValueError):
            await stream.aclose()  # type: ignore[attr-defined]
        await b.close()


async def test_a_process_never_takes_over_its_own_job_when_its_lease_lapsed(database_url: str) -> None:
    clock = FakeClock()
    ledger = await Ledger.open(database_url, default_limit=10_000_000, clock=clock)
    song = SlowSong()
    engine = song_engine(ledger, song)
    deliveries = Deliveries(engine)
    stream = engine.handle(song_request())
    try:
        while await anext(stream) != Status("Generating…"):
            pass
        await clock.advance(LEASE_TTL_S + 1)  # a stalled event loop: no renewal in time
        await engine.tend()
        assert await deliveries.done() == [] and song.resumed == []
        song.finish.set()
        assert [part async for part in stream][-1] == SONG
        assert (await ledger.report(SCOPE)).used == 50_000
    finally:
        await ledger.close()


async def test_lease_timings_are_the_processs_own(database_url: str) -> None:
    clock = FakeClock()
    a = await Ledger.open(database_url, default_limit=10_000_000, clock=clock, lease_ttl_s=3, lease_renew_s=1)
    b = await Ledger.open(database_url, default_limit=10_000_000, clock=clock, lease_ttl_s=3, lease_renew_s=1)
    stream = await a_song_whose_process_dies(a)
    survivor = song_engine(b, SlowSong())
    deliveries = Deliveries(survivor)
    rounds: asyncio.Queue[None] = asyncio.Queue()
    tend = survivor.tend

    async def counted_tend() -> None:
        await tend()
        rounds.put_nowait(None)

    survivor.tend = counted_tend  # type: ignore[method-assign]
    maintenance = asyncio.create_task(survivor.maintain())
    try:
        await settle()
        for _ in range(3):  # rounds at 1, 2 and 3 s: the lease runs until 3 s
            await clock.advance(1)
            await asyncio.wait_for(rounds.get(), 5)
        assert deliveries.delivered == []
        await clock.advance(1)  # the round at 4 s finds it expired
        await asyncio.wait_for(rounds.get(), 5)
        await asyncio.wait_for(deliveries.arrived.wait(), 5)
        [parts] = await deliveries.done()
        assert parts[-1] == SONG
    finally:
        maintenance.cancel()
        await asyncio.gather(maintenance, return_exceptions=True)
        with contextlib.suppress(ValueError):
            await stream.aclose()  # type: ignore[attr-defined]
        await b.close()
