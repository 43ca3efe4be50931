"""The budget ledger: atomic reservations under concurrency, settlement, rollover, orphan sweep."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import aiosqlite
import pytest

from core.budget import format_report
from core.db import MIGRATIONS, Written, sqlite_path
from core.ledger import Hold, Ledger, Refusal, period_end
from core.parts import Scope
from tests.clock import FakeClock

pytestmark = pytest.mark.backends

SCOPE = Scope("discord", "42")


async def reserve(
    ledger: Ledger, amount: int, *, scope: Scope = SCOPE, request_id: str = "r"
) -> Hold | Refusal:
    return await ledger.reserve(scope, amount, user="u", service="image", prompt="p", request_id=request_id)


async def test_concurrent_reservations_never_exceed_the_limit(ledger: Ledger) -> None:
    fits = 37
    await ledger.set_limit(SCOPE, fits * 40_000, by="admin")

    results = await asyncio.gather(*(reserve(ledger, 40_000, request_id=str(n)) for n in range(250)))

    holds = [result for result in results if isinstance(result, Hold)]
    refusals = [result for result in results if isinstance(result, Refusal)]
    assert len(holds) == fits
    assert len(refusals) == 250 - fits
    report = await ledger.report(SCOPE)
    assert report.held == fits * 40_000 and report.used == 0 and report.remaining == 0
    assert all(refusal.report.used + refusal.report.held <= refusal.report.limit for refusal in refusals)

    # Settle half, refund the rest (concurrently too): spent + held never passes the limit.
    await asyncio.gather(
        *(ledger.settle(hold, 40_000) if n % 2 else ledger.refund(hold) for n, hold in enumerate(holds))
    )
    report = await ledger.report(SCOPE)
    assert report.held == 0
    assert report.used == (fits // 2) * 40_000
    assert report.remaining == report.limit - report.used

    # What the refunds released can be reserved again, and no more than that.
    again = await asyncio.gather(*(reserve(ledger, 40_000) for _ in range(40)))
    assert sum(isinstance(result, Hold) for result in again) == fits - fits // 2


async def test_two_connections_to_one_database_cannot_overspend(database_url: str) -> None:
    url = database_url
    first = await Ledger.open(url, default_limit=100)
    second = await Ledger.open(url, default_limit=100)
    try:
        results = await asyncio.gather(*(reserve(ledger, 10) for ledger in (first, second) * 30))
        assert sum(isinstance(result, Hold) for result in results) == 10
        assert (await first.report(SCOPE)).held == 100
    finally:
        await first.close()
        await second.close()


async def test_settle_charges_actual_cost_and_logs_the_transaction(ledger: Ledger) -> None:
    hold = await reserve(ledger, 10_000, request_id="req-1")
    assert isinstance(hold, Hold)
    await ledger.settle(hold, 7_321)
    await ledger.settle(hold, 7_321)  # settling twice changes nothing

    report = await ledger.report(SCOPE)
    assert (report.used, report.held) == (7_321, 0)
    assert report.by_service == {"image": 7_321}
    [row] = report.recent
    assert (row.status, row.reserved, row.charged, row.request_id) == ("charged", 10_000, 7_321, "req-1")


async def test_refund_releases_the_hold_and_charges_nothing(ledger: Ledger) -> None:
    hold = await reserve(ledger, 50_000)
    assert isinstance(hold, Hold)
    await ledger.refund(hold, note="moderated")
    report = await ledger.report(SCOPE)
    assert (report.used, report.held, report.remaining) == (0, 0, report.limit)
    assert report.recent[0].status == "refunded"


async def test_refusal_reports_what_remains(ledger: Ledger) -> None:
    await ledger.set_limit(SCOPE, 50_000, by="admin")
    hold = await reserve(ledger, 40_000)
    assert isinstance(hold, Hold)
    await ledger.settle(hold, 40_000)
    refusal = await reserve(ledger, 40_000)
    assert isinstance(refusal, Refusal)
    assert refusal.needed == 40_000
    assert refusal.report.remaining == 10_000
    assert refusal.report.resets_on > date(2000, 1, 1)


async def test_a_new_month_starts_a_new_period(database_url: str) -> None:
    clock = FakeClock(utc_start=datetime(2026, 1, 31, 23, 59, tzinfo=UTC))
    ledger = await Ledger.open(database_url, default_limit=100, clock=clock)
    try:
        hold = await reserve(ledger, 100)
        assert isinstance(hold, Hold)
        assert isinstance(await reserve(ledger, 1), Refusal)
        await clock.advance(60)  # 2026-02-01 00:00
        # The January hold settles into January even though it closes in February.
        await ledger.settle(hold, 100)
        report = await ledger.report(SCOPE)
        assert (report.period, report.used, report.held) == ("2026-02", 0, 0)
        assert report.resets_on == date(2026, 3, 1)
        assert isinstance(await reserve(ledger, 100), Hold)
    finally:
        await ledger.close()


def test_period_end_wraps_the_year() -> None:
    assert period_end("2026-12") == date(2027, 1, 1)
    assert period_end("2026-01") == date(2026, 2, 1)


async def test_sweep_releases_holds_orphaned_by_a_crash(database_url: str) -> None:
    url = database_url
    crashed = await Ledger.open(url, default_limit=1_000)
    assert isinstance(await reserve(crashed, 600), Hold)
    assert isinstance(await reserve(crashed, 300), Hold)
    await crashed.close()  # the process "dies" with two holds open

    restarted = await Ledger.open(url, default_limit=1_000)
    try:
        assert (await restarted.report(SCOPE)).held == 900
        assert await restarted.sweep_orphans() == 2
        report = await restarted.report(SCOPE)
        assert (report.held, report.used, report.remaining) == (0, 0, 1_000)
        assert {row.status for row in report.recent} == {"orphaned"}
        assert await restarted.sweep_orphans() == 0
    finally:
        await restarted.close()


async def test_limits_can_be_overridden_and_reset(ledger: Ledger) -> None:
    assert (await ledger.report(SCOPE)).limit_is_default
    await ledger.set_limit(SCOPE, 5_000_000, by="admin")
    report = await ledger.report(SCOPE)
    assert (report.limit, report.limit_is_default) == (5_000_000, False)
    await ledger.reset_limit(SCOPE)
    assert (await ledger.report(SCOPE)).limit_is_default


async def test_platform_default_limits(database_url: str) -> None:
    ledger = await Ledger.open(database_url, default_limit=1_000, platform_limits={"discord-dm": 0})
    try:
        assert isinstance(await reserve(ledger, 1, scope=Scope("discord-dm", "7")), Refusal)
        assert isinstance(await reserve(ledger, 1, scope=Scope("discord", "7")), Hold)
    finally:
        await ledger.close()


async def test_schema_is_versioned_and_migrated_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/v.db"
    for _ in range(2):
        await (await Ledger.open(url, default_limit=1)).close()
    async with aiosqlite.connect(tmp_path / "v.db") as db:
        async with db.execute("PRAGMA user_version") as cursor:
            assert (await cursor.fetchone()) == (len(MIGRATIONS),)
        async with db.execute("PRAGMA journal_mode") as cursor:
            assert (await cursor.fetchone()) == ("wal",)


async def test_first_sighting_survives_a_restart(database_url: str) -> None:
    url = database_url
    ledger = await Ledger.open(url, default_limit=1)
    assert await ledger.database.first_sighting("slack:event:Ev1")
    assert not await ledger.database.first_sighting("slack:event:Ev1")
    await ledger.close()
    ledger = await Ledger.open(url, default_limit=1)
    try:
        assert not await ledger.database.first_sighting("slack:event:Ev1")
        assert await ledger.database.first_sighting("slack:event:Ev2")
    finally:
        await ledger.close()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///data/bot.db", Path("data/bot.db")),
        ("sqlite:////var/lib/bot.db", Path("/var/lib/bot.db")),
        ("sqlite://:memory:", ":memory:"),
    ],
)
def test_sqlite_urls(url: str, expected: Path | str) -> None:
    assert sqlite_path(url) == expected


def test_other_databases_are_refused() -> None:
    with pytest.raises(ValueError, match="sqlite"):
        sqlite_path("postgres://localhost/bot")


async def test_a_briefly_locked_database_is_waited_for(tmp_path: Path) -> None:
    ledger = await Ledger.open(f"sqlite:///{tmp_path}/busy.db", default_limit=100)
    locked, committed = threading.Event(), threading.Event()

    def hold_write_lock() -> None:  # another process, e.g. `python -m bot budget set`, mid-write
        other = sqlite3.connect(tmp_path / "busy.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        locked.set()
        time.sleep(0.3)
        committed.set()
        other.execute("COMMIT")
        other.close()

    try:
        locker = asyncio.create_task(asyncio.to_thread(hold_write_lock))
        assert await asyncio.to_thread(locked.wait, 5)
        assert isinstance(await reserve(ledger, 10), Hold)
        assert committed.is_set()  # the reservation waited for the other writer instead of failing
        await locker
    finally:
        await ledger.close()


async def test_a_database_locked_too_long_fails_the_request_cleanly(tmp_path: Path) -> None:
    from core.engine import Engine
    from core.parts import Failure, Intent, Request
    from tests.conftest import demo_engine

    ledger = await Ledger.open(f"sqlite:///{tmp_path}/busy.db", default_limit=10**9, busy_timeout_ms=50)
    other = sqlite3.connect(tmp_path / "busy.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        engine: Engine = demo_engine(ledger)
        request = Request(scope=SCOPE, user="u", text="a fox", intent=Intent.IMAGE)
        parts = [part async for part in engine.handle(request)]
        assert len(parts) == 1
        assert isinstance(parts[0], Failure)
        assert "Something went wrong on my side" in parts[0].message
        assert "Nothing was charged" in parts[0].message
        other.execute("ROLLBACK")
        assert (await ledger.report(SCOPE)).used == 0
    finally:
        other.close()
        await ledger.close()


async def test_a_write_waits_for_an_open_transaction_instead_of_joining_it(ledger: Ledger) -> None:
    """Single writes skip the lock; one sent while a transaction is open must not be rolled back with it."""
    written: list[asyncio.Task[Written]] = []

    async def rolled_back() -> None:
        async with ledger.database.transaction() as db:
            await db.execute("INSERT INTO seen_events (key, seen_at) VALUES ('inside', 'now')")
            written.append(
                asyncio.create_task(
                    ledger.database.write("INSERT INTO seen_events (key, seen_at) VALUES ('outside', 'now')")
                )
            )
            await asyncio.sleep(0.01)  # the write is queued behind the transaction, not inside it
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError):
        await rolled_back()
    await written[0]
    assert await ledger.database.fetchall("SELECT key FROM seen_events ORDER BY key") == [("outside",)]


async def test_purge_forgets_old_prompts_but_keeps_the_money(database_url: str) -> None:
    clock = FakeClock(utc_start=datetime(2026, 1, 1, tzinfo=UTC))
    ledger = await Ledger.open(database_url, default_limit=1000, clock=clock)
    try:
        old = await ledger.reserve(SCOPE, 10, user="u", service="image", prompt="a fox", request_id="1")
        still_held = await ledger.reserve(SCOPE, 20, user="u", service="song", prompt="a sea", request_id="2")
        assert isinstance(old, Hold) and isinstance(still_held, Hold)
        await ledger.settle(old, 10)
        await clock.advance(timedelta(days=20).total_seconds())
        recent = await ledger.reserve(SCOPE, 30, user="u", service="chat", prompt="hello", request_id="3")
        assert isinstance(recent, Hold)
        await ledger.settle(recent, 30)
        await clock.advance(timedelta(days=11).total_seconds())  # the first two are 31 days old, the third 11

        assert await ledger.purge(timedelta(days=30)) == 1
        report = await ledger.report(SCOPE)
        kept = {row.request_id: (row.prompt, row.charged) for row in report.recent}
        assert kept == {"1": ("", 10), "2": ("a sea", 0), "3": ("hello", 30)}
        shown = format_report(report).splitlines()
        assert "• 01-01 00:00 <@u> image $0.00001 charged" in shown  # no prompt left to quote
        assert await ledger.purge(timedelta(days=30)) == 0
    finally:
        await ledger.close()
