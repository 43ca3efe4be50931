"""``python -m bot run`` as a real process against the fake Discord: it answers, and survives a restart."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections import deque
from pathlib import Path

from core.demo.text import chat_answer
from tests.cli import clean_env, run_bot
from tests.fakes.fake_discord import FakeDiscord, FakeMessage
from tests.fakes.fake_songs import KEY, MP3, FakeUdio

REPO = Path(__file__).resolve().parents[2]
GREEN = 0x1F8B4C


async def test_bot_run_connects_syncs_and_answers_a_mention(tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(tmp_path),
            "PYTHONPATH": str(REPO),
            "DISCORD_TOKEN": fake.token,
            "DISCORD_API_URL": fake.api_url,
            "DISCORD_GATEWAY_URL": fake.gateway_url,
            "DATABASE_URL": f"sqlite:///{tmp_path}/bot.db",
            "DEMO_DELAY_S": "0",
            "DEMO_PROVIDERS": "true",  # no provider keys: without it every service would be off
            "LOG_LEVEL": "INFO",
        }
        log_path = tmp_path / "bot.log"
        with log_path.open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "run", cwd=tmp_path, env=env, stdout=log, stderr=log
            )
            try:
                await fake.wait_until(
                    lambda: bool(fake.identified) or process.returncode is not None, within=30
                )
                assert process.returncode is None, log_path.read_text()
                assert {c["name"] for c in fake.synced[None]} == {
                    "imagine",
                    "song",
                    "research",
                    "budget",
                    "access",
                    "summary",
                    "forget",
                    "help",
                }

                await fake.mention("hello there", author=fake.user("111", "alice"))
                await fake.wait_until(
                    lambda: any(m.current.colour == GREEN for m in fake.channel_messages()), within=15
                )
                [reply] = fake.channel_messages()
                assert reply.current.description == chat_answer("hello there").strip()
            finally:
                if process.returncode is None:
                    process.send_signal(signal.SIGINT)
                    try:
                        await asyncio.wait_for(process.wait(), timeout=10)
                    except TimeoutError:
                        with contextlib.suppress(ProcessLookupError):
                            process.kill()
                        await process.wait()
        output = log_path.read_text()
        assert "starting discord" in output
        assert fake.token not in output, "the token never reaches the log"


async def test_sigterm_while_a_song_cooks_then_restart_delivers_it_once_and_charges_once(
    tmp_path: Path,
) -> None:
    udio = FakeUdio()
    udio.feed = deque(["new"])  # the song keeps cooking until the test says otherwise
    await udio.start()
    try:
        async with FakeDiscord() as fake:
            env = clean_env(
                tmp_path,
                DISCORD_TOKEN=fake.token,
                DISCORD_API_URL=fake.api_url,
                DISCORD_GATEWAY_URL=fake.gateway_url,
                SONG_API_KEY=KEY,
                SONG_API_URL=udio.base_url,
                SONG_POLL_S="0.05",
                SHUTDOWN_GRACE_S="0.2",
                LOG_FORMAT="text",
                LOG_LEVEL="INFO",
            )
            first = await start_bot_process(tmp_path, env, "first")
            try:
                await fake.wait_until(lambda: bool(fake.identified), within=30)
                asked = await fake.mention("write a song about the sea", author=fake.user("111", "alice"))
                await fake.wait_until(lambda: sum(seen.path == "/api/feed" for seen in udio.seen) >= 2)
            finally:
                assert await stop_bot_process(first) == 0, (tmp_path / "first.log").read_text()
            texts = [m.current.description for m in fake.channel_messages()]
            assert any(text.startswith("⏸️ I'm restarting. A song is still being made") for text in texts)
            assert not any("Nothing was charged" in text for text in texts)

            udio.feed = deque(["complete"])  # the provider finished while the bot was down
            second = await start_bot_process(tmp_path, env, "second")
            try:
                await fake.wait_until(lambda: bool(songs(fake)), within=30)
            finally:
                assert await stop_bot_process(second) == 0, (tmp_path / "second.log").read_text()
            [song] = songs(fake)
            assert song.reference == asked, "a reply to the mention that asked for it"
            assert song.current.attachments[0].data == MP3
            assert "resuming job" in (tmp_path / "second.log").read_text()
            guild = fake.guild_id
    finally:
        await udio.close()

    assert len([seen for seen in udio.seen if seen.method == "POST" and seen.path == "/api/generate"]) == 1
    budget = run_bot(tmp_path, "budget", "show", f"discord:{guild}").stdout
    assert "Held for running work: $0.00" in budget
    assert budget.count("song $0.05 charged") == 1


def songs(fake: FakeDiscord) -> list[FakeMessage]:
    return [m for m in fake.channel_messages() if any(a.data == MP3 for a in m.current.attachments)]


async def start_bot_process(tmp_path: Path, env: dict[str, str], name: str) -> asyncio.subprocess.Process:
    with (tmp_path / f"{name}.log").open("wb") as log:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", cwd=tmp_path, env=env, stdout=log, stderr=log
        )


async def stop_bot_process(process: asyncio.subprocess.Process) -> int:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
    try:
        return await asyncio.wait_for(process.wait(), timeout=30)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError("the bot did not stop on SIGTERM") from None
