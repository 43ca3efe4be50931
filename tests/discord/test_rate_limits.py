"""A 429 from Discord is waited out by discord.py's limiter: no text is lost, the final edit lands."""

from __future__ import annotations

from core.demo.text import chat_answer
from core.ledger import Ledger
from tests.discord.conftest import AutoClock, StartBot
from tests.discord.test_mentions import GREEN, slow_chat_engine
from tests.fakes.fake_discord import FakeDiscord


async def test_rate_limited_edits_are_retried_and_the_final_text_lands(
    fake: FakeDiscord, start_bot: StartBot, ledger: Ledger, clock: AutoClock
) -> None:
    fake.rate_limit("POST", r"^/channels/\d+/messages$", times=1)
    fake.rate_limit("PATCH", r"^/channels/\d+/messages/\d+$", times=3)
    await start_bot(slow_chat_engine(ledger, clock))
    await fake.mention("hello there", author=fake.user("111", "alice"))
    await fake.wait_until(lambda: any(m.current.colour == GREEN for m in fake.channel_messages()))

    [reply] = fake.channel_messages()
    assert reply.current.description == chat_answer("hello there").strip()
    limited = [call for call in fake.calls if call.status == 429]
    assert [call.method for call in limited] == ["POST", "PATCH", "PATCH", "PATCH"]
    for call in limited:
        retried = next(
            later
            for later in fake.calls[fake.calls.index(call) + 1 :]
            if later.method == call.method and later.path == call.path and later.status == 200
        )
        assert retried.body == call.body, "the same text is sent again after the wait"


async def test_final_edit_is_retried_after_discord_py_gives_up(
    fake: FakeDiscord, start_bot: StartBot
) -> None:
    # discord.py gives up after five 429s in a row; the surface then retries the final edit itself.
    fake.rate_limit("PATCH", r"^/channels/\d+/messages/\d+$", times=7)
    await start_bot()
    await fake.mention("hello there", author=fake.user("111", "alice"))
    await fake.wait_until(lambda: any(m.current.colour == GREEN for m in fake.channel_messages()))

    [reply] = fake.channel_messages()
    assert reply.current.description == chat_answer("hello there").strip()
    patches = [call.status for call in fake.calls if call.method == "PATCH"]
    assert patches == [429] * 7 + [200]


async def test_final_text_is_posted_anew_when_it_cannot_be_edited_in(
    fake: FakeDiscord, start_bot: StartBot
) -> None:
    fake.rate_limit("PATCH", r"^/channels/\d+/messages/\d+$", times=1000)
    await start_bot()
    await fake.mention("hello there", author=fake.user("111", "alice"))
    await fake.wait_until(lambda: any(m.current.colour == GREEN for m in fake.channel_messages()))

    first, final = fake.channel_messages()
    assert final.current.description == chat_answer("hello there").strip()
    assert final.reference == first.id


async def test_final_edit_survives_a_burst_of_503s(fake: FakeDiscord, start_bot: StartBot) -> None:
    # discord.py raises 503 at once (it retries only 500, 502, 504 and 524); the surface retries.
    fake.fail("PATCH", r"^/channels/\d+/messages/\d+$", times=3, status=503)
    await start_bot()
    await fake.mention("hello there", author=fake.user("111", "alice"))
    await fake.wait_until(lambda: any(m.current.colour == GREEN for m in fake.channel_messages()))

    [reply] = fake.channel_messages()
    assert reply.current.description == chat_answer("hello there").strip()
    assert [call.status for call in fake.calls if call.method == "PATCH"] == [503, 503, 503, 200]


async def test_final_text_is_posted_anew_through_a_503_storm(fake: FakeDiscord, start_bot: StartBot) -> None:
    fake.fail("PATCH", r"^/channels/\d+/messages/\d+$", times=1000, status=503)
    await start_bot()
    await fake.mention("hello there", author=fake.user("111", "alice"))
    await fake.wait_until(lambda: any(m.current.colour == GREEN for m in fake.channel_messages()))

    first, final = fake.channel_messages()
    assert final.current.description == chat_answer("hello there").strip()
    assert final.reference == first.id
