"""Fault tests on the real process: kill -9 while a paid song is cooking, restart, and the song is
delivered once and charged once; SIGTERM during a stream finishes it."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.cli import clean_env, run_bot
from tests.fakes.fake_slack import APP_TOKEN, BOT_TOKEN, GENERAL, TEAM_ID, FakeSlack
from tests.fakes.fake_songs import KEY, MP3, FakeUdio


@pytest.fixture
async def udio() -> AsyncIterator[FakeUdio]:
    server = FakeUdio()
    await server.start()
    try:
        yield server
    finally:
        await server.close()


class Bot:
    """``python -m bot run`` against the fakes, its log in a file for failure messages."""

    def __init__(self, tmp_path: Path, slack: FakeSlack, udio: FakeUdio, name: str) -> None:
        self.env = clean_env(
            tmp_path,
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_APP_TOKEN=APP_TOKEN,
            SLACK_API_URL=slack.api_url,
            SONG_API_KEY=KEY,
            SONG_API_URL=udio.base_url,
            SONG_POLL_S="0.05",
            LOG_FORMAT="text",
        )
        self.tmp_path = tmp_path
        self.log_path = tmp_path / f"{name}.log"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "run", cwd=self.tmp_path, env=self.env, stdout=log, stderr=log
            )

    def log(self) -> str:
        return self.log_path.read_text()

    async def stop(self, signum: int = signal.SIGTERM) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signum)
        try:
            return await asyncio.wait_for(self.process.wait(), timeout=30)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            raise AssertionError(f"the bot did not stop on signal {signum}:\n{self.log()}") from None


async def test_kill_9_while_a_song_cooks_then_restart_delivers_it_once_and_charges_once(
    tmp_path: Path, udio: FakeUdio
) -> None:
    udio.feed = deque(["new"])  # the song keeps cooking until the test says otherwise
    async with FakeSlack() as slack:
        first = Bot(tmp_path, slack, udio, "first")
        await first.start()
        try:
            await slack.wait_connected(within=30)
            mention = slack.mention("write a song about the sea")
            await slack.send_envelope("events_api", mention)
            await slack.wait_for(lambda: sum(seen.path == "/api/feed" for seen in udio.seen) >= 2, within=30)
        finally:
            assert await first.stop(signal.SIGKILL) == -signal.SIGKILL

        udio.feed = deque(["complete"])  # the provider finished while the bot was down
        second = Bot(tmp_path, slack, udio, "second")
        await second.start()
        try:
            thread = mention["event"]["ts"]
            await slack.wait_for(lambda: any(f.thread_ts == thread for f in slack.files.values()), within=30)
            await asyncio.sleep(0.5)  # room for a (wrong) second delivery to show up
        finally:
            assert await second.stop() == 0, second.log()

    submits = [seen for seen in udio.seen if seen.method == "POST" and seen.path == "/api/generate"]
    assert len(submits) == 1, "the paid generation was resubmitted"
    delivered = [upload for upload in slack.files.values() if upload.thread_ts == thread]
    [song] = [upload for upload in delivered if upload.filename.endswith(".mp3")]
    assert len(slack.calls_to("files.completeUploadExternal")) == 1, "the song was delivered twice"
    assert song.channel == GENERAL
    assert song.data == MP3
    assert "resuming job" in second.log()

    budget = run_bot(tmp_path, "budget", "show", f"slack:{TEAM_ID}").stdout
    assert "Spent: $0.05" in budget
    assert "Held for running work: $0.00" in budget
    assert budget.count("song $0.05 charged") == 1


async def test_sigterm_lets_a_running_stream_finish(tmp_path: Path, udio: FakeUdio) -> None:
    async with FakeSlack() as slack:
        bot = Bot(tmp_path, slack, udio, "bot")
        bot.env["DEMO_DELAY_S"] = "0.05"  # the demo research streams for a few seconds
        bot.env["DEMO_PROVIDERS"] = "true"  # no text key: without it research would be off
        await bot.start()
        try:
            await slack.wait_connected(within=30)
            mention = slack.mention("research the history of the transistor")
            await slack.send_envelope("events_api", mention)
            thread = mention["event"]["ts"]
            await slack.wait_for(lambda: slack.thread(GENERAL, thread), within=30)
        finally:
            assert await bot.stop(signal.SIGTERM) == 0, bot.log()
        [answer] = [message for message in slack.thread(GENERAL, thread) if "References" in message.text]
        assert "## References" in answer.text or "References" in answer.text

    budget = run_bot(tmp_path, "budget", "show", f"slack:{TEAM_ID}").stdout
    assert "research $0.00 charged · demo" in budget  # settled, not refunded; demo work is free
