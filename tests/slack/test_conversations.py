"""Slack threads as conversations: follow-ups without a mention, context from earlier turns, /summary
and /forget, over Socket Mode and HTTP against the fake Slack, remembered in SQLite across restarts."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import pytest

from adapters.slack import SlackBot
from bot.cli import cmd_run
from core.conversations import ConversationStore
from core.engine import Engine
from core.generator import Generator
from core.ledger import Ledger
from core.parts import Intent, Turn
from tests.conftest import CHAT_COST, DEFAULT_LIMIT, IMAGE_COST, RESEARCH_COST, SONG_COST, demo_engine
from tests.fakes.fake_slack import (
    ALICE,
    APP_TOKEN,
    BOT_ID,
    BOT_TOKEN,
    BOT_USER_ID,
    GENERAL,
    FakeSlack,
    Message,
)
from tests.slack.conftest import SCOPE, Harness, StartHttp, engine_with, http_config, running
from tests.slack.test_reliability import Recording
from tests.slack.test_setup import settings
from tests.slack.test_socket_mode import socket_config

BOB = "U0BOB"
RANDOM = "C0RANDOM"


def remembering(ledger: Ledger, *generators: Generator) -> Engine:
    """The demo engine, remembering conversations, with some generators replaced."""
    base = demo_engine(ledger)
    chosen = dict(base.generators) | {generator.intent: generator for generator in generators}
    return Engine(ledger=ledger, generators=chosen, conversations=ConversationStore(ledger.database))


def conversation(channel: str, thread_ts: str) -> str:
    return f"slack:{channel}:{thread_ts}"


async def stored(ledger: Ledger, where: str = "1 = 1", *params: str) -> int:
    """Conversation events in the database, read with plain SQL."""
    row = await ledger.database.fetchone(f"SELECT COUNT(*) FROM conversation_events WHERE {where}", params)
    assert row is not None
    return int(row[0])


def replies(slack: FakeSlack, thread_ts: str, channel: str = GENERAL) -> list[Message]:
    return slack.thread(channel, thread_ts)


def never_read_history(slack: FakeSlack) -> None:
    assert not [call.method for call in slack.calls if call.method.startswith("conversations.")]


# --- follow-ups ------------------------------------------------------------------------------------


async def test_a_follow_up_in_the_thread_needs_no_mention_and_brings_the_earlier_turns(
    slack: FakeSlack, ledger: Ledger
) -> None:
    chat = Recording(Intent.CHAT)
    bot = SlackBot(socket_config(slack), engine=remembering(ledger, chat), ledger=ledger)
    async with running(bot):
        await slack.wait_connected()
        mention = slack.mention("hi, I'm Ann")
        assert await slack.send_envelope("events_api", mention) is None
        await bot.drain()
        thread = mention["event"]["ts"]
        follow_up = slack.message("what is my name?", user=BOB, thread_ts=thread)
        assert await slack.send_envelope("events_api", follow_up) is None
        await bot.drain()

    first, second = chat.requests
    assert first.conversation == second.conversation == conversation(GENERAL, thread)
    assert first.history == ()
    assert second.text == "what is my name?" and second.user == BOB
    assert second.history == (Turn("user", ALICE, "hi, I'm Ann"), Turn("assistant", "bot", "Done."))
    assert [reply.text for reply in replies(slack, thread)] == ["Done.", "Done."]
    assert (await ledger.report(SCOPE)).used == 2 * CHAT_COST
    never_read_history(slack)


async def test_a_mention_inside_the_thread_is_answered_once(
    start_http: StartHttp, ledger: Ledger, slack: FakeSlack
) -> None:
    chat = Recording(Intent.CHAT)
    harness = await start_http(remembering(ledger, chat))
    thread = (await harness.mention("hello"))["event"]["ts"]

    for payload in slack.mention_in_thread("and again", thread_ts=thread):  # message, then app_mention
        await harness.deliver(payload)

    assert [request.text for request in chat.requests] == ["hello", "and again"]
    assert len(replies(slack, thread)) == 2
    assert (await ledger.report(SCOPE)).used == 2 * CHAT_COST


async def test_messages_that_are_not_follow_ups_are_acknowledged_and_left_alone(
    start_http: StartHttp, ledger: Ledger, slack: FakeSlack
) -> None:
    chat = Recording(Intent.CHAT)
    harness = await start_http(remembering(ledger, chat))
    thread = (await harness.mention("hello"))["event"]["ts"]
    [answer] = replies(slack, thread)

    ignored = [
        slack.message("in a thread I never answered in", thread_ts=slack.next_ts()),
        slack.message("a top-level message", thread_ts=None),
        slack.message("Done.", user=BOT_USER_ID, thread_ts=thread, ts=answer.ts, bot_id=BOT_ID),
        slack.message("another bot", thread_ts=thread, bot_id="B0OTHER", subtype="bot_message"),
        slack.message("edited", thread_ts=thread, subtype="message_changed"),
        slack.message("", thread_ts=thread, subtype="channel_join"),
        slack.message(f"<@{BOB}> what do you think?", thread_ts=thread),
    ]
    for payload in ignored:
        await harness.deliver(payload)  # each acknowledged with a 200, so Slack doesn't retry

    assert [request.text for request in chat.requests] == ["hello"]
    assert replies(slack, thread) == [answer]
    assert (await ledger.report(SCOPE)).used == CHAT_COST


async def test_a_reply_also_sent_to_the_channel_is_a_follow_up(
    start_http: StartHttp, ledger: Ledger, slack: FakeSlack
) -> None:
    chat = Recording(Intent.CHAT)
    harness = await start_http(remembering(ledger, chat))
    thread = (await harness.mention("hello"))["event"]["ts"]

    await harness.deliver(slack.message("for everyone", thread_ts=thread, subtype="thread_broadcast"))

    assert [request.text for request in chat.requests] == ["hello", "for everyone"]


async def test_in_mention_mode_a_follow_up_needs_a_mention(
    start_http: StartHttp, ledger: Ledger, slack: FakeSlack
) -> None:
    chat = Recording(Intent.CHAT)
    harness = await start_http(remembering(ledger, chat), follow_ups="mention")
    thread = (await harness.mention("hello"))["event"]["ts"]

    await harness.deliver(slack.message("no mention", thread_ts=thread))
    assert [request.text for request in chat.requests] == ["hello"]

    await harness.mention("with a mention", thread_ts=thread)
    assert [request.text for request in chat.requests] == ["hello", "with a mention"]
    assert chat.requests[1].history[0] == Turn("user", ALICE, "hello")


async def test_a_retried_follow_up_is_answered_and_charged_once(
    start_http: StartHttp, ledger: Ledger, slack: FakeSlack
) -> None:
    chat = Recording(Intent.CHAT)
    harness = await start_http(remembering(ledger, chat))
    thread = (await harness.mention("hello"))["event"]["ts"]
    follow_up = slack.message("tell me more", thread_ts=thread)

    await harness.deliver(follow_up)
    await harness.deliver(follow_up, retry_num=1)

    assert [request.text for request in chat.requests] == ["hello", "tell me more"]
    assert len(replies(slack, thread)) == 2
    assert (await ledger.report(SCOPE)).used == 2 * CHAT_COST


async def test_now_a_song_about_that_in_a_commands_thread_makes_a_song_about_the_image(
    start_http: StartHttp, engine: Engine, ledger: Ledger, slack: FakeSlack
) -> None:
    harness = await start_http(engine)
    await harness.command("imagine", "a red fox")
    [anchor] = slack.top_level(GENERAL)

    await harness.deliver(slack.message("now a song about that", thread_ts=anchor.ts))

    image, song = slack.files.values()
    assert (image.thread_ts, song.thread_ts) == (anchor.ts, anchor.ts)
    assert song.title == "Demo song: a song about a red fox" and song.data is not None
    assert (await ledger.report(SCOPE)).used == IMAGE_COST + SONG_COST
    assert await stored(ledger, "conversation = ?", conversation(GENERAL, anchor.ts)) == 4


async def test_the_thread_is_remembered_across_a_restart(slack: FakeSlack, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/bot.db"
    before = await Ledger.open(url, default_limit=DEFAULT_LIMIT)
    try:
        async with running(SlackBot(http_config(slack), engine=demo_engine(before), ledger=before)) as bot:
            thread = (await Harness(slack, bot).mention("my name is Ann"))["event"]["ts"]
    finally:
        await before.close()

    after = await Ledger.open(url, default_limit=DEFAULT_LIMIT)
    try:
        async with running(SlackBot(http_config(slack), engine=demo_engine(after), ledger=after)) as bot:
            await Harness(slack, bot).deliver(slack.message("what is my name?", thread_ts=thread))
    finally:
        await after.close()

    first, second = replies(slack, thread)
    assert "You said: “my name is Ann”" in first.text
    assert "You said: “what is my name?”" in second.text
    assert "I remember 2 earlier turns of this conversation; before this you said: “my name is Ann”" in (
        second.text
    )


async def test_bot_run_passes_the_follow_up_setting_and_the_store_to_slack(
    slack: FakeSlack, tmp_path: Path
) -> None:
    configured = settings(
        database_url=f"sqlite:///{tmp_path}/bot.db",
        slack_bot_token=BOT_TOKEN,
        slack_app_token=APP_TOKEN,
        slack_api_url=slack.api_url,
        demo_delay_s=0,
        demo_providers=True,  # no provider keys: without it every service would be off
        metrics_port=0,
    )
    run = asyncio.create_task(cmd_run(configured, argparse.Namespace()))
    try:
        await slack.wait_connected()
        mention = slack.mention("I like foxes")
        thread = mention["event"]["ts"]
        await slack.send_envelope("events_api", mention)
        # Follow-ups count once the bot has answered: its answer is remembered when the stream ends.
        await slack.wait_for(
            lambda: any("You said" in reply.text and not reply.streaming for reply in replies(slack, thread))
        )
        await slack.send_envelope("events_api", slack.message("and you?", thread_ts=thread))
        await slack.wait_for(lambda: any("“and you?”" in reply.text for reply in replies(slack, thread)))
    finally:
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
    assert "before this you said: “I like foxes”" in replies(slack, thread)[-1].text


# --- /summary and /forget --------------------------------------------------------------------------


async def test_summary_answers_in_the_channels_latest_thread_and_is_charged_like_research(
    start_http: StartHttp, engine: Engine, ledger: Ledger, slack: FakeSlack
) -> None:
    harness = await start_http(engine)
    older = (await harness.mention("an older thread"))["event"]["ts"]
    thread = (await harness.mention("hello there"))["event"]["ts"]

    await harness.command("summary", "who said what")

    note, summary = replies(slack, thread)[1:]
    assert note.text == f"<@{ALICE}> used `/summary`: “who said what”" and note.broadcast
    assert "Summary of this conversation (focus: who said what)" in summary.text
    assert f"user {ALICE}: hello there" in summary.text and "older thread" not in summary.text
    assert len(replies(slack, older)) == 1 and slack.top_level(GENERAL) == []
    report = await ledger.report(SCOPE)
    assert report.used == 2 * CHAT_COST + RESEARCH_COST
    assert report.by_service["summary"] == RESEARCH_COST
    assert await stored(ledger, "kind = 'summary' AND conversation = ?", conversation(GENERAL, thread)) == 1

    await harness.deliver(slack.message("thanks", thread_ts=thread))  # the summary is part of the thread now
    assert "I remember 3 earlier turns" in replies(slack, thread)[-1].text  # hello, answer, summary
    never_read_history(slack)


async def test_asking_for_a_summary_in_a_thread_summarizes_that_thread(
    start_http: StartHttp, engine: Engine, ledger: Ledger, slack: FakeSlack
) -> None:
    harness = await start_http(engine)
    thread = (await harness.mention("a lighthouse at dusk"))["event"]["ts"]
    await harness.mention("a red fox")  # a newer thread in the same channel

    await harness.mention("summarize this thread please", thread_ts=thread)

    summary = replies(slack, thread)[-1]
    assert "Summary of this conversation" in summary.text and "a lighthouse at dusk" in summary.text
    assert "fox" not in summary.text
    assert (await ledger.report(SCOPE)).by_service["summary"] == RESEARCH_COST


async def test_summary_where_the_bot_never_answered_is_refused_privately_and_free(
    start_http: StartHttp, engine: Engine, ledger: Ledger, slack: FakeSlack
) -> None:
    harness = await start_http(engine)
    await harness.mention("hello", channel=RANDOM)
    posts = len(slack.calls_to("chat.postMessage"))

    await harness.command("summary")

    [response] = slack.responses
    assert response["response_type"] == "ephemeral"
    assert "I can only summarize a conversation I'm part of" in response["text"]
    assert len(slack.calls_to("chat.postMessage")) == posts, "nothing posted in the channel"
    assert (await ledger.report(SCOPE)).used == CHAT_COST


async def test_forget_deletes_the_channels_latest_conversation_and_forget_all_is_for_admins(
    start_http: StartHttp, engine: Engine, ledger: Ledger, slack: FakeSlack
) -> None:
    slack.users[BOB] = {"id": BOB, "name": "bob", "is_admin": True}
    harness = await start_http(engine)
    kept = (await harness.mention("keep this", channel=RANDOM))["event"]["ts"]
    thread = (await harness.mention("forget this"))["event"]["ts"]

    await harness.command("forget", "all")  # Alice is no admin
    await harness.command("forget")

    refused, forgot = (response["text"] for response in slack.responses)
    assert refused.startswith("Only admins can make me forget every conversation here.")
    assert forgot == "Forgot this conversation (2 messages deleted). I'll start afresh here."
    assert all(response["response_type"] == "ephemeral" for response in slack.responses)
    assert await stored(ledger, "conversation = ?", conversation(GENERAL, thread)) == 0
    assert await stored(ledger, "conversation = ?", conversation(RANDOM, kept)) == 2

    await harness.deliver(slack.message("still there?", thread_ts=thread))
    assert len(replies(slack, thread)) == 1, "a forgotten thread is no longer followed"

    await harness.command("forget", "all", user=BOB)
    assert slack.responses[-1]["text"] == "Forgot every conversation here (2 messages deleted)."
    assert await stored(ledger) == 0


async def test_without_a_store_slack_works_as_before_and_says_it_remembers_nothing(
    start_http: StartHttp, ledger: Ledger, slack: FakeSlack
) -> None:
    chat = Recording(Intent.CHAT)
    harness = await start_http(engine_with(ledger, chat))  # an engine without a ConversationStore
    thread = (await harness.mention("hello"))["event"]["ts"]
    await harness.deliver(slack.message("follow-up", thread_ts=thread))
    await harness.command("forget")

    assert [request.text for request in chat.requests] == ["hello"]
    assert slack.responses[-1]["text"] == "I don't remember conversations here, so there's nothing to forget."
