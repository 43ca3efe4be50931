"""Ledger throughput: reservations per second with 1, 10 and 100 concurrent writers, and overspend."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from bench.process import run_like_the_bot
from core.ledger import Hold, Ledger
from core.parts import Scope

AMOUNT = 40_000


async def measure(writers: int, *, reservations: int, directory: Path) -> dict[str, float]:
    """``writers`` tasks race to reserve ``reservations`` holds against a limit that fits exactly
    90% of them (timed: reservations/s, refusals included), then settle every granted hold (timed:
    settlements/s). Overspend counts grants beyond the limit; it must be 0."""
    fits = reservations * 9 // 10
    ledger = await Ledger.open(f"sqlite:///{directory}/bench-{writers}.db", default_limit=fits * AMOUNT)
    scope = Scope("bench", str(writers))
    holds: list[Hold] = []

    async def writer(count: int) -> None:
        for n in range(count):
            hold = await ledger.reserve(
                scope, AMOUNT, user="u", service="image", prompt="p", request_id=str(n)
            )
            if isinstance(hold, Hold):
                holds.append(hold)

    try:
        started = time.perf_counter()
        await asyncio.gather(*(writer(reservations // writers) for _ in range(writers)))
        reserving = time.perf_counter() - started
        started = time.perf_counter()
        await asyncio.gather(*(ledger.settle(hold, AMOUNT) for hold in holds))
        settling = time.perf_counter() - started
        report = await ledger.report(scope)
    finally:
        await ledger.close()
    overspend = max(0, len(holds) - fits) + int(report.used + report.held > report.limit)
    return {
        "writers": writers,
        "reservations_per_s": reservations / reserving,
        "settlements_per_s": len(holds) / settling,
        "granted": len(holds),
        "overspend": overspend,
    }


async def run(reservations: int = 4_000) -> list[dict[str, float]]:
    with tempfile.TemporaryDirectory() as directory:
        return [await measure(n, reservations=reservations, directory=Path(directory)) for n in (1, 10, 100)]


def main() -> None:
    print("| writers | reservations/s | settlements/s | granted | overspend |")
    print("|---:|---:|---:|---:|---:|")
    for row in run_like_the_bot(run()):
        print(
            f"| {row['writers']:.0f} | {row['reservations_per_s']:.0f} | {row['settlements_per_s']:.0f} "
            f"| {row['granted']:.0f} | {row['overspend']:.0f} |"
        )


if __name__ == "__main__":
    main()
