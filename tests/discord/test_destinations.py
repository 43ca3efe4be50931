"""Every request the Discord adapter makes says where its answer goes, in ids a restarted bot can use."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from core.engine import Engine
from core.jobs import JobStore
from core.ledger import Ledger
from core.parts import Destination, Part, Request, Scope
from tests.conftest import demo_engine
from tests.discord.conftest import StartBot, settled_report
from tests.fakes.fake_discord import FakeDiscord

ALICE = FakeDiscord.user("111", "alice")


class RecordingEngine(Engine):
    """The demo engine with job rows, keeping every request it is asked to handle."""

    def __init__(self, ledger: Ledger) -> None:
        super().__init__(
            ledger=ledger, generators=demo_engine(ledger).generators, jobs=JobStore(ledger.database)
        )
        self.requests: list[Request] = []

    def handle(self, request: Request) -> AsyncIterator[Part]:
        self.requests.append(request)
        return super().handle(request)


async def stored_destination(ledger: Ledger, request: Request) -> Destination | None:
    job = await JobStore(ledger.database).get(request.id)
    assert job is not None
    return job.destination


@pytest.mark.parametrize("where", ["channel", "thread"])
async def test_a_mention_answers_in_its_channel_replying_to_it(
    where: str, fake: FakeDiscord, start_bot: StartBot, ledger: Ledger
) -> None:
    engine = RecordingEngine(ledger)
    await start_bot(engine)
    channel_id = fake.channel_id if where == "channel" else fake.thread_id
    asked = await fake.mention("write a song about tea", author=ALICE, channel_id=channel_id)
    await settled_report(ledger, Scope("discord", fake.guild_id))

    [request] = engine.requests
    expected = Destination(
        platform="discord", channel=channel_id, message=asked, extra={"guild": fake.guild_id, "user": "111"}
    )
    assert request.destination == expected
    assert await stored_destination(ledger, request) == expected


@pytest.mark.parametrize("command", ["song", "imagine"])
async def test_a_slash_command_answers_under_its_response_message(
    command: str, fake: FakeDiscord, start_bot: StartBot, ledger: Ledger
) -> None:
    engine = RecordingEngine(ledger)
    await start_bot(engine)
    interaction = await fake.slash(command, [{"name": "prompt", "type": 3, "value": "tea"}], user=ALICE)
    await settled_report(ledger, Scope("discord", fake.guild_id))

    [request] = engine.requests
    assert interaction.original is not None
    expected = Destination(
        platform="discord",
        channel=fake.channel_id,
        message=interaction.original,
        extra={"guild": fake.guild_id, "user": "111"},
    )
    assert request.destination == expected
    assert await stored_destination(ledger, request) == expected
