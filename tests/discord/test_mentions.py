"""Mentions in channels, threads and DMs, answered by the real discord.py client against the fake."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator

import pytest

from core.demo import DemoChatGenerator, DemoImageGenerator, DemoResearchGenerator, DemoSongGenerator
from core.demo.text import chat_answer
from core.engine import RESTARTING, Engine
from core.generator import Generator
from core.history import Window
from core.ledger import Ledger
from core.money import usd_to_micros
from core.parts import GeneratorPart, Intent, Request, Scope, TextDelta
from core.render import STREAMING_MARKER
from tests.conftest import CHAT_COST, IMAGE_COST, RESEARCH_COST, SONG_COST
from tests.discord.conftest import AutoClock, StartBot, settled_report, within_edit_limit
from tests.fakes.fake_discord import FakeDiscord, FakeMessage

ORANGE, GREEN, RED = 0xE67E22, 0x1F8B4C, 0xE74C3C


def slow_chat_engine(ledger: Ledger, clock: AutoClock) -> Engine:
    """Demo generators whose chat answer streams a word every 0.2 s of (virtual) time."""
    return Engine(
        ledger=ledger,
        generators={
            Intent.IMAGE: DemoImageGenerator(cost=IMAGE_COST),
            Intent.SONG: DemoSongGenerator(cost=SONG_COST, delay_s=0),
            Intent.RESEARCH: DemoResearchGenerator(cost=RESEARCH_COST, delay_s=0),
            Intent.CHAT: DemoChatGenerator(cost=CHAT_COST, delay_s=0.2, clock=clock),
        },
    )


def finished(fake: FakeDiscord, channel_id: str) -> list[FakeMessage]:
    return [m for m in fake.channel_messages(channel_id) if m.current.colour in (GREEN, RED)]


@pytest.mark.parametrize("where", ["channel", "thread"])
async def test_mention_streams_edits_into_a_reply(
    where: str, fake: FakeDiscord, start_bot: StartBot, ledger: Ledger, clock: AutoClock
) -> None:
    await start_bot(slow_chat_engine(ledger, clock))
    channel_id = fake.channel_id if where == "channel" else fake.thread_id
    asked = await fake.mention("hello there", author=fake.user("111", "alice"), channel_id=channel_id)

    await fake.wait_until(lambda: bool(finished(fake, channel_id)))

    [reply] = fake.channel_messages(channel_id)
    assert reply.reference == asked
    final = reply.current
    assert final.description == chat_answer("hello there").strip()
    assert final.colour == GREEN
    streaming = reply.versions[:-1]
    assert len(streaming) >= 2, "the answer should have been streamed in several edits"
    for version in streaming:
        assert version.description.endswith(STREAMING_MARKER.strip())
        assert version.colour == ORANGE
    assert [len(v.description) for v in streaming] == sorted(len(v.description) for v in streaming)
    assert within_edit_limit(reply.edit_times[1:]), "the edits after the post keep to the channel's limit"
    report = await settled_report(ledger, Scope("discord", fake.guild_id))
    assert report.used == CHAT_COST
    assert [row.user for row in report.recent] == ["111"]


async def test_messages_without_a_mention_or_from_bots_are_ignored(
    fake: FakeDiscord, start_bot: StartBot, ledger: Ledger
) -> None:
    await start_bot()
    await fake.mention("hello", author=fake.user("111", "alice"), mention_bot=False)
    await fake.mention("hello", author=fake.user("222", "other-bot", bot=True))
    await fake.mention("hello", author=fake.user("111", "alice"), dm=True)
    # A last mention that is answered proves the ones before it were read and passed over.
    await fake.mention("hi", author=fake.user("111", "alice"))
    await fake.wait_until(lambda: bool(finished(fake, fake.channel_id)))
    assert len(fake.channel_messages(fake.channel_id)) == 1
    assert fake.channel_messages(fake.dm_channel_id) == []
    assert len((await settled_report(ledger, Scope("discord", fake.guild_id))).recent) == 1
    assert not fake.identified[0]["intents"] & (1 << 12), "no DM intent unless DMs are allowed"


async def test_long_answer_is_split_into_chained_replies_with_a_markdown_file(
    fake: FakeDiscord, start_bot: StartBot, ledger: Ledger
) -> None:
    paragraphs = [f"Paragraph {n}. " + "word " * 180 for n in range(12)]
    text = "# Long study\n\n" + "\n\n".join(p.strip() for p in paragraphs)

    class LongChat(DemoChatGenerator):
        def write(self, prompt: str, window: Window) -> str:
            return text

    engine = Engine(
        ledger=ledger,
        generators={
            **demo_generators(),
            Intent.CHAT: LongChat(cost=CHAT_COST, delay_s=0),
        },
    )
    await start_bot(engine)
    asked = await fake.mention("hey", author=fake.user("111", "alice"))
    await fake.wait_until(lambda: any(m.current.attachments for m in fake.channel_messages()))

    messages = fake.channel_messages()
    *parts, attachment = messages
    assert len(parts) >= 2
    assert parts[0].reference == asked
    for earlier, later in itertools.pairwise(messages):
        assert later.reference == earlier.id, "each message replies to the one before"
    assert all(len(m.current.description) <= 4096 for m in parts)
    assert "\n\n".join(m.current.description for m in parts) == text
    [upload] = attachment.current.attachments
    assert upload.filename == "long-study.md"
    assert upload.data.decode() == text


async def test_dms_when_allowed_but_unfunded_get_a_polite_refusal(
    fake: FakeDiscord, start_bot: StartBot, tmp_path: object
) -> None:
    dm_ledger = await Ledger.open(
        f"sqlite:///{tmp_path}/dm.db", default_limit=usd_to_micros(20), platform_limits={"discord-dm": 0}
    )
    try:
        await start_bot(bot_ledger=dm_ledger, allow_dms=True)
        assert fake.identified[0]["intents"] & (1 << 12)
        await fake.mention("draw a lighthouse", author=fake.user("111", "alice"), dm=True)
        await fake.wait_until(lambda: bool(fake.channel_messages(fake.dm_channel_id)))
        [reply] = fake.channel_messages(fake.dm_channel_id)
        assert "Direct messages aren't funded" in reply.current.description
        report = await dm_ledger.report(Scope("discord-dm", "111"))
        assert report.recent == [], "nothing was reserved or generated"
    finally:
        await dm_ledger.close()


async def test_funded_dm_is_answered_on_the_users_own_budget(
    fake: FakeDiscord, start_bot: StartBot, tmp_path: object
) -> None:
    dm_ledger = await Ledger.open(
        f"sqlite:///{tmp_path}/dm.db",
        default_limit=usd_to_micros(20),
        platform_limits={"discord-dm": usd_to_micros(1)},
    )
    try:
        await start_bot(bot_ledger=dm_ledger, allow_dms=True)
        await fake.mention("hi", author=fake.user("111", "alice"), dm=True)
        await fake.wait_until(lambda: bool(finished(fake, fake.dm_channel_id)))
        [reply] = fake.channel_messages(fake.dm_channel_id)
        assert reply.current.description == chat_answer("hi").strip()
        assert (await settled_report(dm_ledger, Scope("discord-dm", "111"))).used == CHAT_COST
    finally:
        await dm_ledger.close()


def demo_generators() -> dict[Intent, Generator]:
    return {
        Intent.IMAGE: DemoImageGenerator(cost=IMAGE_COST),
        Intent.SONG: DemoSongGenerator(cost=SONG_COST, delay_s=0),
        Intent.RESEARCH: DemoResearchGenerator(cost=RESEARCH_COST, delay_s=0),
    }


class Hanging:
    """A chat answer that starts and then never finishes."""

    intent = Intent.CHAT
    demo = True

    def estimate(self, prompt: str) -> int:
        return CHAT_COST

    async def generate(self, prompt: str, request: Request) -> AsyncIterator[GeneratorPart]:
        yield TextDelta("Thinking about it")
        await asyncio.Event().wait()


async def test_stopping_the_bot_mid_answer_refunds_and_finishes_the_message(
    fake: FakeDiscord, start_bot: StartBot, ledger: Ledger
) -> None:
    engine = Engine(ledger=ledger, generators={**demo_generators(), Intent.CHAT: Hanging()})
    bot = await start_bot(engine)
    await fake.mention("hello", author=fake.user("111", "alice"))
    await fake.wait_until(lambda: bool(fake.channel_messages()))

    await engine.shutdown(0)
    bot.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await bot

    [reply] = fake.channel_messages()
    assert reply.current.description == f"Thinking about it\n\n⚠️ {RESTARTING}"
    assert reply.current.colour == RED, "the last edit landed before disconnecting"
    report = await ledger.report(Scope("discord", fake.guild_id))
    assert (report.used, report.held) == (0, 0)
    assert [row.status for row in report.recent] == ["refunded"]


async def test_an_answer_that_cannot_be_posted_is_refunded(
    fake: FakeDiscord, start_bot: StartBot, ledger: Ledger, clock: AutoClock
) -> None:
    fake.forbid("POST", r"^/channels/\d+/messages$")
    await start_bot(slow_chat_engine(ledger, clock))
    await fake.mention("hello there", author=fake.user("111", "alice"))

    report = await settled_report(ledger, Scope("discord", fake.guild_id))
    assert [row.status for row in report.recent] == ["refunded"]
    assert report.used == 0
    assert fake.channel_messages() == []


class Broadcasting:
    """A chat model that tries to notify everyone, a role and a user in its answer."""

    intent = Intent.CHAT
    demo = False

    def estimate(self, prompt: str) -> int:
        return CHAT_COST

    async def generate(self, prompt: str, request: Request) -> AsyncIterator[GeneratorPart]:
        yield TextDelta("@everyone and @here, ")
        yield TextDelta("<@&123456789012345678> and <@999>: look!")


async def test_model_output_pings_nobody(fake: FakeDiscord, start_bot: StartBot, ledger: Ledger) -> None:
    await start_bot(Engine(ledger=ledger, generators={**demo_generators(), Intent.CHAT: Broadcasting()}))
    await fake.mention("announce it", author=fake.user("111", "alice"))
    await fake.wait_until(lambda: bool(finished(fake, fake.channel_id)))

    messages = f"/channels/{fake.channel_id}/messages"
    writes = [c for c in fake.calls if c.method in ("POST", "PATCH") and c.path.startswith(messages)]
    assert len(writes) >= 2, "posted, then edited"
    for call in writes:
        # Text goes in embeds, which never notify anyone; a new message also forbids every ping.
        assert not call.body.get("content"), call.body
        assert call.body.get("allowed_mentions", {"parse": []})["parse"] == [], call.body
    assert "@everyone" in writes[-1].body["embeds"][0]["description"], "shown, but inert"
