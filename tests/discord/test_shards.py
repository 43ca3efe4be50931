"""Discord sharding: the real ``AutoShardedClient`` against the fake gateway, which routes each
guild's events to its shard as Discord does. Two clients run shards 0 and 1 of 2 on one database,
as two processes would; on PostgreSQL too when it is installed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import discord
import pytest

from adapters.discord import DiscordConfig, StudioClient
from adapters.discord.config import DiscordSettings
from adapters.discord.pacing import GLOBAL_LIMIT, global_share
from adapters.discord.runner import point_at
from bot.settings import SettingsError, load_settings
from core.demo.text import chat_answer
from core.health import Readiness
from core.ledger import Ledger
from core.parts import Scope
from tests.conftest import CHAT_COST, DEFAULT_LIMIT, demo_engine
from tests.discord.conftest import AutoClock, settled_report
from tests.fakes.fake_discord import FakeDiscord

pytestmark = pytest.mark.backends
GREEN = 0x1F8B4C
ALICE = FakeDiscord.user("111", "alice")


class RecordingClient(StudioClient):
    """The bot's client, noting the guild of every message it is handed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[str] = []

    async def on_message(self, message: discord.Message) -> None:
        self.seen.append(str(message.guild.id) if message.guild else "dm")
        await super().on_message(message)

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """discord.py waits 5 real seconds before identifying each further shard of one client
        (Discord's identify rate limit); the fake has none."""


@pytest.fixture
async def launch(
    fake: FakeDiscord, clock: AutoClock, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Callable[..., Any]]:
    """``await launch(ledger, readiness, **config)``: a connected client, stopped at the end."""
    monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)
    monkeypatch.setattr(
        discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    )
    tasks: list[asyncio.Task[None]] = []

    async def start(ledger: Ledger, readiness: Readiness, **overrides: Any) -> RecordingClient:
        config = DiscordConfig(
            token=fake.token,
            api_url=fake.api_url,
            gateway_url=fake.gateway_url,
            guild_ready_timeout=0.01,
            follow_ups="mention",
            **overrides,
        )
        point_at(config)
        client = RecordingClient(
            config, engine=demo_engine(ledger), ledger=ledger, clock=clock, readiness=readiness
        )

        async def run() -> None:
            async with client:
                await client.start(config.token)

        task = asyncio.create_task(run())
        tasks.append(task)
        await fake.wait_until(lambda: readiness.ready or task.done())
        if task.done():
            task.result()
        return client

    yield start
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def answers_to(fake: FakeDiscord, message_id: str) -> list[str]:
    """The finished (green) replies the bot posted to one message."""
    return [
        message.current.description
        for message in fake.messages.values()
        if message.reference == message_id and message.current.colour == GREEN
    ]


async def test_two_clients_split_the_guilds_by_shard_and_answer_each_mention_once_on_one_ledger(
    fake: FakeDiscord,
    launch: Callable[..., Any],
    ledger: Ledger,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake.shard_count = 5  # what Discord would recommend; set counts are not checked against it
    for _ in range(5):
        fake.add_guild()
    by_shard = {
        shard: {guild for guild in fake.guilds if FakeDiscord.shard_of(guild, 2) == shard} for shard in (0, 1)
    }
    assert all(by_shard.values()), "the guilds fall on both shards"
    other = await Ledger.open(database_url, default_limit=DEFAULT_LIMIT)  # the second "process"
    try:
        caplog.set_level(logging.INFO, logger="adapters.discord.client")
        readiness = [Readiness(), Readiness()]
        first = await launch(ledger, readiness[0], shard_count=2, shard_ids=(0,))
        second = await launch(other, readiness[1], shard_count="2", shard_ids="1")

        assert sorted(tuple(payload["shard"]) for payload in fake.identified) == [(0, 2), (1, 2)]
        assert not fake.calls_to("GET", r"^/gateway/bot$"), "a set count is not asked for"
        assert {str(guild.id) for guild in first.guilds} == by_shard[0]
        assert {str(guild.id) for guild in second.guilds} == by_shard[1]
        assert "discord: running shards 0 of 2" in caplog.messages
        assert "discord: running shards 1 of 2" in caplog.messages
        for shard, health in enumerate(readiness):
            report = health.details_snapshot()["discord"]
            assert report["shard_count"] == 2
            assert isinstance(report["shards"], dict)
            assert list(report["shards"]) == [str(shard)]
            assert report["shards"][str(shard)]["connected"] is True

        asked: dict[str, str] = {}
        for round_ in range(3):
            for guild in fake.guilds:
                text = f"question {round_} in {guild}"
                asked[await fake.mention(text, author=ALICE, guild_id=guild)] = guild
        await fake.wait_until(lambda: all(answers_to(fake, message) for message in asked), within=20)

        for message in asked:
            question = fake.messages[message].current.content.split("> ", 1)[1]
            assert answers_to(fake, message) == [chat_answer(question).strip()]
        assert sorted(first.seen) == sorted(g for g in asked.values() if g in by_shard[0])
        assert sorted(second.seen) == sorted(g for g in asked.values() if g in by_shard[1])
        for guild in fake.guilds:
            report = await settled_report(ledger, Scope("discord", guild))
            assert (report.used, report.held) == (3 * CHAT_COST, 0)
            assert [row.status for row in report.recent] == ["charged"] * 3
    finally:
        await other.close()


async def test_without_settings_one_client_runs_every_shard_discord_recommends(
    fake: FakeDiscord, launch: Callable[..., Any], ledger: Ledger
) -> None:
    fake.shard_count = 2
    for _ in range(3):
        fake.add_guild()
    readiness = Readiness()
    client = await launch(ledger, readiness)

    assert len(fake.calls_to("GET", r"^/gateway/bot$")) == 1
    assert sorted(tuple(payload["shard"]) for payload in fake.identified) == [(0, 2), (1, 2)]
    assert {str(guild.id) for guild in client.guilds} == set(fake.guilds)
    report = readiness.details_snapshot()["discord"]
    assert report["shard_count"] == 2
    assert isinstance(report["shards"], dict)
    assert sorted(report["shards"]) == ["0", "1"]
    assert all(shard["connected"] for shard in report["shards"].values())

    guild = next(g for g in fake.guilds if FakeDiscord.shard_of(g, 2) == 1)
    message = await fake.mention("hello there", author=ALICE, guild_id=guild)
    await fake.wait_until(lambda: bool(answers_to(fake, message)))
    assert answers_to(fake, message) == [chat_answer("hello there").strip()]


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"shard_ids": "0,1"}, "need DISCORD_SHARD_COUNT"),
        ({"shard_count": "2", "shard_ids": "0,2"}, "from 0 to 1"),
        ({"shard_count": "0"}, "greater than or equal to 1"),
        ({"shard_count": "2", "shard_ids": "1,1"}, "listed twice"),
        ({"shard_count": "2", "shard_ids": "one"}, "not a shard id"),
    ],
)
def test_shard_settings_that_cannot_work_are_refused(values: dict[str, str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        DiscordSettings.model_validate(values)


def test_shard_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_SHARD_COUNT", "4")
    monkeypatch.setenv("DISCORD_SHARD_IDS", "3, 1")
    settings = load_settings()
    assert (settings.discord.shard_count, settings.discord.shard_ids) == (4, (1, 3))
    monkeypatch.delenv("DISCORD_SHARD_COUNT")
    with pytest.raises(SettingsError, match=r"DISCORD_SHARD_IDS: .*need DISCORD_SHARD_COUNT"):
        load_settings()


def test_processes_running_some_shards_split_discords_global_limit_between_them() -> None:
    # Discord counts the global limit per bot, not per connection: 4 processes of 1 shard each
    # together stay within it, as does one process running every shard.
    assert global_share((), None) == global_share((0, 1, 2, 3), 4) == GLOBAL_LIMIT
    assert 4 * global_share((2,), 4) <= GLOBAL_LIMIT
    assert global_share((0, 1), 4) + global_share((2, 3), 4) <= GLOBAL_LIMIT
    assert global_share((5,), 1000) == 1, "never no turns at all"
