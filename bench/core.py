"""Core figures: requests/s through ``handle()``, event-loop lag and memory with 500 jobs in flight."""

from __future__ import annotations

import asyncio
import gc
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from bench.process import run_like_the_bot
from core.demo import DemoChatGenerator, DemoImageGenerator, DemoResearchGenerator, DemoSongGenerator
from core.engine import Engine
from core.ledger import Ledger
from core.pacing import Pace
from core.parts import GeneratorPart, Intent, Media, Request, Scope, TextDelta
from core.render import View, render

PAGE_SIZE = 4096


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_SIZE


class NullSurface:
    """Accepts every call at once: measures the bot, not a platform."""

    max_chars = 4000
    pace = Pace(burst=2, per_second=1.0)

    def __init__(self) -> None:
        self.calls = 0

    async def post(self, view: View) -> None:
        self.calls += 1

    async def edit(self, view: View) -> None:
        self.calls += 1

    async def upload(self, media: Media, *, replaces_progress: bool) -> None:
        self.calls += 1


@dataclass
class PacedText:
    """A text generator streaming ``tokens`` tokens at ``rate`` per second, like a real LLM."""

    intent: Intent = Intent.CHAT
    demo: bool = True
    tokens: int = 100
    rate: float = 20.0

    def estimate(self, prompt: str) -> int:
        return 1

    async def generate(self, prompt: str, request: Request) -> AsyncIterator[GeneratorPart]:
        for n in range(self.tokens):
            yield TextDelta(f"token{n} ")
            await asyncio.sleep(1 / self.rate)


def engine(ledger: Ledger, chat: object) -> Engine:
    return Engine(
        ledger=ledger,
        generators={
            Intent.IMAGE: DemoImageGenerator(cost=1),
            Intent.SONG: DemoSongGenerator(cost=1, delay_s=0),
            Intent.RESEARCH: DemoResearchGenerator(cost=1, delay_s=0),
            Intent.CHAT: chat,  # type: ignore[dict-item]
        },
    )


async def throughput(ledger: Ledger, *, requests: int = 2_000, concurrency: int = 50) -> float:
    """Requests/s through handle() + render() with a zero-latency demo chat generator."""
    bot = engine(ledger, DemoChatGenerator(cost=1, delay_s=0))
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(requests):
        queue.put_nowait(n)

    async def worker() -> None:
        while not queue.empty():
            n = queue.get_nowait()
            request = Request(scope=Scope("bench", str(n % 20)), user="u", text="hi", intent=Intent.CHAT)
            await render(bot.handle(request), NullSurface())

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return requests / (time.perf_counter() - started)


async def in_flight(ledger: Ledger, *, jobs: int = 500) -> dict[str, float]:
    """Event-loop lag (a 10 ms ticker's overshoot) and RSS growth while ``jobs`` stream at once."""
    bot = engine(ledger, PacedText(tokens=100, rate=20.0))
    lags: list[float] = []
    running = True

    async def ticker() -> None:
        while running:
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - before - 0.01)

    gc.collect()
    baseline = rss_bytes()
    peak = baseline
    tick = asyncio.create_task(ticker())
    streams = [
        asyncio.create_task(
            render(
                bot.handle(Request(scope=Scope("bench", str(n)), user="u", text="go", intent=Intent.CHAT)),
                NullSurface(),
            )
        )
        for n in range(jobs)
    ]
    while not all(stream.done() for stream in streams):
        await asyncio.sleep(0.25)
        peak = max(peak, rss_bytes())
    running = False
    await tick
    await asyncio.gather(*streams)
    lags.sort()
    return {
        "jobs": jobs,
        "lag_p50_ms": statistics.median(lags) * 1000,
        "lag_p99_ms": lags[int(len(lags) * 0.99)] * 1000,
        "rss_per_job_kb": (peak - baseline) / jobs / 1024,
    }


async def run() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as directory:
        ledger = await Ledger.open(f"sqlite:///{Path(directory)}/core.db", default_limit=10**12)
        try:
            figures = {"requests_per_s": await throughput(ledger)}
            figures.update(await in_flight(ledger))
        finally:
            await ledger.close()
    return figures


def main() -> None:
    figures = run_like_the_bot(run())
    print("| figure | value |")
    print("|---|---:|")
    print(f"| requests/s through handle() (demo chat, 50 concurrent) | {figures['requests_per_s']:.0f} |")
    jobs = f"{figures['jobs']:.0f} jobs streaming"
    print(f"| event-loop lag p50 with {jobs} | {figures['lag_p50_ms']:.2f} ms |")
    print(f"| event-loop lag p99 with {jobs} | {figures['lag_p99_ms']:.2f} ms |")
    print(f"| resident memory per in-flight job | {figures['rss_per_job_kb']:.1f} KB |")


if __name__ == "__main__":
    main()
