"""Restarts on Discord: a song left running at shutdown is delivered by the next process, once,
to where it was asked for, and charged once; readiness follows the gateway connection."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import discord
import pytest

from adapters.discord import DiscordConfig, run_discord
from core.demo.text import chat_answer
from core.engine import Engine
from core.health import Readiness
from core.jobs import JobState, JobStore
from core.ledger import Hold, Ledger
from core.parts import Audio, Checkpoint, Destination, GeneratorPart, Intent, Request, Scope, Status
from tests.clock import FakeClock, settle
from tests.conftest import DEFAULT_LIMIT, SONG_COST, demo_engine
from tests.discord.conftest import AutoClock, StartBot, settled_report
from tests.fakes.fake_discord import FakeDiscord, FakeMessage

GREEN, RED = 0x1F8B4C, 0xE74C3C
ALICE = FakeDiscord.user("111", "alice")
SONG = Audio(
    data=b"RIFF" + bytes(256),
    filename="the-sea.wav",
    mime_type="audio/wav",
    title="The Sea",
    prompt="the sea",
)


class PausedSong:
    """A song provider that takes the job (a checkpoint) and then keeps it for longer than the
    bot lives; the next process picks it up from the checkpoint and gets the song."""

    intent = Intent.SONG
    demo = False

    def __init__(self) -> None:
        self.submitted: list[str] = []
        self.resumed: list[dict[str, str]] = []
        self.waiting = asyncio.Event()

    def estimate(self, prompt: str) -> int:
        return SONG_COST

    async def generate(self, prompt: str, request: Request) -> AsyncIterator[GeneratorPart]:
        yield Status("Submitting…")
        self.submitted.append(prompt)
        yield Checkpoint({"work_id": f"work-{len(self.submitted)}"})
        self.waiting.set()  # the engine has stored the checkpoint by now
        yield Status("Composing…")
        await asyncio.Event().wait()

    async def resume(
        self, checkpoint: Mapping[str, str], prompt: str, request: Request
    ) -> AsyncIterator[GeneratorPart]:
        self.resumed.append(dict(checkpoint))
        yield Status("Still composing…")
        yield SONG


def song_engine(ledger: Ledger, song: PausedSong) -> Engine:
    generators = dict(demo_engine(ledger).generators)
    generators[Intent.SONG] = song
    return Engine(ledger=ledger, generators=generators, jobs=JobStore(ledger.database))


def prompt(text: str) -> list[dict[str, object]]:
    return [{"name": "prompt", "type": 3, "value": text}]


def with_audio(fake: FakeDiscord) -> list[FakeMessage]:
    return [
        m for m in fake.channel_messages() if any(a.filename.endswith(".wav") for a in m.current.attachments)
    ]


async def stop(bot: asyncio.Task[None]) -> None:
    bot.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await bot


async def resume_in_next_process(url: str) -> tuple[Ledger, PausedSong, Engine, list[object]]:
    ledger = await Ledger.open(url, default_limit=DEFAULT_LIMIT)
    song = PausedSong()
    engine = song_engine(ledger, song)
    resumptions = await engine.resume_unfinished()
    assert await ledger.sweep_orphans(keep=[r.transaction_id for r in resumptions]) == 0
    return ledger, song, engine, list(resumptions)


async def test_a_suspended_song_is_delivered_by_the_next_process_once_and_charged_once(
    fake: FakeDiscord, start_bot: StartBot, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/bot.db"
    scope = Scope("discord", fake.guild_id)
    frozen = FakeClock()
    ledger = await Ledger.open(url, default_limit=DEFAULT_LIMIT)
    try:
        song = PausedSong()
        engine = song_engine(ledger, song)
        bot = await start_bot(engine, bot_ledger=ledger, bot_clock=frozen)
        interaction = await fake.slash("song", prompt("the sea"), user=ALICE)
        await asyncio.wait_for(song.waiting.wait(), timeout=10)

        # The service's shutdown: the grace period runs out, checkpointed jobs are suspended and
        # their streams end, then the adapter is cancelled. The last edit, showing the restart
        # notice, is still waiting (to retry a server error, or for the channel's edit token;
        # time is frozen) when the cancellation comes.
        fake.fail("PATCH", r"^/channels/\d+/messages/\d+$")
        assert not await engine.drain(0)
        engine.suspend()
        assert await engine.drain(5)
        bot.cancel()
        await settle()
        assert not bot.done(), "closing waits for the answer's last edit"
        await frozen.advance(2.0)  # the surface's first retry of a final edit
        with contextlib.suppress(asyncio.CancelledError):
            await bot

        anchor, progress = fake.channel_messages()
        assert anchor.id == interaction.original
        assert progress.reference == anchor.id
        assert progress.current.description.startswith("⏸️ I'm restarting. A song is still being made")
        assert progress.current.colour == GREEN
        report = await ledger.report(scope)
        assert (report.used, report.held) == (0, SONG_COST), "the hold waits for the next process"
    finally:
        await ledger.close()

    ledger, restarted, engine, resumptions = await resume_in_next_process(url)
    try:
        await start_bot(engine, bot_ledger=ledger, resumptions=resumptions)
        await fake.wait_until(lambda: bool(with_audio(fake)))
        report = await settled_report(ledger, scope)

        [delivered] = with_audio(fake)
        assert delivered.reference == anchor.id, "a reply to the message the song was promised under"
        assert delivered.interaction_token is None, "a channel message: the interaction token is long dead"
        [audio] = delivered.current.attachments
        assert audio.data == SONG.data
        assert delivered.current.embeds[0]["title"] == "🎵 The Sea"
        assert (restarted.submitted, restarted.resumed) == ([], [{"work_id": "work-1"}]), "never resubmitted"
        assert (report.used, report.held) == (SONG_COST, 0)
        assert [row.status for row in report.recent] == ["charged"]
        assert await song_engine(ledger, PausedSong()).resume_unfinished() == [], "delivered once"
        assert len(fake.channel_messages()) == 3
    finally:
        await ledger.close()


async def test_stopped_while_the_provider_works_it_says_so_and_mentions_the_requester_later(
    fake: FakeDiscord, start_bot: StartBot, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/bot.db"
    scope = Scope("discord", fake.guild_id)
    ledger = await Ledger.open(url, default_limit=DEFAULT_LIMIT)
    try:
        song = PausedSong()
        engine = song_engine(ledger, song)
        bot = await start_bot(engine, bot_ledger=ledger)
        asked = await fake.mention("write a song about the sea", author=ALICE)
        await asyncio.wait_for(song.waiting.wait(), timeout=10)

        # The engine ends the stream itself and keeps the checkpointed job, so the message must
        # not say "nothing was charged, ask again".
        await engine.shutdown(0)
        await stop(bot)

        [progress] = fake.channel_messages()
        assert progress.reference == asked
        assert progress.current.description == (
            "⏸️ I'm restarting. A song is still being made, and I'll post it here when I'm back."
        )
        [job] = await JobStore(ledger.database).unfinished()
        assert job.state is JobState.RUNNING
        assert (await ledger.report(scope)).held == SONG_COST
    finally:
        await ledger.close()

    fake.messages[asked].deleted = True  # the question is gone by the time the song is ready
    ledger, _, engine, resumptions = await resume_in_next_process(url)
    try:
        await start_bot(engine, bot_ledger=ledger, resumptions=resumptions)
        await fake.wait_until(lambda: bool(with_audio(fake)))
        report = await settled_report(ledger, scope)

        [delivered] = with_audio(fake)
        assert delivered.reference is None
        assert delivered.current.content == "<@111>"
        [post] = [
            call
            for call in fake.calls_to("POST", rf"^/channels/{fake.channel_id}/messages$")
            if call.body.get("content") == "<@111>"
        ]
        assert [str(user) for user in post.body["allowed_mentions"]["users"]] == ["111"], "pinged"
        assert (report.used, report.held) == (SONG_COST, 0)
        assert [row.status for row in report.recent] == ["charged"]
    finally:
        await ledger.close()


class RecordingReadiness(Readiness):
    def __init__(self) -> None:
        super().__init__()
        self.marks: list[bool] = []

    def mark(self, name: str, ready: bool) -> None:
        self.marks.append(ready)
        super().mark(name, ready)


async def test_readiness_follows_the_connection_through_a_reconnect_and_the_stop(
    fake: FakeDiscord, ledger: Ledger, clock: AutoClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)
    monkeypatch.setattr(
        discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    )
    config = DiscordConfig(
        token=fake.token, api_url=fake.api_url, gateway_url=fake.gateway_url, guild_ready_timeout=0.01
    )
    readiness = RecordingReadiness()
    bot = asyncio.create_task(
        run_discord(config, engine=demo_engine(ledger), ledger=ledger, clock=clock, readiness=readiness)
    )
    try:
        await asyncio.sleep(0)
        assert readiness.snapshot() == {"discord": False}
        await fake.wait_until(lambda: readiness.ready)

        await fake.mention("hello there", author=ALICE)
        await fake.wait_until(lambda: any(m.current.colour == GREEN for m in fake.channel_messages()))
        assert fake.channel_messages()[0].current.description == chat_answer("hello there").strip()

        await fake.reconnect()
        await fake.wait_until(lambda: bool(fake.resumed) and readiness.ready)
        assert readiness.marks == [True, False, True]
    finally:
        await stop(bot)
    assert readiness.snapshot() == {"discord": False}
    assert not readiness.ready


async def test_a_request_the_provider_never_got_is_apologised_for_in_its_thread(
    fake: FakeDiscord, start_bot: StartBot, ledger: Ledger
) -> None:
    # What a process killed between reserving and submitting leaves behind: a job row and a hold.
    scope = Scope("discord", fake.guild_id)
    request = Request(
        scope=scope,
        user="111",
        text="the sea",
        intent=Intent.SONG,
        destination=Destination(
            platform="discord", channel=fake.thread_id, extra={"guild": fake.guild_id, "user": "111"}
        ),
    )
    hold = await ledger.reserve(
        scope, SONG_COST, user="111", service="song", prompt="the sea", request_id=request.id
    )
    assert isinstance(hold, Hold)
    await JobStore(ledger.database).create(request, intent=Intent.SONG, prompt="the sea", hold=hold)

    song = PausedSong()
    engine = song_engine(ledger, song)
    resumptions = await engine.resume_unfinished()
    await start_bot(engine, resumptions=resumptions)
    await fake.wait_until(lambda: bool(fake.channel_messages(fake.thread_id)))

    [apology] = fake.channel_messages(fake.thread_id)
    assert apology.current.content == "<@111>"
    assert apology.current.description.startswith("⚠️ I restarted before your request for a song (“the sea”)")
    assert apology.current.colour == RED
    assert song.submitted == song.resumed == []
    report = await ledger.report(scope)
    assert (report.used, report.held, [row.status for row in report.recent]) == (0, 0, ["refunded"])
