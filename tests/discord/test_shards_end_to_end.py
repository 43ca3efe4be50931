"""Two ``python -m bot run`` processes as Discord shards 0 and 1 of 2, on one throwaway PostgreSQL,
against the fake Discord: every mention answered exactly once, every answer charged exactly once,
and each process announcing its shard in its log and on ``/readyz``."""

from __future__ import annotations

import asyncio
import socket
from collections import Counter, deque
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.demo.text import chat_answer
from core.ledger import Ledger
from core.money import usd_to_micros
from core.parts import Scope
from tests import pg
from tests.cli import clean_env
from tests.discord.test_run_end_to_end import start_bot_process, stop_bot_process
from tests.fakes.fake_discord import FakeDiscord
from tests.fakes.fake_songs import KEY, MP3, FakeUdio

GREEN = 0x1F8B4C
SONG_COST = usd_to_micros("0.05")  # the SONG_COST_USD default; demo chat answers cost nothing
SONG_EVERY = 20
GUILDS = 40
MENTIONS = 200


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.timeout(240)  # two bot processes and 200 answers paced as Discord requires
async def test_two_shard_processes_on_one_postgresql_answer_every_mention_once_and_charge_once(
    tmp_path: Path, postgres_server: pg.Server
) -> None:
    database_url = postgres_server.create()
    udio = FakeUdio()
    udio.feed = deque(["complete"])  # every song is ready at its first poll
    await udio.start()
    async with FakeDiscord() as fake:
        while len(fake.guilds) < GUILDS:
            fake.add_guild()
        ports = [free_port(), free_port()]
        processes = []
        try:
            for shard, port in enumerate(ports):
                env = clean_env(
                    tmp_path,
                    DISCORD_TOKEN=fake.token,
                    DISCORD_API_URL=fake.api_url,
                    DISCORD_GATEWAY_URL=fake.gateway_url,
                    DISCORD_SHARD_COUNT="2",
                    DISCORD_SHARD_IDS=str(shard),
                    DATABASE_URL=database_url,
                    DEMO_PROVIDERS="true",
                    DEMO_DELAY_S="0",
                    SONG_API_KEY=KEY,
                    SONG_API_URL=udio.base_url,
                    SONG_POLL_S="0.05",
                    METRICS_PORT=str(port),
                    LOG_FORMAT="text",
                    LOG_LEVEL="INFO",
                )
                processes.append(await start_bot_process(tmp_path, env, f"shard-{shard}"))
            await fake.wait_until(
                lambda: len(fake.identified) == 2 or any(p.returncode is not None for p in processes),
                within=60,
            )
            assert all(p.returncode is None for p in processes), _logs(tmp_path)
            assert sorted(tuple(payload["shard"]) for payload in fake.identified) == [(0, 2), (1, 2)]
            async with httpx.AsyncClient() as http:
                for shard, port in enumerate(ports):
                    readyz = await _when_ready(http, f"http://127.0.0.1:{port}/readyz")
                    discord = readyz["details"]["discord"]
                    assert discord["shard_count"] == 2
                    assert list(discord["shards"]) == [str(shard)]
                    assert discord["shards"][str(shard)]["connected"] is True

            guilds = list(fake.guilds)
            asked: dict[str, str] = {}
            songs: dict[str, str] = {}
            for number in range(MENTIONS):
                author = fake.user(str(10_000 + number), f"member-{number}")  # one each: no per-member limit
                guild = guilds[number % GUILDS]
                song = number % SONG_EVERY == 0
                text = f"write a song about question {number}" if song else f"question {number}"
                message = await fake.mention(text, author=author, guild_id=guild)
                asked[message] = guild
                if song:
                    songs[message] = guild
            await fake.wait_until(lambda: _finished(fake) >= set(asked), within=180)
            for message in asked:
                replies = [m for m in fake.messages.values() if m.reference == message]
                if message in songs:
                    assert [any(a.data == MP3 for a in r.current.attachments) for r in replies] == [True]
                else:
                    question = fake.messages[message].current.content.split("> ", 1)[1]
                    assert [r.current.description for r in replies] == [chat_answer(question).strip()]
        finally:
            codes = [await stop_bot_process(process) for process in processes]
            await udio.close()
        assert codes == [0, 0], _logs(tmp_path)

    logs = _logs(tmp_path)
    assert "discord: running shards 0 of 2" in logs
    assert "discord: running shards 1 of 2" in logs
    assert sum(seen.method == "POST" and seen.path == "/api/generate" for seen in udio.seen) == len(songs)
    ledger = await Ledger.open(database_url, default_limit=usd_to_micros("20"))
    try:
        sung = Counter(songs.values())
        for guild, count in Counter(asked.values()).items():
            report = await ledger.report(Scope("discord", guild), recent=100)
            assert (report.used, report.held) == (sung[guild] * SONG_COST, 0)
            assert [row.status for row in report.recent] == ["charged"] * count
    finally:
        await ledger.close()


def _finished(fake: FakeDiscord) -> set[str]:
    """The messages the bot has finished answering: a green reply, or one with the song."""
    return {
        m.reference
        for m in list(fake.messages.values())
        if m.reference and (m.current.colour == GREEN or any(a.data == MP3 for a in m.current.attachments))
    }


async def _when_ready(http: httpx.AsyncClient, url: str) -> dict[str, Any]:
    for _ in range(400):
        try:
            response = await http.get(url)
        except httpx.TransportError:
            response = None
        if response is not None and response.status_code == 200:
            body: dict[str, Any] = response.json()
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"{url} never became ready")


def _logs(tmp_path: Path) -> str:
    return "\n".join(path.read_text() for path in sorted(tmp_path.glob("shard-*.log")))
