"""Edit cadence: edits per message per second, and 429s, while 100 answers stream at once.

The fake platforms enforce rate limits the way the real ones do. Discord: 5 requests per 5 s per
route and channel (sends and edits counted apart) with ``X-RateLimit-*`` headers, and 50 requests a
second for the whole bot. Slack: ``chat.postMessage`` about once a second per channel (bursts of 3)
and, as an assumption (Slack publishes no figure), appends/updates once a second per message.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.fakes import MARK, BenchDiscord, BenchSlack, PacedOpenAI, SlackLimits
from bench.process import ROOMY, bot_env, bot_process, log_tail
from bench.ttft import GREEN, prompt, within
from tests.fakes.fake_discord import FakeMessage
from tests.fakes.fake_slack import APP_TOKEN, BOT_TOKEN

STREAMS = 100
TOKENS = 120
RATE = 20.0


@dataclass(frozen=True)
class Cadence:
    platform: str
    streams: int
    edits_per_message_per_s: float
    max_edits_per_message_per_s: float
    limited: int
    limited_global: int
    answered: int


def _rate(times: list[float]) -> float:
    """Edits a second over a message's life: writes after the first, over the time they span."""
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0


async def discord_cadence() -> Cadence:
    llm = PacedOpenAI(ttft_s=0.3, rate=RATE, tokens=TOKENS)
    await llm.start()
    try:
        with tempfile.TemporaryDirectory() as scratch:
            directory = Path(scratch)
            async with BenchDiscord(channels=STREAMS, per_channel=5, window_s=5.0, global_per_s=50) as fake:
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
                        await asyncio.sleep(1.5)  # let the start-up calls' rate-limit windows pass
                        fake.limited.clear()
                        origins = set()
                        for number in range(STREAMS):
                            author = fake.user(str(20_000 + number), f"user{number}")
                            origins.add(
                                await fake.mention(
                                    prompt(number), author=author, channel_id=fake.channel_ids[number]
                                )
                            )

                        def replies() -> list[FakeMessage]:
                            return [m for m in fake.messages.values() if m.reference in origins]

                        await within(
                            lambda: (
                                len(replies()) == STREAMS
                                and all(m.current.colour == GREEN for m in replies())
                            ),
                            120,
                            "Discord answers",
                        )
                    except Exception as error:
                        raise RuntimeError(f"{error}\n{log_tail(directory)}") from error
                rates = [_rate(m.edit_times) for m in replies()]
                return Cadence(
                    "Discord",
                    STREAMS,
                    statistics.mean(rates),
                    max(rates),
                    len(fake.limited),
                    sum(1 for _, _, is_global in fake.limited if is_global),
                    len(replies()),
                )
    finally:
        await llm.close()


async def slack_cadence() -> Cadence:
    llm = PacedOpenAI(ttft_s=0.3, rate=RATE, tokens=TOKENS)
    await llm.start()
    try:
        with tempfile.TemporaryDirectory() as scratch:
            directory = Path(scratch)
            async with BenchSlack(limits=SlackLimits()) as slack:
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
                        threads = set()
                        deliveries = []
                        for number in range(STREAMS):
                            payload = slack.mention(
                                prompt(number), user=f"U{number:07d}", channel=f"C{number:07d}"
                            )
                            threads.add(payload["event"]["ts"])
                            deliveries.append(
                                asyncio.create_task(slack.send_envelope("events_api", payload, within=60))
                            )
                        await asyncio.gather(*deliveries)
                        await within(
                            lambda: (
                                threads
                                <= {s.thread_ts for s in slack.stamped if s.method == "chat.stopStream"}
                            ),
                            120,
                            "Slack answers",
                        )
                    except Exception as error:
                        raise RuntimeError(f"{error}\n{log_tail(directory)}") from error
                writes: dict[str, list[float]] = {}
                for stamp in slack.stamped:
                    text = str(stamp.args.get("markdown_text") or stamp.args.get("text") or "")
                    answer = stamp.method in ("chat.startStream", "chat.appendStream", "chat.stopStream")
                    if stamp.thread_ts in threads and (answer or MARK in text):
                        writes.setdefault(str(stamp.thread_ts), []).append(stamp.at)
                rates = [_rate(times) for times in writes.values()]
                return Cadence(
                    "Slack", STREAMS, statistics.mean(rates), max(rates), len(slack.limited), 0, len(writes)
                )
    finally:
        await llm.close()


async def run() -> list[Cadence]:
    return [await discord_cadence(), await slack_cadence()]


def table(rows: list[Cadence]) -> str:
    lines = [
        f"{STREAMS} answers at once, {TOKENS} tokens each at {RATE:.0f} tokens/s "
        f"(about {TOKENS / RATE:.0f} s).",
        "",
        "| platform | streams answered | edits/message/s (mean) | max | 429s | of which global |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row.platform} | {row.answered}/{row.streams} | {row.edits_per_message_per_s:.2f} "
            f"| {row.max_edits_per_message_per_s:.2f} | {row.limited} | {row.limited_global} |"
        )
    return "\n".join(lines)


def main() -> None:
    print(table(asyncio.run(run())))


if __name__ == "__main__":
    main()
