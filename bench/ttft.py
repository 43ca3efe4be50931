"""Time to first visible text: platform event → the bot's first post or edit carrying streamed text.

``python -m bot run`` runs as its own process (its own core, as in production) with
TEXT_PROVIDER=openai pointed at a paced fake LLM; the fake platform and the fake LLM run here, so
both ends of every interval are read from one clock. The ratio divides by the LLM's fixed
time-to-first-token: 1.00 would be a bot that costs nothing. The same fakes then measure
``bench.reference``, the smallest streaming bot on the same libraries, as a yardstick for this
machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from bench.fakes import MARK, BenchDiscord, BenchSlack, PacedOpenAI, Stamped
from bench.process import BOT_RUN, ROOMY, bot_env, bot_process, cpu_seconds, log_tail
from tests.fakes.fake_discord import Version
from tests.fakes.fake_slack import APP_TOKEN, BOT_TOKEN

TTFT_S = 0.3
RATE = 20.0
TOKENS = 20
ONE_AT_A_TIME = 10
BURSTS = 3
"""Bursts of 50 are repeated and pooled: one burst alone varies by ±0.2 from run to run."""
BURST_GAP_S = 1.5
LEVELS = (1, 50, 500)
REFERENCE_LEVELS = (1, 50)
"""The reference bot has no pacing: at 500 it would measure Discord's 429s, not itself."""
PLATFORMS = ("discord", "slack")
LAST_WORD = f"ipsum{TOKENS - 1}"
CHANNELS = 50
GREEN = 0x1F8B4C


@dataclass(frozen=True)
class Sample:
    """One request: seconds from the event to the LLM request, and to the first streamed text."""

    to_provider: float
    to_text: float


@dataclass(frozen=True)
class Row:
    platform: str
    concurrency: int
    samples: list[Sample]
    cpu_s: float
    """The bot process's CPU time for these answers, start to finish."""

    def quantile(self, q: float, *, of: str = "to_text") -> float:
        values: list[float] = sorted(getattr(sample, of) for sample in self.samples)
        return values[max(0, math.ceil(q * len(values)) - 1)]

    @property
    def ratio_p50(self) -> float:
        return self.quantile(0.5) / TTFT_S

    @property
    def ratio_p95(self) -> float:
        return self.quantile(0.95) / TTFT_S


def prompt(number: int) -> str:
    # A greeting is routed by rule, so no classifier call stands between the event and the answer.
    return f"hello there, number {number}"


async def within(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


# --- Discord ------------------------------------------------------------------------------------


def _module(platform: str, reference: bool) -> tuple[str, ...]:
    return ("bench.reference", platform) if reference else BOT_RUN


def _label(platform: str, reference: bool) -> str:
    return f"{platform}, reference bot" if reference else platform


async def discord_rows(
    levels: tuple[int, ...] = LEVELS, *, reference: bool = False, shards: int | None = None
) -> list[Row]:
    """``shards``: that many ``bot run`` processes, one shard each, on one database, the mentions
    spread over ``CHANNELS`` guilds (one channel each); ``None``: one process, ``CHANNELS``
    channels of one guild."""
    llm = PacedOpenAI(ttft_s=TTFT_S, rate=RATE, tokens=TOKENS)
    await llm.start()
    try:
        with tempfile.TemporaryDirectory() as scratch:
            directory = Path(scratch)
            async with (
                BenchDiscord(channels=1 if shards else CHANNELS) as fake,
                contextlib.AsyncExitStack() as stack,
            ):
                guilds = (
                    [fake.guild_id] + [fake.add_guild()[0] for _ in range(CHANNELS - 1)] if shards else []
                )
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
                folders = [directory]
                if shards:
                    folders = [directory / f"shard-{shard}" for shard in range(shards)]
                processes = []
                for shard, folder in enumerate(folders):
                    folder.mkdir(exist_ok=True)
                    sharding = (
                        {"DISCORD_SHARD_COUNT": str(shards), "DISCORD_SHARD_IDS": str(shard)}
                        if shards
                        else {}
                    )
                    processes.append(
                        await stack.enter_async_context(
                            bot_process(
                                folder, env | sharding | {"HOME": str(folder)}, _module("discord", reference)
                            )
                        )
                    )
                try:
                    await within(
                        lambda: (
                            len(fake.identified) == len(processes)
                            or any(p.returncode is not None for p in processes)
                        ),
                        60,
                        "IDENTIFY",
                    )
                    if any(p.returncode is not None for p in processes):
                        raise RuntimeError("the bot exited")
                    run = _DiscordRun(fake, llm, guilds)
                    await run.burst(1, first=0)  # warm-up: guild cache, connection pools
                    label = _label("Discord", reference) + (f", {shards} shard(s)" if shards else "")
                    return await _levels(label, run.burst, levels, pids=[p.pid for p in processes])
                except Exception as error:
                    raise RuntimeError(f"{error}\n" + "\n".join(log_tail(f) for f in folders)) from error
    finally:
        await llm.close()


class _DiscordRun:
    def __init__(self, fake: BenchDiscord, llm: PacedOpenAI, guilds: list[str]) -> None:
        self.fake = fake
        self.llm = llm
        self.guilds = guilds
        """Guilds to spread the mentions over; empty: the channels of the fake's one guild."""

    async def burst(self, count: int, *, first: int) -> list[Sample]:
        fake = self.fake
        sent: dict[str, tuple[float, str]] = {}
        for number in range(first, first + count):
            text = prompt(number)
            author = fake.user(str(10_000 + number), f"user{number}")
            at = time.monotonic()
            if self.guilds:
                origin = await fake.mention(
                    text, author=author, guild_id=self.guilds[number % len(self.guilds)]
                )
            else:
                channel = fake.channel_ids[number % len(fake.channel_ids)]
                origin = await fake.mention(text, author=author, channel_id=channel)
            sent[origin] = (at, text)
        replies = {}

        def finished() -> bool:
            for message in fake.messages.values():
                if message.reference in sent:
                    replies[message.reference] = message
            return len(replies) == count and all(_complete(m.current) for m in replies.values())

        await within(finished, 60, f"{count} Discord answers")
        samples = []
        for origin, (at, text) in sent.items():
            shown = next(v.at for v in replies[origin].versions if MARK in v.description + v.content)
            samples.append(Sample(self.llm.arrivals[text] - at, shown - at))
        return samples


def _complete(version: Version) -> bool:
    # The bot's answer turns green when done; the reference bot's text simply reaches the end.
    return version.colour == GREEN or LAST_WORD in version.content


# --- Slack --------------------------------------------------------------------------------------


async def slack_rows(levels: tuple[int, ...] = LEVELS, *, reference: bool = False) -> list[Row]:
    llm = PacedOpenAI(ttft_s=TTFT_S, rate=RATE, tokens=TOKENS)
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
                async with bot_process(directory, env, _module("slack", reference)) as process:
                    try:
                        await within(
                            lambda: slack.open_sockets > 0 or process.returncode is not None,
                            30,
                            "Socket Mode",
                        )
                        if process.returncode is not None:
                            raise RuntimeError("the bot exited")
                        run = _SlackRun(slack, llm)
                        await run.burst(1, first=0)
                        label = _label("Slack", reference)
                        return await _levels(label, run.burst, levels, pids=[process.pid])
                    except Exception as error:
                        raise RuntimeError(f"{error}\n{log_tail(directory)}") from error
    finally:
        await llm.close()


class _SlackRun:
    def __init__(self, slack: BenchSlack, llm: PacedOpenAI) -> None:
        self.slack = slack
        self.llm = llm

    async def burst(self, count: int, *, first: int) -> list[Sample]:
        slack = self.slack
        sent: dict[str, tuple[float, str]] = {}
        deliveries = []
        for number in range(first, first + count):
            text = prompt(number)
            payload = slack.mention(text, user=f"U{number:07d}", channel=f"C{number % CHANNELS:07d}")
            at = time.monotonic()
            deliveries.append(asyncio.create_task(slack.send_envelope("events_api", payload, within=60)))
            await asyncio.sleep(0)  # let the envelope go out before stamping the next one
            sent[payload["event"]["ts"]] = (at, text)
        await asyncio.gather(*deliveries)

        def finished() -> bool:
            done = {s.thread_ts for s in slack.stamped if _final(s)}
            return all(ts in done for ts in sent)

        await within(finished, 60, f"{count} Slack answers")
        first_text: dict[str, float] = {}
        for stamp in slack.stamped:
            text = str(stamp.args.get("markdown_text") or stamp.args.get("text") or "")
            if stamp.thread_ts in sent and MARK in text:
                first_text.setdefault(stamp.thread_ts, stamp.at)
        return [Sample(self.llm.arrivals[text] - at, first_text[ts] - at) for ts, (at, text) in sent.items()]


def _final(stamp: Stamped) -> bool:
    # The bot ends its answer with a stream stop; the reference bot with an update carrying all of it.
    return stamp.method == "chat.stopStream" or (
        stamp.method == "chat.update" and LAST_WORD in str(stamp.args.get("text"))
    )


# --- both ---------------------------------------------------------------------------------------


async def _levels(
    platform: str, burst: Callable[..., Awaitable[list[Sample]]], levels: tuple[int, ...], *, pids: list[int]
) -> list[Row]:
    rows = []
    number = 1
    for level in levels:
        samples: list[Sample] = []
        rounds = ONE_AT_A_TIME if level == 1 else BURSTS if level <= 50 else 1
        cpu_before = sum(map(cpu_seconds, pids))
        for round_number in range(rounds):
            if round_number and level > 1:
                # Bursts are measured apart: the last one's final edits still fill the platform's
                # one-second rate-limit window, which the bot rightly waits out before posting more.
                await asyncio.sleep(BURST_GAP_S)
            samples += await burst(level, first=number)
            number += level
        rows.append(Row(platform, level, samples, sum(map(cpu_seconds, pids)) - cpu_before))
    return rows


async def run(
    platforms: tuple[str, ...] = PLATFORMS,
    levels: tuple[int, ...] = LEVELS,
    *,
    reference: bool = True,
    shards: tuple[int, ...] = (),
) -> list[Row]:
    rows = []
    yardstick = tuple(level for level in levels if level in REFERENCE_LEVELS) if reference else ()
    if shards:  # Discord only, the bot against itself: the reference bot does not shard
        for count in shards:
            rows += await discord_rows(levels, shards=count)
        return rows
    for platform, measure in (("discord", discord_rows), ("slack", slack_rows)):
        if platform in platforms:
            rows += await measure(levels)
            if yardstick:
                rows += await measure(yardstick, reference=True)
    return rows


def table(rows: list[Row]) -> str:
    lines = [
        f"LLM: first token after {TTFT_S * 1000:.0f} ms, then {RATE:.0f} tokens/s, {TOKENS} tokens.",
        "",
        "| platform | concurrent | samples | ratio p50 | ratio p95 | first text p50 | p95 "
        "| event → LLM request p50 | p95 | bot CPU per answer |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row.platform} | {row.concurrency} | {len(row.samples)} "
            f"| {row.ratio_p50:.2f} | {row.ratio_p95:.2f} "
            f"| {row.quantile(0.5) * 1000:.0f} ms | {row.quantile(0.95) * 1000:.0f} ms "
            f"| {row.quantile(0.5, of='to_provider') * 1000:.0f} ms "
            f"| {row.quantile(0.95, of='to_provider') * 1000:.0f} ms "
            f"| {row.cpu_s / len(row.samples) * 1000:.1f} ms |"
        )
    return "\n".join(lines + _against_reference(rows))


def _against_reference(rows: list[Row]) -> list[str]:
    """Each ratio p50 divided by the reference bot's at the same platform and level."""
    references = {(row.platform, row.concurrency): row for row in rows}
    lines = []
    for row in rows:
        reference = references.get((_label(row.platform, True), row.concurrency))
        if reference is not None:
            lines.append(
                f"- {row.platform}, {row.concurrency} at a time: ratio p50 {row.ratio_p50:.2f} against "
                f"the reference bot's {reference.ratio_p50:.2f} = {row.ratio_p50 / reference.ratio_p50:.2f}×"
            )
    return ["", *lines] if lines else []


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ttft", description=__doc__.splitlines()[0])
    parser.add_argument("--platform", choices=PLATFORMS, action="append", help="default: both")
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)), help="e.g. 1,50")
    parser.add_argument(
        "--reference",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure bench.reference at levels 1 and 50 (default: yes)",
    )
    parser.add_argument(
        "--shards",
        default="",
        help="e.g. 1,2: Discord only, with that many bot processes (one shard each, one database) "
        "and the mentions spread over as many guilds as there are channels",
    )
    args = parser.parse_args(argv)
    levels = tuple(int(level) for level in args.levels.split(","))
    shards = tuple(int(count) for count in args.shards.split(",") if count)
    rows = asyncio.run(
        run(tuple(args.platform or PLATFORMS), levels, reference=args.reference, shards=shards)
    )
    print(table(rows))


if __name__ == "__main__":
    main()
