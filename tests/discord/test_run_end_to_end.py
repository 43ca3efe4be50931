"""``python -m bot run`` as a real process against the fake Discord: connects, syncs, answers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

from core.demo.text import chat_answer
from tests.fakes.fake_discord import FakeDiscord

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
                assert {c["name"] for c in fake.synced[None]} == {"imagine", "song", "research", "budget"}

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
