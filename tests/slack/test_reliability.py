"""Slack under restarts and faults: destinations, readiness, shutdown mid-answer, resumed songs,
rate limits and server errors, each checked in the thread and in the ledger."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from adapters.slack import SlackBot, run_slack
from core.engine import Engine
from core.health import Readiness
from core.jobs import JobState, JobStore
from core.ledger import Ledger
from core.parts import Destination, GeneratorPart, Intent, Request, TextDelta
from core.render import FAILURE_PREFIX, STREAMING_MARKER
from tests.clock import FakeClock
from tests.conftest import CHAT_COST, DEFAULT_LIMIT, IMAGE_COST, SONG_COST
from tests.fakes.fake_slack import ALICE, GENERAL, TEAM_ID, Call, FakeSlack, Fault, Message
from tests.slack.conftest import (
    SCOPE,
    GatedChat,
    Harness,
    StartHttp,
    engine_with,
    http_config,
    run_clock_until,
    running,
    tick,
)
from tests.slack.test_socket_mode import socket_config
from tests.test_jobs import SlowSong, song_engine


@dataclass
class Recording:
    """A generator for ``intent`` that answers at once and keeps the requests it was given."""

    intent: Intent
    demo: bool = True
    requests: list[Request] = field(default_factory=list)

    def estimate(self, prompt: str) -> int:
        return CHAT_COST

    async def generate(self, prompt: str, request: Request) -> AsyncIterator[GeneratorPart]:
        self.requests.append(request)
        yield TextDelta("Done.")


class RecordingReadiness(Readiness):
    """Readiness that also remembers every change, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.marks: list[bool] = []

    def mark(self, name: str, ready: bool) -> None:
        super().mark(name, ready)
        self.marks.append(ready)


async def until(condition: Callable[[], object], *, within: float = 10) -> None:
    """For changes the fake Slack doesn't see happen (a message the client received)."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 (readiness and the engine offer no event to wait on)
            await asyncio.sleep(0.01)


def anchor_of(slack: FakeSlack) -> Message:
    [anchor] = slack.top_level(GENERAL)
    return anchor


# --- where answers go -----------------------------------------------------------------------------


async def test_a_mention_carries_its_thread_as_the_destination(
    start_http: StartHttp, ledger: Ledger, slack: FakeSlack
) -> None:
    chat = Recording(Intent.CHAT)
    harness = await start_http(engine_with(ledger, chat))
    payload = await harness.mention("hello", thread_ts="1790000000.000042")

    [request] = chat.requests
    assert request.destination == Destination(
        platform="slack",
        channel=GENERAL,
        thread="1790000000.000042",
        message=payload["event"]["ts"],
        extra={"team": TEAM_ID, "user": ALICE},
    )


async def test_a_slash_command_carries_its_anchor_as_the_destination(
    start_http: StartHttp, ledger: Ledger, slack: FakeSlack
) -> None:
    song = Recording(Intent.SONG)
    harness = await start_http(engine_with(ledger, song))
    await harness.command("song", "a sea shanty")

    anchor = anchor_of(slack)
    [request] = song.requests
    assert request.destination == Destination(
        platform="slack",
        channel=GENERAL,
        thread=anchor.ts,
        message=anchor.ts,
        extra={"team": TEAM_ID, "user": ALICE},
    )


# --- readiness ------------------------------------------------------------------------------------


async def test_readiness_follows_the_http_listener(slack: FakeSlack, engine: Engine, ledger: Ledger) -> None:
    readiness = Readiness()
    bot = SlackBot(http_config(slack), engine=engine, ledger=ledger, readiness=readiness)
    async with running(bot):
        assert readiness.snapshot() == {"slack": True}
    assert readiness.snapshot() == {"slack": False}

    readiness = Readiness()
    refused = SlackBot(
        http_config(slack, bot_token="xoxb-wrong"), engine=engine, ledger=ledger, readiness=readiness
    )
    with pytest.raises(Exception, match="SLACK_BOT_TOKEN"):
        await refused.start()
    assert readiness.snapshot() == {"slack": False}


async def test_readiness_follows_the_socket_mode_connection(
    slack: FakeSlack, engine: Engine, ledger: Ledger
) -> None:
    readiness = RecordingReadiness()
    bot = SlackBot(socket_config(slack), engine=engine, ledger=ledger, readiness=readiness)
    async with running(bot):
        await slack.wait_connected()
        assert readiness.snapshot() == {"slack": True}
        await until(lambda: readiness.marks == [True, True])  # connected, then Slack's hello
        await slack.ask_to_reconnect()
        await until(lambda: slack.socket_connections == 2 and readiness.marks[-1])
        assert readiness.marks == [True, True, False, True]
    assert readiness.snapshot() == {"slack": False}


# --- shutdown -------------------------------------------------------------------------------------


async def test_stopping_mid_answer_finishes_the_stream_with_a_notice_and_refunds(
    start_http: StartHttp, ledger: Ledger, slack: FakeSlack
) -> None:
    gate, clock = GatedChat(), FakeClock()
    engine = engine_with(ledger, gate)
    harness = await start_http(engine, clock=clock)
    payload = slack.mention("tell me a story")
    assert (await slack.post_http(harness.url, payload))[0] == 200
    gate.pieces.put_nowait("Once upon a time")
    await slack.wait_for(lambda: slack.calls_to("chat.startStream"))  # the first text shows at once

    await engine.shutdown(0)  # the generator never ends by itself: the engine ends the stream
    await harness.bot.stop()

    [reply] = slack.thread(GENERAL, payload["event"]["ts"])
    assert not reply.streaming and STREAMING_MARKER not in reply.text
    assert reply.text.startswith("Once upon a time")
    assert "I'm restarting, so I had to stop here. Nothing was charged" in reply.text
    report = await ledger.report(SCOPE)
    assert (report.used, report.held, [row.status for row in report.recent]) == (0, 0, ["refunded"])


async def test_a_song_left_at_shutdown_is_delivered_into_its_thread_once_after_a_restart(
    slack: FakeSlack, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/bot.db"
    ledger = await Ledger.open(url, default_limit=DEFAULT_LIMIT)
    try:
        engine = song_engine(ledger, SlowSong())
        bot = SlackBot(http_config(slack), engine=engine, ledger=ledger)
        await bot.start()
        assert (await slack.post_http(Harness(slack, bot).url, slack.command("song", "the sea"), form=True))[
            0
        ] == 200
        await slack.wait_for(lambda: any("Generating…" in m.text for m in slack.messages.values()))

        # The service's shutdown: the grace period runs out, checkpointed jobs are suspended, and
        # the adapter is cancelled right away.
        assert not await engine.drain(0.01)
        engine.suspend()
        await bot.stop()

        anchor = anchor_of(slack)
        [notice] = slack.thread(GENERAL, anchor.ts)
        assert "I'm restarting" in notice.text and "I'll post it here when I'm back" in notice.text
        assert not notice.text.startswith(FAILURE_PREFIX)
        assert not any(message.streaming for message in slack.messages.values())
        assert (await ledger.report(SCOPE)).held == 50_000
    finally:
        await ledger.close()

    # The next process, on the same database: the song is polled for, never submitted again.
    ledger = await Ledger.open(url, default_limit=DEFAULT_LIMIT)
    try:
        song = SlowSong()
        engine = song_engine(ledger, song)
        resumptions = await engine.resume_unfinished()
        assert await ledger.sweep_orphans(keep=[r.transaction_id for r in resumptions]) == 0
        readiness = Readiness()
        service = asyncio.create_task(
            run_slack(
                http_config(slack), engine=engine, ledger=ledger, readiness=readiness, resumptions=resumptions
            )
        )
        try:
            await slack.wait_for(lambda: any(upload.channel for upload in slack.files.values()))
            await until(lambda: engine.active == 0)
            assert readiness.ready
        finally:
            service.cancel()
            await asyncio.gather(service, return_exceptions=True)

        [track] = slack.files.values()
        assert (track.channel, track.thread_ts, track.title) == (GENERAL, anchor.ts, "The Sea")
        assert len(slack.calls_to("files.completeUploadExternal")) == 1
        assert (song.submitted, song.resumed) == ([], [{"work_id": "work-1"}])
        report = await ledger.report(SCOPE)
        assert (report.used, report.held) == (50_000, 0)
        assert [row.status for row in report.recent] == ["charged"]
        job = await JobStore(ledger.database).get(resumptions[0].request.id)
        assert job is not None and job.state is JobState.DONE
        assert await engine.resume_unfinished() == []
        left = [message for message in slack.thread(GENERAL, anchor.ts) if not message.blocks]
        assert left == [notice], "no progress line or error left behind (the song's buttons stay)"
    finally:
        await ledger.close()


# --- rate limits and server errors ----------------------------------------------------------------


async def test_a_rate_limited_then_failing_edit_is_retried_and_no_text_is_lost(
    start_http: StartHttp, ledger: Ledger, slack: FakeSlack
) -> None:
    slack.unsupported.add("chat.startStream")
    gate, clock = GatedChat(), FakeClock()
    harness = await start_http(engine_with(ledger, gate), clock=clock)
    payload = slack.mention("hello")
    assert (await slack.post_http(harness.url, payload))[0] == 200
    gate.pieces.put_nowait("Hello, ")  # shown at once: the first text does not wait for the interval

    def replies() -> list[Message]:
        return [m for m in slack.thread(GENERAL, payload["event"]["ts"]) if m.text.startswith("Hello")]

    await slack.wait_for(replies)
    [reply] = replies()

    def edits() -> list[Call]:
        return [call for call in slack.calls_to("chat.update") if call.args.get("ts") == reply.ts]

    slack.fail_next("chat.update", Fault(429, retry_after=3), Fault(503))
    gate.pieces.put_nowait("world.")
    gate.pieces.put_nowait(None)
    await slack.wait_for(lambda: len(edits()) == 1)
    await tick(clock, 2.9)
    assert len(edits()) == 1, "Retry-After is respected"
    await clock.advance(0.1)
    await slack.wait_for(lambda: len(edits()) == 2)
    await tick(clock, 1)  # chat.update is idempotent, so a 5xx is retried too, after a backoff
    await harness.bot.drain()

    # The streamed edit goes at once (the bucket has a token) and is retried twice; the final
    # edit follows it as soon as it lands.
    texts = [call.args["markdown_text"] for call in edits()]
    assert texts == ["Hello, world." + STREAMING_MARKER] * 3 + ["Hello, world."]
    assert reply.text == "Hello, world."
    report = await ledger.report(SCOPE)
    assert (report.used, [row.status for row in report.recent]) == (CHAT_COST, ["charged"])


async def test_a_rate_limited_upload_is_shared_once_after_retry_after(
    start_http: StartHttp, engine: Engine, ledger: Ledger, slack: FakeSlack
) -> None:
    clock = FakeClock()
    slack.fail_next("files.completeUploadExternal", Fault(429, retry_after=2))
    harness = await start_http(engine, clock=clock)
    assert (await slack.post_http(harness.url, slack.command("imagine", "a lighthouse"), form=True))[0] == 200
    await run_clock_until(clock, lambda: any(upload.channel for upload in slack.files.values()))
    await harness.bot.drain()

    [image] = slack.files.values()
    assert image.thread_ts == anchor_of(slack).ts
    assert len(slack.calls_to("files.completeUploadExternal")) == 2
    assert (await ledger.report(SCOPE)).used == IMAGE_COST


async def test_a_server_error_sharing_an_upload_is_not_repeated_and_charged_once(
    start_http: StartHttp, engine: Engine, ledger: Ledger, slack: FakeSlack
) -> None:
    slack.fail_next("files.completeUploadExternal", Fault(503))
    harness = await start_http(engine)
    await harness.command("imagine", "a lighthouse")

    # Slack may have shared the file before failing; sending it again could post it twice.
    assert len(slack.calls_to("files.completeUploadExternal")) == 1
    [notice] = slack.thread(GENERAL, anchor_of(slack).ts)
    assert notice.text.startswith("⚠️ I couldn't post all of this reply (`http_503`).")
    report = await ledger.report(SCOPE)
    # The image was made (and billed) before the upload failed: charged once (issue 15, item 1).
    assert (report.used, report.held, [row.status for row in report.recent]) == (IMAGE_COST, 0, ["charged"])


async def test_a_song_whose_upload_is_rate_limited_is_charged_once(
    start_http: StartHttp, ledger: Ledger, slack: FakeSlack
) -> None:
    song = SlowSong()
    song.finish.set()
    clock = FakeClock()
    slack.fail_next("files.completeUploadExternal", Fault(429, retry_after=1), Fault(429, retry_after=1))
    harness = await start_http(song_engine(ledger, song), clock=clock)
    assert (await slack.post_http(harness.url, slack.command("song", "the sea"), form=True))[0] == 200
    await run_clock_until(clock, lambda: any(upload.channel for upload in slack.files.values()))
    await harness.bot.drain()

    assert [upload.title for upload in slack.files.values() if upload.channel] == ["The Sea"]
    assert len(slack.calls_to("files.completeUploadExternal")) == 3
    assert (await ledger.report(SCOPE)).used == SONG_COST == 50_000
