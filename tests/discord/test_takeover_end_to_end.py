"""``kill -9`` a ``python -m bot run`` process mid-song: another live process on the same
PostgreSQL, running that guild's shard, takes the song over once the dead one's lease runs out,
resumes it from its checkpoint (never resubmitted) and posts it once in the channel it was asked
in, charged once."""

from __future__ import annotations

import signal
from collections import deque
from pathlib import Path

import httpx
import pytest

from core.ledger import Ledger
from core.money import usd_to_micros
from core.parts import Scope
from tests import pg
from tests.cli import clean_env
from tests.discord.test_run_end_to_end import start_bot_process, stop_bot_process
from tests.discord.test_shards_end_to_end import SONG_COST, _when_ready, free_port
from tests.fakes.fake_discord import FakeDiscord
from tests.fakes.fake_songs import KEY, MP3, FakeUdio

LEASES = {"LEASE_TTL_S": "2", "LEASE_RENEW_S": "0.5"}
"""Short leases, so the take-over happens within the test's seconds rather than a minute."""


@pytest.mark.timeout(120)
async def test_a_song_of_a_killed_process_is_delivered_once_by_the_survivor_and_charged_once(
    tmp_path: Path, postgres_server: pg.Server
) -> None:
    database_url = postgres_server.create()
    udio = FakeUdio()
    udio.feed = deque(["new"])  # the song stays pending until the test releases it
    await udio.start()
    async with FakeDiscord() as fake:
        while len(fake.guilds) < 4:
            fake.add_guild()
        guild = next(g for g in fake.guilds if fake.shard_of(g, 2) == 1)
        ports = {"doomed": free_port(), "survivor": free_port()}

        def env(shards: str, port: int) -> dict[str, str]:
            return clean_env(
                tmp_path,
                DISCORD_TOKEN=fake.token,
                DISCORD_API_URL=fake.api_url,
                DISCORD_GATEWAY_URL=fake.gateway_url,
                DISCORD_SHARD_COUNT="2",
                DISCORD_SHARD_IDS=shards,
                DATABASE_URL=database_url,
                DEMO_PROVIDERS="true",
                DEMO_DELAY_S="0",
                SONG_API_KEY=KEY,
                SONG_API_URL=udio.base_url,
                SONG_POLL_S="0.05",
                METRICS_PORT=str(port),
                LOG_FORMAT="text",
                LOG_LEVEL="INFO",
                **LEASES,
            )

        doomed = await start_bot_process(tmp_path, env("1", ports["doomed"]), "doomed")
        survivor = None
        try:
            async with httpx.AsyncClient() as http:
                await _when_ready(http, f"http://127.0.0.1:{ports['doomed']}/readyz")
                author = fake.user("4242", "singer")
                asked = await fake.mention("write a song about the sea", author=author, guild_id=guild)
                # Polling means the provider has the job and its checkpoint is stored.
                await fake.wait_until(lambda: bool(udio.requests("/api/feed")), within=30)

                # The survivor runs both shards, the doomed one's included.
                survivor = await start_bot_process(tmp_path, env("0,1", ports["survivor"]), "survivor")
                await _when_ready(http, f"http://127.0.0.1:{ports['survivor']}/readyz")
            doomed.send_signal(signal.SIGKILL)
            assert await doomed.wait() == -signal.SIGKILL
            udio.feed = deque(["complete"])

            def songs() -> list[str]:
                return [
                    m.id
                    for m in list(fake.messages.values())
                    if m.reference == asked and any(a.data == MP3 for a in m.current.attachments)
                ]

            await fake.wait_until(lambda: bool(songs()) or survivor.returncode is not None, within=30)
            [song] = songs()
            assert fake.messages[song].channel_id == fake.messages[asked].channel_id == fake.guilds[guild]
        finally:
            codes = [await stop_bot_process(survivor)] if survivor is not None else []
            if doomed.returncode is None:
                doomed.kill()
                await doomed.wait()
            await udio.close()
        assert codes == [0], _logs(tmp_path)

    assert len(udio.requests("/api/generate")) == 1  # resumed from the checkpoint, never resubmitted
    assert len(songs()) == 1  # delivered once
    logs = _logs(tmp_path)
    assert "taking over job" in (tmp_path / "survivor.log").read_text(), logs
    ledger = await Ledger.open(database_url, default_limit=usd_to_micros("20"))
    try:
        report = await ledger.report(Scope("discord", guild), recent=10)
        assert (report.used, report.held, [row.status for row in report.recent]) == (
            SONG_COST,
            0,
            ["charged"],
        )
    finally:
        await ledger.close()


def _logs(tmp_path: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()}" for p in sorted(tmp_path.glob("*.log")))
