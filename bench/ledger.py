"""Ledger throughput: reservations per second with 1, 10 and 100 concurrent writers, both the
scope's budget and each member's cap checked in the one statement, and overspend of either."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.process import run_like_the_bot
from core.ledger import Hold, Ledger
from core.members import MemberCaps
from core.parts import Scope

AMOUNT = 40_000
MEMBERS = 20


async def measure(writers: int, *, reservations: int, directory: Path) -> dict[str, float]:
    """``writers`` tasks race to reserve ``reservations`` holds for ``MEMBERS`` members (timed:
    reservations/s, refusals included), then settle every granted hold (timed: settlements/s).

    Half the members have a cap that fits half their share (set for them), the others the default
    cap, which fits all of it; the scope's budget fits 70% of everything, so both limits bind.
    Overspend counts grants beyond either limit; it must be 0.
    """
    share = reservations // MEMBERS
    fits = reservations * 7 // 10
    ledger = await Ledger.open(
        f"sqlite:///{directory}/bench-{writers}.db", default_limit=fits * AMOUNT, member_cap=share * AMOUNT
    )
    scope = Scope("bench", str(writers))
    members = [f"member{n}" for n in range(MEMBERS)]
    capped = members[: MEMBERS // 2]
    member_fits = {member: share // 2 if member in capped else share for member in members}
    caps = MemberCaps(ledger)
    for member in capped:
        await caps.set_cap(scope, member, member_fits[member] * AMOUNT, by="bench")
    holds: list[tuple[str, Hold]] = []

    async def writer(first: int, count: int) -> None:
        for n in range(first, first + count):
            member = members[n % MEMBERS]
            hold = await ledger.reserve(
                scope, AMOUNT, user=member, service="image", prompt="p", request_id=str(n)
            )
            if isinstance(hold, Hold):
                holds.append((member, hold))

    per_writer = reservations // writers
    try:
        started = time.perf_counter()
        await asyncio.gather(*(writer(w * per_writer, per_writer) for w in range(writers)))
        reserving = time.perf_counter() - started
        started = time.perf_counter()
        await asyncio.gather(*(ledger.settle(hold, AMOUNT) for _, hold in holds))
        settling = time.perf_counter() - started
        report = await ledger.report(scope)
        spent = {member: (await ledger.member_report(scope, member)).used for member in members}
    finally:
        await ledger.close()
    granted = Counter(member for member, _ in holds)
    member_overspend = sum(
        max(0, granted[member] - member_fits[member]) + int(spent[member] > member_fits[member] * AMOUNT)
        for member in members
    )
    overspend = max(0, len(holds) - fits) + int(report.used + report.held > report.limit)
    return {
        "writers": writers,
        "reservations_per_s": reservations / reserving,
        "settlements_per_s": len(holds) / settling,
        "granted": len(holds),
        "overspend": overspend,
        "member_overspend": member_overspend,
    }


async def run(reservations: int = 4_000) -> list[dict[str, float]]:
    with tempfile.TemporaryDirectory() as directory:
        return [await measure(n, reservations=reservations, directory=Path(directory)) for n in (1, 10, 100)]


def main() -> None:
    print("| writers | reservations/s | settlements/s | granted | scope overspend | member overspend |")
    print("|---:|---:|---:|---:|---:|---:|")
    for row in run_like_the_bot(run()):
        print(
            f"| {row['writers']:.0f} | {row['reservations_per_s']:.0f} | {row['settlements_per_s']:.0f} "
            f"| {row['granted']:.0f} | {row['overspend']:.0f} | {row['member_overspend']:.0f} |"
        )


if __name__ == "__main__":
    main()
