"""``python -m bot run`` as a real process in HTTP mode: serves signed events, keeps secrets out of logs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from pathlib import Path

from tests.fakes.fake_slack import BOT_TOKEN, GENERAL, SIGNING_SECRET, FakeSlack

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_bot_run_serves_slack_over_http(slack: FakeSlack, tmp_path: Path) -> None:
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "PYTHONPATH": str(REPO),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_PORT": str(port),
        "SLACK_API_URL": slack.api_url,
        "DATABASE_URL": f"sqlite:///{tmp_path}/bot.db",
        "DEMO_DELAY_S": "0",
        "DEMO_PROVIDERS": "true",  # no provider keys: without it every service would be off
        "LOG_LEVEL": "INFO",
    }
    url = f"http://127.0.0.1:{port}/slack/events"
    log_path = tmp_path / "bot.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", cwd=tmp_path, env=env, stdout=log, stderr=log
        )
        try:
            await slack.wait_for(
                lambda: slack.calls_to("auth.test") or process.returncode is not None, within=30
            )
            assert process.returncode is None, log_path.read_text()
            status, body = await _post_when_listening(
                slack, url, {"type": "url_verification", "challenge": "c1"}
            )
            assert (status, body) == (200, '{"challenge": "c1"}')

            payload = slack.command("imagine", "a lighthouse")
            assert await slack.post_http(url, payload, form=True) == (200, "")
            await slack.wait_for(lambda: any(upload.channel for upload in slack.files.values()), within=15)
            [anchor] = slack.top_level(GENERAL)
            [image] = slack.files.values()
            assert image.thread_ts == anchor.ts
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
    assert "starting slack" in output and f"HTTP mode on port {port}" in output
    assert BOT_TOKEN not in output and SIGNING_SECRET not in output


async def _post_when_listening(slack: FakeSlack, url: str, payload: dict[str, str]) -> tuple[int, str]:
    """The server starts right after ``auth.test``; retry only until it accepts connections."""
    async with asyncio.timeout(10):
        while True:
            try:
                return await slack.post_http(url, payload)
            except OSError:
                await asyncio.sleep(0.05)
