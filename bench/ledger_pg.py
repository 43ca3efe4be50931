"""Ledger throughput on PostgreSQL: reservations/s from 1 and 4 processes sharing one database, and
overspend (must be 0), against a throwaway server this benchmark starts (``tests/pg.py``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import multiprocessing
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.synchronize import Barrier
from pathlib import Path

from bench.process import run_like_the_bot
from core.ledger import Hold, Ledger
from core.parts import Scope
from tests import pg

AMOUNT = 40_000
WRITERS_PER_PROCESS = 16
"""Concurrent reservations in flight per process (a busy bot has many requests at once)."""


@dataclass(frozen=True, slots=True)
class Figures:
    processes: int
    scopes: int
    reservations_per_s: float
    settlements_per_s: float
    granted: int
    fits: int
    overspend: int
    bot_cpu_us: float
    """CPU of the bot processes per reservation (µs)."""
    server_cpu_us: float
    """CPU of the PostgreSQL server per reservation (µs): what one core more or less buys."""


Outcome = tuple[float, float, float, int, float]
"""When reserving started and ended, when settling ended, holds granted, CPU seconds reserving."""


async def _worker(url: str, *, count: int, scopes: int, fits: int, barrier: Barrier) -> Outcome:
    """Reserve ``count`` times (spread over ``scopes``), then settle what was granted; returns
    when reserving started and ended (perf_counter: one clock for every process) and grants."""
    ledger = await Ledger.open(url, default_limit=fits * AMOUNT)
    holds: list[Hold] = []

    async def writer(numbers: Sequence[int]) -> None:
        for n in numbers:
            hold = await ledger.reserve(
                Scope("bench", str(n % scopes)),
                AMOUNT,
                user="u",
                service="image",
                prompt="p",
                request_id=str(n),
            )
            if isinstance(hold, Hold):
                holds.append(hold)

    try:
        await ledger.ping()
        await asyncio.to_thread(barrier.wait)
        cpu = time.process_time()
        started = time.perf_counter()
        await asyncio.gather(
            *(writer(range(w, count, WRITERS_PER_PROCESS)) for w in range(WRITERS_PER_PROCESS))
        )
        reserved = time.perf_counter()
        cpu = time.process_time() - cpu
        await asyncio.gather(*(ledger.settle(hold, AMOUNT) for hold in holds))
        settled = time.perf_counter()
    finally:
        await ledger.close()
    return started, reserved, settled, len(holds), cpu


def _process(url: str, count: int, scopes: int, fits: int, barrier: Barrier, results: object) -> None:
    outcome = run_like_the_bot(_worker(url, count=count, scopes=scopes, fits=fits, barrier=barrier))
    results.put(outcome)  # type: ignore[attr-defined]


async def _report(url: str, scopes: int, fits: int) -> tuple[int, int]:
    """Charged holds and the worst overrun of any scope's limit (0 when none)."""
    ledger = await Ledger.open(url, default_limit=fits * AMOUNT)
    try:
        used = worst = 0
        for n in range(scopes):
            report = await ledger.report(Scope("bench", str(n)), recent=0, detailed=False)
            used += report.used
            worst = max(worst, report.used + report.held - report.limit)
        return used // AMOUNT, worst
    finally:
        await ledger.close()


def measure(server: pg.Server, *, processes: int, scopes: int, reservations: int, pool_size: int) -> Figures:
    """``processes`` processes, ``pool_size`` connections each, race to make ``reservations``
    reservations in all, spread evenly over ``scopes`` scopes whose limits fit 90% of them."""
    url = f"{server.create('bench')}&pool_size={pool_size}"
    per_scope = reservations // scopes
    fits = per_scope * 9 // 10
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    results = context.Queue()
    children = [
        context.Process(
            target=_process, args=(url, reservations // processes, scopes, fits, barrier, results)
        )
        for _ in range(processes)
    ]
    server_cpu = _server_cpu_seconds(server)
    for child in children:
        child.start()
    outcomes = [results.get(timeout=300) for _ in children]
    for child in children:
        child.join()
    server_cpu = _server_cpu_seconds(server) - server_cpu
    started = min(outcome[0] for outcome in outcomes)
    reserved = max(outcome[1] for outcome in outcomes)
    settled = max(outcome[2] for outcome in outcomes)
    granted = sum(outcome[3] for outcome in outcomes)
    charged, worst = asyncio.run(_report(url, scopes, fits))
    overspend = max(0, granted - fits * scopes) + max(0, worst) + abs(charged - granted)
    return Figures(
        processes=processes,
        scopes=scopes,
        reservations_per_s=reservations / (reserved - started),
        settlements_per_s=granted / (settled - reserved),
        granted=granted,
        fits=fits * scopes,
        overspend=overspend,
        bot_cpu_us=sum(outcome[4] for outcome in outcomes) / reservations * 1e6,
        server_cpu_us=server_cpu / (reservations + granted) * 1e6,
    )


def _server_cpu_seconds(server: pg.Server) -> float:
    """CPU used so far by the server's processes, and by those that ended (their parent's
    children times), from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
    family = {server.pid}
    changed = True
    while changed:
        grown = family | {pid for pid, parent in parents.items() if parent in family}
        changed, family = grown != family, grown
    total = 0.0
    for pid in family:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reservations", type=int, default=8_000)
    parser.add_argument("--processes", default="1,4", help="process counts, comma-separated")
    parser.add_argument("--scopes", default="1,100", help="scope counts, comma-separated")
    parser.add_argument("--runs", type=int, default=1, help="runs of each row")
    parser.add_argument(
        "--pool-size", type=int, default=2, help="connections per process (the URL's pool_size)"
    )
    parser.add_argument(
        "--durable",
        action="store_true",
        help="fsync and synchronous_commit on (the server's defaults) instead of the test settings",
    )
    options = parser.parse_args()
    durable = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
    settings = durable if options.durable else {}
    print(
        "| processes | scopes | reservations/s | settlements/s | granted / fits | overspend "
        "| bot CPU µs/reservation | PostgreSQL CPU µs/operation |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    with pg.running(settings=settings) as server:
        for processes, scopes, _ in itertools.product(
            _counts(options.processes), _counts(options.scopes), range(options.runs)
        ):
            row = measure(
                server,
                processes=processes,
                scopes=scopes,
                reservations=options.reservations,
                pool_size=options.pool_size,
            )
            print(
                f"| {row.processes} | {row.scopes} | {row.reservations_per_s:.0f} "
                f"| {row.settlements_per_s:.0f} | {row.granted} / {row.fits} | {row.overspend} "
                f"| {row.bot_cpu_us:.0f} | {row.server_cpu_us:.0f} |",
                flush=True,
            )


def _counts(text: str) -> list[int]:
    return [int(part) for part in text.split(",")]


if __name__ == "__main__":
    main()
