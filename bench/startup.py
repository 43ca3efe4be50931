"""Start-up: seconds from process start until the bot is ready, for the console and for
``python -m bot run`` against the fake Discord."""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from bench.process import REPO, bot_env, bot_process
from tests.fakes.fake_discord import FakeDiscord

RUNS = 5


def time_to_ready(directory: str) -> float:
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("OPENAI_", "BFL_", "SONG_"))
    }
    env["DATABASE_URL"] = f"sqlite:///{directory}/startup.db"
    env["PYTHONPATH"] = str(REPO)  # this tree, not whichever one the virtualenv was installed from
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "chat"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        cwd=directory,
        env=env,
    )
    assert process.stderr is not None and process.stdin is not None
    line = process.stderr.readline()  # "[providers: ...]" is printed once the app is open
    ready = time.perf_counter() - started
    process.stdin.close()
    process.wait(timeout=30)
    if not line.startswith("[providers:"):
        raise RuntimeError(f"unexpected start-up output: {line!r}")
    return ready


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def discord_time_to_ready(directory: Path) -> tuple[float, str]:
    """``python -m bot run`` against the fake Discord: seconds until ``/readyz`` on METRICS_PORT
    answers 200 when the bot serves it, else until the gateway IDENTIFY (after the command sync)."""
    port = free_port()
    async with FakeDiscord() as fake, aiohttp.ClientSession() as http:
        env = bot_env(
            directory,
            DISCORD_TOKEN=fake.token,
            DISCORD_API_URL=fake.api_url,
            DISCORD_GATEWAY_URL=fake.gateway_url,
            METRICS_PORT=str(port),
        )
        started = time.monotonic()
        async with bot_process(directory, env) as process:
            identified: float | None = None
            while time.monotonic() - started < 30 and process.returncode is None:
                if identified is None and fake.identified and None in fake.synced:
                    identified = time.monotonic() - started
                try:
                    async with http.get(f"http://127.0.0.1:{port}/readyz") as answer:
                        if answer.status == 200:
                            return time.monotonic() - started, "/readyz"
                except aiohttp.ClientError:
                    pass
                if identified is not None and time.monotonic() - started > identified + 2:
                    return identified, "IDENTIFY after command sync"  # no /readyz served
                await asyncio.sleep(0.01)
    raise RuntimeError("the bot did not get ready against the fake Discord within 30 s")


async def discord_samples(directory: Path) -> tuple[list[float], str]:
    await discord_time_to_ready(directory)  # warm the bytecode cache
    samples, how = [], ""
    for _ in range(RUNS):
        seconds, how = await discord_time_to_ready(directory)
        samples.append(seconds)
    return samples, how


def run() -> dict[str, float | str]:
    with tempfile.TemporaryDirectory() as directory:
        time_to_ready(directory)  # warm the bytecode cache
        samples = [time_to_ready(directory) for _ in range(RUNS)]
    with tempfile.TemporaryDirectory() as directory:
        discord, how = asyncio.run(discord_samples(Path(directory)))
    return {
        "startup_median_s": statistics.median(samples),
        "startup_max_s": max(samples),
        "discord_median_s": statistics.median(discord),
        "discord_max_s": max(discord),
        "discord_ready": how,
    }


def table(figures: dict[str, float | str]) -> str:
    ready = figures["discord_ready"]
    return "\n".join(
        [
            "| figure | value |",
            "|---|---:|",
            f"| console `python -m bot chat` to ready (median of {RUNS}) "
            f"| {figures['startup_median_s']:.2f} s |",
            f"| console, worst of {RUNS} | {figures['startup_max_s']:.2f} s |",
            f"| `python -m bot run` against the fake Discord to {ready} (median of {RUNS}) "
            f"| {figures['discord_median_s']:.2f} s |",
            f"| `python -m bot run`, worst of {RUNS} | {figures['discord_max_s']:.2f} s |",
        ]
    )


def main() -> None:
    print(table(run()))


if __name__ == "__main__":
    main()
