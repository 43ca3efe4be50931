"""What the cost dashboard shows of one scope: spend per day and service, members' own caps, and the
transactions, filtered and paged. Reads only; every amount is the ledger's own (micro-dollars)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from core.db import Database, Row
from core.ledger import Transaction, period_end
from core.parts import Scope

PAGE_SIZE = 50
CSV_ROWS = 100_000
"""The most rows one CSV export holds (a scope's whole history is far smaller in practice)."""
STATUSES = ("held", "charged", "refunded", "orphaned")


def previous_period(period: str) -> str:
    year, month = (int(part) for part in period.split("-"))
    return f"{year - 1}-12" if month == 1 else f"{year}-{month - 1:02d}"


def days_in(period: str) -> int:
    year, month = (int(part) for part in period.split("-"))
    return (period_end(period) - date(year, month, 1)).days


@dataclass(frozen=True, slots=True, kw_only=True)
class DailySpend:
    """Charges of one period by day of the month (1-based) and service."""

    period: str
    days: int
    by_day: dict[int, dict[str, int]]

    def total(self, day: int) -> int:
        return sum(self.by_day.get(day, {}).values())

    @property
    def services(self) -> list[str]:
        return sorted({service for spend in self.by_day.values() for service in spend})


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberCap:
    """A cap an admin set for one member (``None``: that member has no cap), and who set it when."""

    user: str
    cap: int | None
    set_by: str
    set_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class TransactionFilter:
    """Empty fields match everything."""

    service: str = ""
    status: str = ""
    user: str = ""

    def where(self) -> tuple[str, list[Any]]:
        clauses, params = [], []
        for column in ("service", "status", "user"):
            value = getattr(self, column)
            if value:
                clauses.append(f'"{column}" = ?')
                params.append(value)
        return "".join(f" AND {clause}" for clause in clauses), params


@dataclass(frozen=True, slots=True, kw_only=True)
class TransactionPage:
    rows: list[Transaction]
    total: int
    """Rows matching the filter, on every page."""
    page: int
    pages: int


@dataclass(frozen=True, slots=True, kw_only=True)
class FilterChoices:
    services: list[str] = field(default_factory=list)
    users: list[str] = field(default_factory=list)
    statuses: tuple[str, ...] = STATUSES


class Spending:
    """The dashboard's queries on the bot's database."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def daily(self, scope: Scope, period: str) -> DailySpend:
        by_day: dict[int, dict[str, int]] = defaultdict(dict)
        # created_at is ISO 8601 in UTC, so characters 9-10 are the day of the month.
        rows = await self._all(
            "SELECT CAST(substr(created_at, 9, 2) AS INTEGER) AS day, service, SUM(charged) "
            "FROM transactions WHERE scope = ? AND period = ? AND status = 'charged' GROUP BY 1, 2",
            (str(scope), period),
        )
        for day, service, total in rows:
            by_day[int(day)][str(service)] = int(total)
        return DailySpend(period=period, days=days_in(period), by_day=dict(by_day))

    async def member_caps(self, scope: Scope) -> list[MemberCap]:
        """The members of ``scope`` with a cap of their own (``None``: no cap at all), by member."""
        rows = await self._all(
            'SELECT "user", cap_micros, updated_by, updated_at FROM member_caps WHERE scope = ? '
            'ORDER BY "user"',
            (str(scope),),
        )
        return [
            MemberCap(
                user=str(user),
                cap=None if cap is None else int(cap),
                set_by=str(by),
                set_at=datetime.fromisoformat(at),
            )
            for user, cap, by, at in rows
        ]

    async def choices(self, scope: Scope) -> FilterChoices:
        services = await self._all(
            "SELECT DISTINCT service FROM transactions WHERE scope = ? ORDER BY service", (str(scope),)
        )
        users = await self._all(
            'SELECT DISTINCT "user" FROM transactions WHERE scope = ? ORDER BY "user"', (str(scope),)
        )
        return FilterChoices(services=[str(row[0]) for row in services], users=[str(row[0]) for row in users])

    async def page(
        self, scope: Scope, chosen: TransactionFilter, *, page: int = 1, size: int = PAGE_SIZE
    ) -> TransactionPage:
        """Page ``page`` (1-based, clamped to the pages there are) of the matching rows, newest first."""
        where, params = chosen.where()
        [(total,)] = await self._all(
            f"SELECT COUNT(*) FROM transactions WHERE scope = ?{where}", (str(scope), *params)
        )
        pages = max(1, -(-int(total) // size))
        page = min(max(1, page), pages)
        rows = await self.rows(scope, chosen, limit=size, offset=(page - 1) * size)
        return TransactionPage(rows=rows, total=int(total), page=page, pages=pages)

    async def rows(
        self, scope: Scope, chosen: TransactionFilter, *, limit: int = CSV_ROWS, offset: int = 0
    ) -> list[Transaction]:
        where, params = chosen.where()
        rows = await self._all(
            'SELECT id, created_at, "user", service, prompt, '
            " reserved, charged, status, request_id, demo "
            f"FROM transactions WHERE scope = ?{where} ORDER BY id DESC LIMIT ? OFFSET ?",
            (str(scope), *params, limit, offset),
        )
        return [
            Transaction(
                id=int(row[0]),
                created_at=datetime.fromisoformat(row[1]),
                user=str(row[2]),
                service=str(row[3]),
                prompt=str(row[4]),
                reserved=int(row[5]),
                charged=int(row[6]),
                status=str(row[7]),
                request_id=str(row[8]),
                demo=bool(row[9]),
            )
            for row in rows
        ]

    async def _all(self, sql: str, params: tuple[Any, ...]) -> list[Row]:
        return await self._database.fetchall(sql, params)
