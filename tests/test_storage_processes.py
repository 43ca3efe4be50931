"""Several processes on one database: migrations run once, reservations never overspend, and a
policy change made in one process reaches the others within a second."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from multiprocessing.synchronize import Barrier

import pytest

from core.db import MIGRATIONS, Database
from core.db_postgres import POOL_SIZE, asyncpg_dsn, pool_size
from core.ledger import Hold, Ledger
from core.parts import Intent, Scope
from core.policy import Policies
from tests.clock import FakeClock

pytestmark = pytest.mark.backends

SCOPE = Scope("discord", "42")
AMOUNT = 40_000
PROCESSES = 8
CONCURRENT = 200


async def _reserve_all(url: str, barrier: Barrier) -> int:
    ledger = await Ledger.open(url, default_limit=3 * AMOUNT)
    try:
        await asyncio.to_thread(barrier.wait)  # every process connected: now all at once
        results = await asyncio.gather(
            *(
                ledger.reserve(
                    SCOPE, AMOUNT, user=f"u{n % 7}", service="image", prompt="p", request_id=str(n)
                )
                for n in range(CONCURRENT)
            )
        )
        return sum(isinstance(result, Hold) for result in results)
    finally:
        await ledger.close()


def _reserving_process(url: str, barrier: Barrier, granted: multiprocessing.Queue[int]) -> None:
    granted.put(asyncio.run(_reserve_all(url, barrier)))


def _opening_process(url: str, barrier: Barrier, opened: multiprocessing.Queue[str]) -> None:
    async def open_once() -> None:
        await asyncio.to_thread(barrier.wait)
        await (await Database.open(url)).close()

    try:
        asyncio.run(open_once())
        opened.put("ok")
    except Exception as error:
        opened.put(repr(error))


def _run(target: object, url: str, processes: int) -> list[object]:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    results = context.Queue()
    children = [context.Process(target=target, args=(url, barrier, results)) for _ in range(processes)]  # type: ignore[arg-type]
    for child in children:
        child.start()
    try:
        return [results.get(timeout=60) for _ in children]
    finally:
        for child in children:
            child.join(10)


def test_eight_processes_of_200_concurrent_reservations_against_room_for_3_reserve_exactly_3(
    database_url: str,
) -> None:
    granted = _run(_reserving_process, database_url, PROCESSES)
    assert sum(granted) == 3  # type: ignore[arg-type]

    async def held() -> tuple[int, int]:
        ledger = await Ledger.open(database_url, default_limit=3 * AMOUNT)
        try:
            report = await ledger.report(SCOPE, recent=0)
            return report.held, report.used
        finally:
            await ledger.close()

    assert asyncio.run(held()) == (3 * AMOUNT, 0)


def test_processes_starting_together_migrate_once(database_url: str) -> None:
    assert _run(_opening_process, database_url, 4) == ["ok"] * 4

    async def version() -> int:
        database = await Database.open(database_url)
        try:
            if database.dialect == "postgresql":
                rows = await database.fetchall("SELECT version FROM schema_version ORDER BY version")
                assert [row[0] for row in rows] == list(range(1, len(MIGRATIONS) + 1))  # each once
                return len(rows)
            row = await database.fetchone("PRAGMA user_version")
            assert row is not None
            return int(row[0])
        finally:
            await database.close()

    assert asyncio.run(version()) == len(MIGRATIONS)


async def test_a_policy_change_reaches_another_process_within_a_second(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has no notifications: processes sharing a file wait out CACHE_TTL_S")
    clock = FakeClock()  # frozen: the other process's cache never expires, only a notification helps
    first, second = (
        await Database.open(database_url, clock=clock),
        await Database.open(database_url, clock=clock),
    )
    try:
        here, there = Policies(first), Policies(second)
        assert Intent.SONG not in (await there.policy(SCOPE)).services_off  # cached over there now
        changed = time.monotonic()
        await here.set_service(SCOPE, Intent.SONG, False, by="admin")
        while Intent.SONG not in (await there.policy(SCOPE)).services_off:
            assert time.monotonic() - changed < 1.0, "the other process still has the old policy"
            await asyncio.sleep(0.005)  # a notification from the server, not a timer of ours
    finally:
        await first.close()
        await second.close()


def test_the_url_sizes_each_process_pool_and_asyncpg_never_sees_the_parameter() -> None:
    url = "postgresql://bot@/ledger?host=/run/pg&pool_size=2"
    assert pool_size(url) == 2
    assert pool_size("postgresql://bot@/ledger?host=/run/pg") == POOL_SIZE
    assert asyncpg_dsn(url) == "postgresql://bot@/ledger?host=%2Frun%2Fpg"
    for bad in ("0", "-1", "two", ""):
        with pytest.raises(ValueError, match="pool_size in DATABASE_URL must be a positive whole number"):
            pool_size(f"postgresql://bot@/ledger?pool_size={bad}")


async def test_one_connection_per_process_still_serves_concurrent_reservations(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("pool_size sizes PostgreSQL's connection pool; SQLite has one connection")
    ledger = await Ledger.open(f"{database_url}&pool_size=1", default_limit=3 * AMOUNT)
    try:
        results = await asyncio.gather(
            *(
                ledger.reserve(
                    SCOPE, AMOUNT, user=f"u{n % 2}", service="image", prompt="p", request_id=str(n)
                )
                for n in range(20)
            )
        )
        assert sum(isinstance(result, Hold) for result in results) == 3
        report = await ledger.report(SCOPE, recent=0, detailed=False)
        assert (report.used, report.held) == (0, 3 * AMOUNT)
    finally:
        await ledger.close()
