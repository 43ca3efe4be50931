"""Conversations on Discord through the real discord.py client and the fake: reply chains, thread
follow-ups without a mention, /summary, /forget, restarts and a refused Message Content intent."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

import discord
import pytest

from adapters.discord import DiscordConfig, run_discord
from adapters.discord.conversations import message_key
from core.conversations import ConversationStore, Event
from core.engine import Engine
from core.health import Readiness
from core.ledger import Ledger
from core.parts import GeneratorPart, Intent, Request, Scope, TextDelta, Turn
from tests.conftest import CHAT_COST, RESEARCH_COST, demo_engine
from tests.discord.conftest import AutoClock, StartBot, settled_report
from tests.fakes.fake_discord import EPHEMERAL, FakeDiscord, FakeInteraction, FakeMessage

GREEN, RED = 0x1F8B4C, 0xE74C3C
MESSAGE_CONTENT = 1 << 15
MANAGE_GUILD = 1 << 5
ALICE = FakeDiscord.user("111", "alice")
BOB = FakeDiscord.user("222", "bob")
OTHER_BOT = FakeDiscord.user("333", "other-bot", bot=True)
MEMBER_JOINED = 7


class RecordingChat:
    """A chat generator that notes each request's conversation and history, and answers briefly."""

    intent = Intent.CHAT
    demo = True

    def __init__(self, *, long_answer: str | None = None) -> None:
        self.requests: list[Request] = []
        self._long_answer = long_answer

    def estimate(self, prompt: str) -> int:
        return CHAT_COST

    async def generate(self, prompt: str, request: Request) -> AsyncIterator[GeneratorPart]:
        self.requests.append(request)
        yield TextDelta(self._long_answer or f"Noted: {prompt}")


def recording_engine(ledger: Ledger, chat: RecordingChat) -> Engine:
    """The demo engine (which remembers conversations) with ``chat`` answering chat requests."""
    generators = dict(demo_engine(ledger).generators)
    generators[Intent.CHAT] = chat
    return Engine(ledger=ledger, generators=generators, conversations=ConversationStore(ledger.database))


def answers_to(fake: FakeDiscord, message_id: str) -> list[FakeMessage]:
    """The bot's finished replies to one message."""
    return [
        message
        for message in fake.messages.values()
        if message.reference == message_id
        and message.author["id"] == fake.application_id
        and message.current.colour in (GREEN, RED)
    ]


async def answer(fake: FakeDiscord, message_id: str) -> FakeMessage:
    await fake.wait_until(lambda: bool(answers_to(fake, message_id)))
    [reply] = answers_to(fake, message_id)
    return reply


async def settle_with_a_mention(fake: FakeDiscord) -> None:
    """Send a mention in the channel and wait for its answer: every message sent before it has
    been read (and answered or passed over) by then."""
    asked = await fake.mention("ping", author=BOB)
    await answer(fake, asked)


async def stored(ledger: Ledger, table: str, conversation: str) -> int:
    row = await ledger.database.fetchone(
        f"SELECT COUNT(*) FROM {table} WHERE conversation = ?", (conversation,)
    )
    assert row is not None
    return int(row[0])


async def remembered(ledger: Ledger, conversation: str, *, events: int) -> list[Event]:
    """The conversation's events once there are ``events`` of them: media are recorded just after
    they are shown."""
    store = ConversationStore(ledger.database)
    deadline = time.monotonic() + 10
    while len(found := await store.events(conversation)) < events:
        assert time.monotonic() < deadline, f"only {found} were stored"
        await asyncio.sleep(0.005)
    return found


async def filled_in(fake: FakeDiscord, interaction: FakeInteraction) -> str:
    """The text of a deferred command's response, once it is finished."""

    def done() -> bool:
        message = fake.messages.get(str(interaction.original))
        return message is not None and message.current.colour == GREEN

    await fake.wait_until(done)
    return fake.messages[str(interaction.original)].current.description


def private_answer(interaction: FakeInteraction) -> str:
    [callback] = interaction.callbacks
    assert callback["type"] == 4
    assert callback["data"]["flags"] & EPHEMERAL, "only the person who asked sees it"
    return str(callback["data"]["embeds"][0]["description"])


async def test_a_reply_to_the_answer_continues_the_chain_with_its_prior_turns(
    fake: FakeDiscord, start_bot: StartBot, ledger: Ledger
) -> None:
    chat = RecordingChat()
    await start_bot(recording_engine(ledger, chat))
    asked = await fake.mention("hi, I'm Ann", author=ALICE)
    first = await answer(fake, asked)

    # A reply that doesn't ping the bot is still a follow-up: it answers a message of ours.
    follow_up = await fake.mention("what is my name?", author=ALICE, reply_to=first.id, mention_bot=False)
    second = await answer(fake, follow_up)

    chain = f"discord:chain:{fake.channel_id}:{asked}"
    assert [request.conversation for request in chat.requests] == [chain, chain]
    assert chat.requests[0].history == ()
    assert chat.requests[1].history == (
        Turn("user", "111", "hi, I'm Ann"),
        Turn("assistant", "bot", "Noted: hi, I'm Ann"),
    )
    assert second.current.description == "Noted: what is my name?"
    store = ConversationStore(ledger.database)
    assert await store.resolve(message_key(int(first.id))) == chain
    assert await store.resolve(message_key(int(second.id))) == chain
    assert fake.identified[0]["intents"] & MESSAGE_CONTENT, "thread mode reads unmentioned follow-ups"


async def test_every_message_of_a_split_answer_is_linked(
    fake: FakeDiscord, start_bot: StartBot, ledger: Ledger
) -> None:
    long_answer = "\n\n".join(f"Paragraph {n}. " + "word " * 180 for n in range(8))
    await start_bot(recording_engine(ledger, RecordingChat(long_answer=long_answer)))
    asked = await fake.mention("tell me everything", author=ALICE)
    await fake.wait_until(lambda: any(m.current.attachments for m in fake.channel_messages()))

    store = ConversationStore(ledger.database)
    chain = f"discord:chain:{fake.channel_id}:{asked}"
    posted = fake.channel_messages()
    assert len(posted) >= 3, "two or more parts and the markdown file"
    assert [await store.resolve(message_key(int(m.id))) for m in posted] == [chain] * len(posted)


async def test_thread_follow_ups_need_no_mention_once_the_bot_has_answered_there(
    fake: FakeDiscord, start_bot: StartBot, ledger: Ledger
) -> None:
    chat = RecordingChat()
    await start_bot(recording_engine(ledger, chat))
    thread = f"discord:thread:{fake.thread_id}"

    too_early = await fake.mention("anyone here?", author=ALICE, channel_id=fake.thread_id, mention_bot=False)
    await settle_with_a_mention(fake)
    assert answers_to(fake, too_early) == [], "the bot isn't part of this thread yet"

    asked = await fake.mention("hello", author=ALICE, channel_id=fake.thread_id)
    await answer(fake, asked)
    follow_up = await fake.mention("and then?", author=BOB, channel_id=fake.thread_id, mention_bot=False)
    await answer(fake, follow_up)

    from_a_bot = await fake.mention("beep", author=OTHER_BOT, channel_id=fake.thread_id, mention_bot=False)
    system = await fake.mention(
        "", author=ALICE, channel_id=fake.thread_id, mention_bot=False, message_type=MEMBER_JOINED
    )
    elsewhere = await fake.mention("unrelated chatter", author=ALICE, mention_bot=False)
    await settle_with_a_mention(fake)
    for ignored in (from_a_bot, system, elsewhere):
        assert answers_to(fake, ignored) == []

    in_thread = [r for r in chat.requests if r.conversation == thread]
    assert [r.text for r in in_thread] == ["hello", "and then?"]
    assert in_thread[1].history == (
        Turn("user", "111", "hello"),
        Turn("assistant", "bot", "Noted: hello"),
    )
    texts = [event.text for event in await ConversationStore(ledger.database).events(thread)]
    assert texts == ["hello", "Noted: hello", "and then?", "Noted: and then?"]


async def test_mention_mode_answers_only_mentions_but_keeps_the_context(
    fake: FakeDiscord, start_bot: StartBot, ledger: Ledger
) -> None:
    chat = RecordingChat()
    await start_bot(recording_engine(ledger, chat), follow_ups="mention")
    assert not fake.identified[0]["intents"] & MESSAGE_CONTENT, "no privileged intent in mention mode"

    asked = await fake.mention("hello", author=ALICE, channel_id=fake.thread_id)
    first = await answer(fake, asked)
    unmentioned = await fake.mention("and then?", author=ALICE, channel_id=fake.thread_id, mention_bot=False)
    unpinged = await fake.mention("so?", author=ALICE, reply_to=first.id, mention_bot=False)
    await settle_with_a_mention(fake)
    assert answers_to(fake, unmentioned) == []
    assert answers_to(fake, unpinged) == []

    pinged = await fake.mention("tell me more", author=ALICE, reply_to=first.id)
    await answer(fake, pinged)
    last = chat.requests[-1]
    assert last.conversation == f"discord:thread:{fake.thread_id}"
    assert [turn.text for turn in last.history] == ["hello", "Noted: hello"]


async def test_a_follow_up_asking_for_a_song_about_that_uses_the_context(
    fake: FakeDiscord, start_bot: StartBot, ledger: Ledger
) -> None:
    await start_bot()
    asked = await fake.mention("draw a red fox", author=ALICE, channel_id=fake.thread_id)
    picture = await answer(fake, asked)
    assert picture.current.attachments[0].filename == "a-red-fox.png"
    await remembered(ledger, f"discord:thread:{fake.thread_id}", events=2)

    follow_up = await fake.mention(
        "now a song about that", author=ALICE, channel_id=fake.thread_id, mention_bot=False
    )
    song = await answer(fake, follow_up)
    assert song.current.embeds[0]["title"] == "🎵 Demo song: a song about a red fox"
    assert any(upload.filename.endswith(".wav") for upload in song.current.attachments)


async def test_a_reply_to_a_slash_command_answer_continues_its_chain(
    fake: FakeDiscord, start_bot: StartBot, ledger: Ledger
) -> None:
    await start_bot()
    prompt = [{"name": "prompt", "type": 3, "value": "a red fox"}]
    interaction = await fake.slash("imagine", prompt, user=ALICE)
    await fake.wait_until(lambda: any(m.current.attachments for m in fake.channel_messages()))
    chain = f"discord:chain:{fake.channel_id}:{interaction.original}"
    await remembered(ledger, chain, events=2)

    again = await fake.mention("another one", author=ALICE, reply_to=interaction.original, mention_bot=False)
    repeat = await answer(fake, again)
    assert repeat.current.attachments[0].filename == "a-red-fox.png", "the same picture again"
    events = await remembered(ledger, chain, events=4)
    assert [(event.kind, event.intent, event.text) for event in events] == [
        ("user_message", Intent.IMAGE, "a red fox"),
        ("image", None, "a red fox"),
        ("user_message", None, "another one"),
        ("image", None, "a red fox"),
    ]


async def test_summary_in_a_thread_is_charged_like_research(
    fake: FakeDiscord, start_bot: StartBot, ledger: Ledger
) -> None:
    await start_bot()
    asked = await fake.mention("hello there", author=ALICE, channel_id=fake.thread_id)
    await answer(fake, asked)

    focus = [{"name": "focus", "type": 3, "value": "greetings"}]
    interaction = await fake.slash("summary", focus, user=ALICE, channel_id=fake.thread_id)
    summary = await filled_in(fake, interaction)

    assert interaction.callbacks[0]["type"] == 5, "deferred, like /research"
    assert summary.startswith("**Summary of this conversation (focus: greetings)**")
    assert "• user 111: hello there" in summary
    report = await settled_report(ledger, Scope("discord", fake.guild_id))
    summaries = [row.charged for row in report.recent if row.service == "summary"]
    assert summaries == [RESEARCH_COST]
    events = await ConversationStore(ledger.database).events(f"discord:thread:{fake.thread_id}")
    assert [event.kind.value for event in events][-1] == "summary"


async def test_summary_in_a_channel_reads_its_latest_chain_and_refuses_without_one(
    fake: FakeDiscord, start_bot: StartBot, ledger: Ledger
) -> None:
    await start_bot()
    nothing = await fake.slash("summary", user=ALICE)
    await fake.wait_until(lambda: bool(nothing.callbacks))
    assert "I can only summarize a conversation I'm part of" in private_answer(nothing)

    asked = await fake.mention("tell me about owls", author=ALICE)
    await answer(fake, asked)
    interaction = await fake.slash("summary", user=ALICE)
    assert "• user 111: tell me about owls" in await filled_in(fake, interaction)


async def test_forget_deletes_the_conversation_and_only_admins_forget_everything(
    fake: FakeDiscord, start_bot: StartBot, ledger: Ledger
) -> None:
    await start_bot()
    thread = f"discord:thread:{fake.thread_id}"
    in_thread = await fake.mention("hello", author=ALICE, channel_id=fake.thread_id)
    await answer(fake, in_thread)
    in_channel = await fake.mention("hi", author=ALICE)
    await answer(fake, in_channel)
    chain = f"discord:chain:{fake.channel_id}:{in_channel}"
    assert await stored(ledger, "conversation_events", thread) == 2
    assert await stored(ledger, "conversation_links", thread) == 1

    forget = await fake.slash("forget", user=ALICE, channel_id=fake.thread_id)
    await fake.wait_until(lambda: bool(forget.callbacks))
    assert private_answer(forget) == "Forgot this conversation (2 messages deleted). I'll start afresh here."
    assert await stored(ledger, "conversation_events", thread) == 0
    assert await stored(ledger, "conversation_links", thread) == 0

    # The thread is unknown again: an unmentioned message there is passed over.
    after = await fake.mention("still there?", author=ALICE, channel_id=fake.thread_id, mention_bot=False)
    await settle_with_a_mention(fake)
    assert answers_to(fake, after) == []

    everything = [{"name": "all", "type": 5, "value": True}]
    refused = await fake.slash("forget", everything, user=ALICE)
    await fake.wait_until(lambda: bool(refused.callbacks))
    assert private_answer(refused).startswith("Only admins can make me forget every conversation here.")
    assert await stored(ledger, "conversation_events", chain) == 2

    admin = await fake.slash("forget", everything, user=BOB, permissions=MANAGE_GUILD)
    await fake.wait_until(lambda: bool(admin.callbacks))
    assert private_answer(admin).startswith("Forgot every conversation here (")
    assert await ledger.database.fetchone("SELECT COUNT(*) FROM conversation_events") == (0,)


async def test_the_conversation_survives_a_restart_of_the_client(
    fake: FakeDiscord, start_bot: StartBot, ledger: Ledger
) -> None:
    before = RecordingChat()
    bot = await start_bot(recording_engine(ledger, before))
    asked = await fake.mention("remember the number 7", author=ALICE)
    first = await answer(fake, asked)
    bot.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await bot

    after = RecordingChat()
    await start_bot(recording_engine(ledger, after))
    follow_up = await fake.mention("which number?", author=ALICE, reply_to=first.id, mention_bot=False)
    await answer(fake, follow_up)
    [request] = after.requests
    assert request.conversation == f"discord:chain:{fake.channel_id}:{asked}"
    assert [turn.text for turn in request.history] == [
        "remember the number 7",
        "Noted: remember the number 7",
    ]


async def test_a_dm_is_one_running_conversation(
    fake: FakeDiscord, start_bot: StartBot, ledger: Ledger
) -> None:
    chat = RecordingChat()
    await ledger.set_limit(Scope("discord-dm", "111"), 5 * CHAT_COST, by="test")
    await start_bot(recording_engine(ledger, chat), allow_dms=True)
    for text in ("first", "second"):
        asked = await fake.mention(text, author=ALICE, dm=True)
        await answer(fake, asked)
    assert [r.conversation for r in chat.requests] == [f"discord:dm:{fake.dm_channel_id}"] * 2
    assert [turn.text for turn in chat.requests[1].history] == ["first", "Noted: first"]


async def test_a_refused_message_content_intent_falls_back_to_mentions_with_one_clear_error(
    fake: FakeDiscord,
    ledger: Ledger,
    clock: AutoClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)
    monkeypatch.setattr(
        discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    )
    fake.privileged_intents_enabled = False
    readiness = Readiness()
    config = DiscordConfig(
        token=fake.token, api_url=fake.api_url, gateway_url=fake.gateway_url, guild_ready_timeout=0.01
    )
    caplog.set_level(logging.INFO)
    bot = asyncio.create_task(
        run_discord(config, engine=demo_engine(ledger), ledger=ledger, clock=clock, readiness=readiness)
    )
    try:
        await fake.wait_until(lambda: readiness.ready or bot.done())
        if bot.done():
            bot.result()
        [refused] = fake.refused
        assert refused["intents"] & MESSAGE_CONTENT
        [identified] = fake.identified
        assert not identified["intents"] & MESSAGE_CONTENT, "connected again without the intent"

        errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
        assert len(errors) == 1, [record.getMessage() for record in errors]
        message = errors[0].getMessage()
        assert "Message Content Intent" in message
        assert "Developer Portal" in message
        assert "DISCORD_FOLLOW_UPS=mention" in message

        asked = await fake.mention("hello", author=ALICE, channel_id=fake.thread_id)
        await answer(fake, asked)
        unmentioned = await fake.mention("and?", author=ALICE, channel_id=fake.thread_id, mention_bot=False)
        await settle_with_a_mention(fake)
        assert answers_to(fake, unmentioned) == [], "mention mode now"
    finally:
        bot.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await bot
