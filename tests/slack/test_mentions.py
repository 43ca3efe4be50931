"""Mentions over HTTP mode: threaded, streamed (natively or by edits), signed, charged once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from adapters.slack import SlackBot
from adapters.slack.surface import PACE as SLACK_PACE
from core.engine import Engine
from core.ledger import Ledger
from core.render import OPENING_DELAY_S, STREAMING_MARKER
from tests.clock import FakeClock
from tests.conftest import CHAT_COST, DEFAULT_LIMIT, demo_engine
from tests.fakes.fake_slack import GENERAL, FakeSlack
from tests.slack.conftest import SCOPE, GatedChat, Harness, StartHttp, engine_with, http_config, running, tick


async def stream_hello_world(harness: Harness, gate: GatedChat, clock: FakeClock) -> str:
    """Mention the bot, feed "Hello, " (shown at once) and "world." (shown when a token refills),
    end; return the thread ts."""
    slack = harness.slack
    payload = slack.mention("hello there")
    status, _ = await slack.post_http(harness.url, payload)
    assert status == 200
    thread_ts = payload["event"]["ts"]
    await tick(clock, OPENING_DELAY_S)  # nothing to show yet: a progress line goes up
    await slack.wait_for(lambda: slack.thread(GENERAL, thread_ts))

    gate.pieces.put_nowait("Hello, ")
    await slack.wait_for(lambda: slack.calls_to("chat.delete"))  # text shows, progress line goes
    assert clock.now() == OPENING_DELAY_S, "the first text replaces the progress line at once"
    gate.pieces.put_nowait("world.")
    refill = 1 / SLACK_PACE.per_second  # the post and the first text spent two tokens; one is kept
    await tick(clock, refill - 0.01)
    calls = len(slack.calls)
    await asyncio.sleep(0.01)
    assert len(slack.calls) == calls, "later text waits for a token beyond the kept one"
    await tick(clock, 0.02)
    await slack.wait_for(lambda: any("world." in message.text for message in slack.messages.values()))
    gate.pieces.put_nowait(None)
    await harness.bot.drain()
    return thread_ts


async def test_mention_streams_the_answer_natively_into_the_thread(
    start_http: StartHttp, ledger: Ledger
) -> None:
    gate, clock = GatedChat(), FakeClock()
    harness = await start_http(engine_with(ledger, gate), clock=clock)
    slack = harness.slack

    thread_ts = await stream_hello_world(harness, gate, clock)

    assert [call.method for call in slack.calls] == [
        "auth.test",  # the adapter's start-up check
        "auth.test",  # Bolt's authorization of the first request
        "chat.postMessage",  # the progress line
        "chat.startStream",
        "chat.delete",  # the progress line goes once text shows
        "chat.appendStream",
        "chat.stopStream",
    ]
    start, append, stop = (
        slack.calls_to(name)[0].args for name in ("chat.startStream", "chat.appendStream", "chat.stopStream")
    )
    assert start["thread_ts"] == thread_ts
    assert (start["recipient_user_id"], start["recipient_team_id"]) == ("U0ALICE", SCOPE.id)
    assert (start["markdown_text"], append["markdown_text"]) == ("Hello, ", "world.")
    assert "markdown_text" not in stop
    [reply] = slack.thread(GENERAL, thread_ts)
    assert (reply.text, reply.streamed, reply.streaming) == ("Hello, world.", True, False)
    assert (await ledger.report(SCOPE)).used == CHAT_COST


async def test_an_answer_that_starts_at_once_needs_no_progress_line(
    start_http: StartHttp, ledger: Ledger
) -> None:
    gate, clock = GatedChat(), FakeClock()
    harness = await start_http(engine_with(ledger, gate), clock=clock)
    slack = harness.slack
    gate.pieces.put_nowait("Hi!")
    gate.pieces.put_nowait(None)

    payload = await harness.mention("hello there")

    assert clock.now() < OPENING_DELAY_S
    assert [call.method for call in slack.calls if call.method.startswith("chat.")] == [
        "chat.startStream",
        "chat.stopStream",
    ]
    [reply] = slack.thread(GENERAL, payload["event"]["ts"])
    assert reply.text == "Hi!"


@pytest.mark.parametrize("streaming", [True, False])
async def test_model_output_cannot_notify_a_channel_or_a_user_group(
    start_http: StartHttp, ledger: Ledger, slack: FakeSlack, streaming: bool
) -> None:
    if not streaming:
        slack.unsupported.add("chat.startStream")  # the fallback: posts and edits
    gate = GatedChat()
    harness = await start_http(engine_with(ledger, gate))
    gate.pieces.put_nowait("<!channel> wake up, <!subteam^S0DEVS|@devs> and <!here|here>; @everyone too")
    gate.pieces.put_nowait(None)

    payload = await harness.mention("summon everyone")

    [reply] = slack.thread(GENERAL, payload["event"]["ts"])
    written = [str(call.args) for call in slack.calls if call.method.startswith("chat.")]
    assert not any("<!" in text or "@everyone" in text for text in written), written
    assert reply.text == "@\u200bchannel wake up, @\u200bdevs and @\u200bhere; @\u200beveryone too"


async def test_mention_falls_back_to_edits_when_streaming_is_unavailable(
    start_http: StartHttp, ledger: Ledger, slack: FakeSlack
) -> None:
    slack.unsupported.add("chat.startStream")
    gate, clock = GatedChat(), FakeClock()
    harness = await start_http(engine_with(ledger, gate), clock=clock)

    thread_ts = await stream_hello_world(harness, gate, clock)

    [reply] = slack.thread(GENERAL, thread_ts)
    assert reply.versions == [
        "Hello, " + STREAMING_MARKER,
        "Hello, world." + STREAMING_MARKER,
        "Hello, world.",
    ]
    assert not reply.streamed
    # Later replies don't ask again.
    for piece in ("You're welcome.", None):
        gate.pieces.put_nowait(piece)
    await harness.mention("thanks")
    assert len(slack.calls_to("chat.startStream")) == 1


async def test_an_expired_stream_is_finished_by_editing_it(
    start_http: StartHttp, ledger: Ledger, slack: FakeSlack
) -> None:
    slack.stream_expires_after = 0
    gate, clock = GatedChat(), FakeClock()
    harness = await start_http(engine_with(ledger, gate), clock=clock)

    thread_ts = await stream_hello_world(harness, gate, clock)

    [reply] = slack.thread(GENERAL, thread_ts)
    assert reply.streamed
    assert reply.versions[-2:] == ["Hello, world." + STREAMING_MARKER, "Hello, world."]
    assert slack.calls_to("chat.stopStream") == []
    assert (await ledger.report(SCOPE)).used == CHAT_COST


async def test_a_mention_inside_a_thread_is_answered_in_that_thread(
    start_http: StartHttp, engine: Engine, slack: FakeSlack
) -> None:
    harness = await start_http(engine)
    await harness.mention("hello", thread_ts="1790000000.000042")

    [reply] = slack.thread(GENERAL, "1790000000.000042")
    assert "You said: “hello”" in reply.text
    assert STREAMING_MARKER not in reply.text
    assert slack.top_level(GENERAL) == []


async def test_a_retried_event_is_answered_and_charged_once_even_after_a_restart(
    start_http: StartHttp, engine: Engine, ledger: Ledger, slack: FakeSlack, tmp_path: Path
) -> None:
    harness = await start_http(engine)
    payload = await harness.mention("hello")
    await harness.deliver(payload, retry_num=1)
    await harness.bot.stop()

    thread_ts = payload["event"]["ts"]
    assert len(slack.thread(GENERAL, thread_ts)) == 1
    async with reopened_ledger(tmp_path) as reopened:
        restarted = SlackBot(http_config(slack), engine=demo_engine(reopened), ledger=reopened)
        async with running(restarted):
            await Harness(slack, restarted).deliver(payload, retry_num=2)
        report = await reopened.report(SCOPE)
    assert len(slack.thread(GENERAL, thread_ts)) == 1
    assert (report.used, len(report.recent)) == (CHAT_COST, 1)


async def test_mentions_by_other_bots_are_ignored_and_cost_nothing(
    start_http: StartHttp, engine: Engine, ledger: Ledger, slack: FakeSlack
) -> None:
    harness = await start_http(engine)
    from_a_bot = slack.mention("hello from a bot")
    from_a_bot["event"]["bot_id"] = "B0OTHER"
    as_bot_message = slack.mention("hello again")
    as_bot_message["event"] |= {"bot_id": "B0OTHER", "subtype": "bot_message"}
    for payload in (from_a_bot, as_bot_message):
        await harness.deliver(payload)

    assert not slack.calls_to("chat.postMessage") and not slack.calls_to("chat.startStream")
    assert (await ledger.report(SCOPE)).recent == []


@asynccontextmanager
async def reopened_ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    """The test's database file opened afresh, as after a restart."""
    reopened = await Ledger.open(f"sqlite:///{tmp_path}/ledger.db", default_limit=DEFAULT_LIMIT)
    try:
        yield reopened
    finally:
        await reopened.close()


async def test_requests_with_a_bad_or_stale_signature_are_rejected(
    start_http: StartHttp, engine: Engine, ledger: Ledger, slack: FakeSlack
) -> None:
    harness = await start_http(engine)
    payload = slack.mention("draw a lighthouse")

    forged = await slack.post_http(harness.url, payload, secret="not-the-secret")
    stale = await slack.post_http(harness.url, payload, timestamp=int(time.time()) - 600)
    await harness.bot.drain()

    assert (forged[0], stale[0]) == (401, 401)
    assert [call.method for call in slack.calls] == ["auth.test"]
    assert (await ledger.report(SCOPE)).recent == []
    # The rejected copies did not use up the event: the genuine delivery is still answered.
    await harness.deliver(payload)
    assert len(slack.calls_to("files.completeUploadExternal")) == 1
