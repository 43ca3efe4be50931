"""Final edit lag: the provider's last token → the platform receiving the answer's final text.

``python -m bot run`` runs as its own process against a paced fake LLM and the fake Discord or
Slack in this process, so both ends are read from one clock. One stream at a time; the final
text is the Discord edit that turns the embed green, or Slack's ``chat.stopStream``. The fake
platforms enforce no rate limit here: the lag is the bot's own.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.fakes import BenchDiscord, BenchSlack, PacedOpenAI
from bench.process import ROOMY, bot_env, bot_process, log_tail
from bench.ttft import GREEN, prompt, within
from tests.fakes.fake_slack import APP_TOKEN, BOT_TOKEN

TTFT_S = 0.3
RATE = 20.0
TOKENS = tuple(range(20, 40, 2))
"""Answers of 1 to 2 s, so the last token falls at every point of a one-second edit cadence."""
SAMPLES = 20
CHANNELS = 10
"""Successive Discord answers go to different channels: back to back in one channel, Discord's
5 edits per 5 s per channel (which the bot keeps to) is what would be measured."""
PLATFORMS = ("discord", "slack")


@dataclass(frozen=True)
class Lags:
    platform: str
    seconds: list[float]

    def quantile(self, q: float) -> float:
        values = sorted(self.seconds)
        return values[max(0, math.ceil(q * len(values)) - 1)]


def _llm() -> PacedOpenAI:
    return PacedOpenAI(ttft_s=TTFT_S, rate=RATE, tokens=TOKENS[0])


async def discord_lags(samples: int = SAMPLES, *, channels: int = CHANNELS) -> Lags:
    llm = _llm()
    await llm.start()
    try:
        with tempfile.TemporaryDirectory() as scratch:
            directory = Path(scratch)
            async with BenchDiscord(channels=channels) as fake:
                env = bot_env(
                    directory,
                    DISCORD_TOKEN=fake.token,
                    DISCORD_API_URL=fake.api_url,
                    DISCORD_GATEWAY_URL=fake.gateway_url,
                    TEXT_PROVIDER="openai",
                    OPENAI_API_KEY="sk-bench",
                    OPENAI_BASE_URL=llm.base_url,
                    **ROOMY,
                )
                async with bot_process(directory, env) as process:
                    try:
                        await within(
                            lambda: bool(fake.identified) or process.returncode is not None, 30, "IDENTIFY"
                        )
                        if process.returncode is not None:
                            raise RuntimeError("the bot exited")
                        lags = []
                        for number in range(samples + 1):  # the first one warms up
                            llm.tokens = TOKENS[number % len(TOKENS)]
                            text = prompt(number)
                            author = fake.user(str(10_000 + number), f"user{number}")
                            channel = fake.channel_ids[number % channels]
                            origin = await fake.mention(text, author=author, channel_id=channel)
                            await within(functools.partial(_finished_yet, fake, origin), 30, "the answer")
                            final = _finished(fake, origin)
                            if number and final is not None:
                                lags.append(final - llm.last_tokens[text])
                            await asyncio.sleep(0.2)
                        return Lags("Discord", lags)
                    except Exception as error:
                        raise RuntimeError(f"{error}\n{log_tail(directory)}") from error
    finally:
        await llm.close()


async def slack_lags(samples: int = SAMPLES) -> Lags:
    llm = _llm()
    await llm.start()
    try:
        with tempfile.TemporaryDirectory() as scratch:
            directory = Path(scratch)
            async with BenchSlack() as slack:
                env = bot_env(
                    directory,
                    SLACK_BOT_TOKEN=BOT_TOKEN,
                    SLACK_APP_TOKEN=APP_TOKEN,
                    SLACK_API_URL=slack.api_url,
                    TEXT_PROVIDER="openai",
                    OPENAI_API_KEY="sk-bench",
                    OPENAI_BASE_URL=llm.base_url,
                    **ROOMY,
                )
                async with bot_process(directory, env) as process:
                    try:
                        await within(
                            lambda: slack.open_sockets > 0 or process.returncode is not None,
                            30,
                            "Socket Mode",
                        )
                        if process.returncode is not None:
                            raise RuntimeError("the bot exited")
                        lags = []
                        for number in range(samples + 1):
                            llm.tokens = TOKENS[number % len(TOKENS)]
                            text = prompt(number)
                            payload = slack.mention(text, user=f"U{number:07d}")
                            thread = payload["event"]["ts"]
                            await slack.send_envelope("events_api", payload, within=30)
                            await within(
                                functools.partial(_stopped_yet, slack, thread), 30, "the Slack answer"
                            )
                            if number:
                                lags.append(_stops(slack, thread)[0] - llm.last_tokens[text])
                            await asyncio.sleep(0.2)
                        return Lags("Slack", lags)
                    except Exception as error:
                        raise RuntimeError(f"{error}\n{log_tail(directory)}") from error
    finally:
        await llm.close()


def _finished(fake: BenchDiscord, origin: str) -> float | None:
    """When the reply to ``origin`` turned green (its final text), if it has."""
    for message in fake.messages.values():
        if message.reference == origin and message.current.colour == GREEN:
            return message.current.at
    return None


def _finished_yet(fake: BenchDiscord, origin: str) -> bool:
    return _finished(fake, origin) is not None


def _stopped_yet(slack: BenchSlack, thread: str) -> bool:
    return bool(_stops(slack, thread))


def _stops(slack: BenchSlack, thread: str) -> list[float]:
    return [s.at for s in slack.stamped if s.method == "chat.stopStream" and s.thread_ts == thread]


async def run(
    platforms: tuple[str, ...] = PLATFORMS, samples: int = SAMPLES, channels: int = CHANNELS
) -> list[Lags]:
    rows = []
    if "discord" in platforms:
        rows.append(await discord_lags(samples, channels=channels))
    if "slack" in platforms:
        rows.append(await slack_lags(samples))
    return rows


def table(rows: list[Lags], channels: int = CHANNELS) -> str:
    lines = [
        f"LLM: first token after {TTFT_S * 1000:.0f} ms, then {RATE:.0f} tokens/s, "
        f"{min(TOKENS)}–{max(TOKENS)} tokens; one stream at a time "
        f"(Discord: successive streams in {channels} channels in turn).",
        "",
        "| platform | samples | final edit lag p50 | p90 | max |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row.platform} | {len(row.seconds)} | {row.quantile(0.5) * 1000:.0f} ms "
            f"| {row.quantile(0.9) * 1000:.0f} ms | {max(row.seconds) * 1000:.0f} ms |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.lag", description=__doc__.splitlines()[0])
    parser.add_argument("--platform", choices=PLATFORMS, action="append", help="default: both")
    parser.add_argument("--samples", type=int, default=SAMPLES)
    parser.add_argument("--channels", type=int, default=CHANNELS, help="Discord channels to rotate through")
    args = parser.parse_args(argv)
    started = time.monotonic()
    rows = asyncio.run(run(tuple(args.platform or PLATFORMS), args.samples, args.channels))
    print(table(rows, args.channels))
    print(f"\n_{time.monotonic() - started:.0f} s._")


if __name__ == "__main__":
    main()
