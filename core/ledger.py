"""The budget ledger: per-scope monthly limits, reserved atomically, settled or refunded.

Invariant: for every (scope, period), ``used + held <= limit`` at the moment of each reservation,
and for every member of a scope with a cap, their own ``used + held <= cap`` too. A reservation is
one statement that checks both limits and logs a ``held`` transaction row. On SQLite it is a
conditional INSERT whose triggers add the hold to the period's and the member's ``held``, run
atomically under the database write lock. On PostgreSQL it locks the period's row and the
member's (``FOR UPDATE``), adds the hold to both and inserts the row (one CTE statement); one that
waited for another checks both limits again on the rows as the other left them. So concurrent
reservations, even from many processes sharing the database, can never overspend either limit,
and each reservation or settlement is a single round trip.

(Longer than the other core modules because every money operation is one SQL statement written
out here, in both dialects where they differ; its values live in ``core.accounts``.)
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from datetime import datetime, timedelta

from core.accounts import (
    UNCAPPED,
    BudgetReport,
    CapSource,
    Hold,
    MemberReport,
    Refusal,
    Transaction,
    period_end,
    period_of,
)
from core.clock import Clock
from core.db import DEFAULT_BUSY_TIMEOUT_MS, Database, Row
from core.leases import LEASE_RENEW_S, LEASE_TTL_S, Leases
from core.parts import Scope

__all__ = [
    "UNCAPPED",
    "BudgetReport",
    "CapSource",
    "Hold",
    "Ledger",
    "MemberReport",
    "Refusal",
    "Transaction",
    "period_end",
    "period_of",
]
"""The ledger's values live in ``core.accounts``; they are importable from here too."""

log = logging.getLogger(__name__)

PROMPT_LOG_CHARS = 500


_INSERT_HOLD = """
    INSERT INTO transactions (created_at, scope, period, "user", service, prompt,
                              reserved, status, request_id, demo, owner, lease_until)
    SELECT :now, :scope, :period, :user, :service, :prompt, :amount, 'held', :request_id, :demo,
           :owner, :lease_until
"""
_MEMBER_CAP = """
    COALESCE((SELECT cap FROM (
        SELECT cap_micros AS cap, 1 AS rank FROM member_caps
        WHERE scope = :scope AND "user" = :user
        UNION ALL SELECT cap_micros, 2 FROM member_defaults WHERE scope = :scope
        UNION ALL SELECT :member_cap, 3
    ) AS caps ORDER BY rank LIMIT 1), :uncapped)
"""
_SCOPE_LIMIT = "COALESCE((SELECT limit_micros FROM limits WHERE scope = :scope), :default_limit)"
_RESERVE = f"""{_INSERT_HOLD}
    FROM periods
    WHERE scope = :scope AND period = :period
      AND used + held + :amount <= {_SCOPE_LIMIT}
      AND :amount + COALESCE(
          (SELECT used + held FROM member_periods
           WHERE scope = :scope AND period = :period AND "user" = :user), 0) <= {_MEMBER_CAP}
    RETURNING id
"""
# Both rows are read in the FROM clause and locked: a reservation that waited for another one's
# locks checks both limits again on the rows as that one left them (a subquery would not: it
# keeps the statement's first snapshot). The order of the locks, period then member, is the
# order the triggers of a settlement take them in too. The same statement then adds the hold to
# both rows (their UPDATEs find the rows it locked, as they are now) and logs it: no insert
# trigger on PostgreSQL (migration 15), so the row locks are held for one statement's work.
_RESERVE_POSTGRESQL = f"""
    WITH room AS (
        SELECT p.scope, p.period
        FROM periods p JOIN member_periods m
            ON m.scope = p.scope AND m.period = p.period AND m."user" = :user
        WHERE p.scope = :scope AND p.period = :period
          AND p.used + p.held + :amount <= {_SCOPE_LIMIT}
          AND :amount + m.used + m.held <= {_MEMBER_CAP}
        FOR UPDATE OF p, m
    ), period_hold AS (
        UPDATE periods p SET held = p.held + :amount
        FROM room WHERE p.scope = room.scope AND p.period = room.period
    ), member_hold AS (
        UPDATE member_periods m SET held = m.held + :amount,
            requests = m.requests + (:service <> 'router')::int
        FROM room WHERE m.scope = room.scope AND m.period = room.period AND m."user" = :user
    )
    {_INSERT_HOLD}
    FROM room
    RETURNING id
"""


class Ledger:
    """The money in the bot's database. Open with ``await Ledger.open(url, default_limit=...)``,
    or build one on an open ``Database`` shared with other stores."""

    def __init__(
        self,
        database: Database,
        *,
        default_limit: int,
        platform_limits: Mapping[str, int] | None = None,
        leases: Leases | None = None,
        member_cap: int | None = None,
    ) -> None:
        self.database = database
        self.leases = leases or Leases(database)
        """The leases of the holds this process made."""
        self._clock = database.clock
        self._default_limit = default_limit
        self._platform_limits = dict(platform_limits or {})
        self.member_cap = member_cap
        """Each member's monthly cap where neither they nor their scope has one set; ``None``: no cap."""
        self._known_periods: set[tuple[str, str]] = set()
        self._known_members: set[tuple[str, str, str]] = set()

    @classmethod
    async def open(
        cls,
        database_url: str,
        *,
        default_limit: int,
        platform_limits: Mapping[str, int] | None = None,
        member_cap: int | None = None,
        clock: Clock | None = None,
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
        lease_ttl_s: float = LEASE_TTL_S,
        lease_renew_s: float = LEASE_RENEW_S,
    ) -> Ledger:
        """Open (creating and migrating) the database, for a ledger that closes it with itself.
        ``platform_limits`` overrides the default limit for every scope of a platform, e.g.
        ``{"discord-dm": 0}``; ``member_cap`` is each member's default monthly cap."""
        database = await Database.open(database_url, clock=clock, busy_timeout_ms=busy_timeout_ms)
        return cls(
            database,
            default_limit=default_limit,
            platform_limits=platform_limits,
            member_cap=member_cap,
            leases=Leases(database, ttl_s=lease_ttl_s, renew_s=lease_renew_s),
        )

    def default_limit_for(self, scope: Scope) -> int:
        """The limit that applies to ``scope`` when no override is stored."""
        return self._platform_limits.get(scope.platform, self._default_limit)

    async def close(self) -> None:
        """End this process's leases and close the database (and every store sharing it)."""
        await self.leases.release_all()
        await self.database.close()

    async def ping(self) -> None:
        """Raise unless the ledger's database answers."""
        await self.database.ping()

    # --- reservations -----------------------------------------------------------------------

    async def reserve(
        self,
        scope: Scope,
        amount: int,
        *,
        user: str,
        service: str,
        prompt: str,
        request_id: str,
        demo: bool = False,
    ) -> Hold | Refusal:
        """Hold ``amount`` micro-dollars if it fits both the scope's remaining budget and the
        member's remaining cap; otherwise say which limit refused and what remains."""
        if amount < 0:
            raise ValueError("amount must not be negative")
        now = self._clock.utc()
        period = period_of(now)
        key = str(scope)
        if (key, period) not in self._known_periods:
            await self.database.write(
                "INSERT INTO periods (scope, period) VALUES (?, ?) ON CONFLICT DO NOTHING", (key, period)
            )
            self._known_periods.add((key, period))
        if self.database.dialect == "postgresql" and (key, period, user) not in self._known_members:
            # The reservation locks the member's row with the period's, so it must exist.
            await self.database.write(
                'INSERT INTO member_periods (scope, period, "user") VALUES (?, ?, ?) ON CONFLICT DO NOTHING',
                (key, period, user),
            )
            self._known_members.add((key, period, user))
        written = await self.database.write(
            _RESERVE_POSTGRESQL if self.database.dialect == "postgresql" else _RESERVE,
            {
                "now": now.isoformat(),
                "scope": key,
                "period": period,
                "user": user,
                "service": service,
                "prompt": prompt[:PROMPT_LOG_CHARS],
                "amount": amount,
                "request_id": request_id,
                "demo": int(demo),
                "default_limit": self.default_limit_for(scope),
                "owner": self.leases.owner,
                "lease_until": self.leases.expiry(),
                "member_cap": self.member_cap,
                "uncapped": UNCAPPED,
            },
        )
        if written.rows:
            transaction_id = int(written.rows[0][0])
            self.leases.track(transaction_id)
            return Hold(transaction_id, scope, period, amount)
        report = await self.report(scope, recent=0, detailed=False)
        return Refusal(amount, report, await self.member_report(scope, user))

    async def purge(self, older_than: timedelta) -> int:
        """Blank the prompts of closed transactions created longer ago than ``older_than``;
        returns how many. Amounts, users and services stay: the budget's history is not
        forgotten, only what was asked."""
        cutoff = (self._clock.utc() - older_than).isoformat()
        written = await self.database.write(
            "UPDATE transactions SET prompt = '' WHERE prompt != '' AND created_at < ? AND status != 'held'",
            (cutoff,),
        )
        if written.rowcount:
            log.info("removed the prompts of %d transactions older than %s", written.rowcount, cutoff)
        return written.rowcount

    async def settle(self, hold: Hold, charged: int) -> None:
        """Charge ``charged`` for the held work and release the hold."""
        if charged < 0:
            raise ValueError("charged must not be negative")
        if charged > hold.amount:
            log.warning(
                "charge %d exceeds its reservation %d (transaction %d)",
                charged,
                hold.amount,
                hold.transaction_id,
            )
        await self._close(hold, status="charged", charged=charged, note="")

    async def refund(self, hold: Hold, *, note: str = "") -> None:
        """Release the hold without charging: failure, cancellation or moderation."""
        await self._close(hold, status="refunded", charged=0, note=note)

    async def _close(self, hold: Hold, *, status: str, charged: int, note: str) -> None:
        # Closed or not, this process stops renewing the hold: one left open by a failed write
        # runs out of lease and the periodic sweep releases it.
        self.leases.untrack(hold.transaction_id)
        written = await self.database.write(
            "UPDATE transactions SET status = ?, charged = ?, settled_at = ?, note = ? "
            "WHERE id = ? AND status = 'held'",
            (status, charged, self._clock.utc().isoformat(), note, hold.transaction_id),
        )
        if written.rowcount != 1:
            log.warning("transaction %d was already closed", hold.transaction_id)

    async def hold_for(self, transaction_id: int) -> Hold | None:
        """The open hold of a transaction (for resuming a job after a restart), if still held."""
        row = await self.database.fetchone(
            "SELECT scope, period, reserved FROM transactions WHERE id = ? AND status = 'held'",
            (transaction_id,),
        )
        return Hold(transaction_id, Scope.parse(row[0]), row[1], int(row[2])) if row else None

    async def sweep_orphans(self, *, keep: Collection[int] = (), platform: str | None = None) -> int:
        """At start-up, release the holds whose owner's lease ran out (a process that died
        mid-work), except the transactions in ``keep`` (jobs being resumed); with ``platform``,
        only that platform's scopes. Live processes' holds are never touched."""
        await self.leases.end_leases_of_gone_processes()
        return await self.leases.sweep(keep=keep, platform=platform)

    # --- limits and reports -----------------------------------------------------------------

    async def set_limit(self, scope: Scope, limit: int, *, by: str) -> None:
        if limit < 0:
            raise ValueError("limit must not be negative")
        async with self.database.transaction() as db:
            await db.execute(
                """
                INSERT INTO limits (scope, limit_micros, updated_at, updated_by) VALUES (?, ?, ?, ?)
                ON CONFLICT (scope) DO UPDATE SET limit_micros = excluded.limit_micros,
                    updated_at = excluded.updated_at, updated_by = excluded.updated_by
                """,
                (str(scope), limit, self._clock.utc().isoformat(), by),
            )

    async def reset_limit(self, scope: Scope) -> None:
        """Drop the scope's override so the default limit applies again."""
        async with self.database.transaction() as db:
            await db.execute("DELETE FROM limits WHERE scope = ?", (str(scope),))

    async def report(self, scope: Scope, *, recent: int = 10, detailed: bool = True) -> BudgetReport:
        """The scope's current period. ``detailed=False`` skips the per-service split (and pass
        ``recent=0`` to skip the transaction list): cheap enough for every refusal."""
        key = str(scope)
        by_service: dict[str, int] = {}
        rows: list[Row] = []
        period = period_of(self._clock.utc())
        async with self.database.snapshot() as db:
            limit_row = await db.fetchone("SELECT limit_micros FROM limits WHERE scope = ?", (key,))
            period_row = await db.fetchone(
                "SELECT used, held FROM periods WHERE scope = ? AND period = ?", (key, period)
            )
            if detailed:
                totals = await db.fetchall(
                    "SELECT service, SUM(charged) FROM transactions WHERE scope = ? AND period = ? "
                    "AND status = 'charged' GROUP BY service ORDER BY service",
                    (key, period),
                )
                by_service = {str(service): int(total) for service, total in totals}
            if recent:
                rows = await db.fetchall(
                    'SELECT id, created_at, "user", service, prompt, reserved, charged, status, request_id, '
                    "demo FROM transactions WHERE scope = ? ORDER BY id DESC LIMIT ?",
                    (key, recent),
                )
        used, held = (int(period_row[0]), int(period_row[1])) if period_row else (0, 0)
        return BudgetReport(
            scope=scope,
            period=period,
            limit=int(limit_row[0]) if limit_row else self.default_limit_for(scope),
            limit_is_default=limit_row is None,
            used=used,
            held=held,
            resets_on=period_end(period),
            by_service=by_service,
            recent=[_transaction(row) for row in rows],
        )

    async def member_report(self, scope: Scope, user: str) -> MemberReport:
        """``user``'s spend, holds and requests in ``scope``'s current period, and their cap."""
        key = str(scope)
        period = period_of(self._clock.utc())
        row = await self.database.fetchone(
            """
            SELECT
                (SELECT cap_micros FROM member_caps WHERE scope = :scope AND "user" = :user),
                EXISTS (SELECT 1 FROM member_caps WHERE scope = :scope AND "user" = :user),
                (SELECT cap_micros FROM member_defaults WHERE scope = :scope),
                EXISTS (SELECT 1 FROM member_defaults WHERE scope = :scope),
                m.used, m.held, m.requests
            FROM (SELECT 1) AS one LEFT JOIN member_periods m
                ON m.scope = :scope AND m.period = :period AND m."user" = :user
            """,
            {"scope": key, "user": user, "period": period},
        )
        assert row is not None
        own, has_own, scope_default, has_scope_default = row[0], bool(row[1]), row[2], bool(row[3])
        source: CapSource
        if has_own:
            cap, source = own, "member"
        elif has_scope_default:
            cap, source = scope_default, "scope"
        else:
            cap, source = self.member_cap, "default"
        return MemberReport(
            scope=scope,
            user=user,
            period=period,
            cap=None if cap is None else int(cap),
            cap_source=source,
            used=int(row[4] or 0),
            held=int(row[5] or 0),
            requests=int(row[6] or 0),
            resets_on=period_end(period),
        )


def _transaction(row: Row) -> Transaction:
    return Transaction(
        id=int(row[0]),
        created_at=datetime.fromisoformat(row[1]),
        user=row[2],
        service=row[3],
        prompt=row[4],
        reserved=int(row[5]),
        charged=int(row[6]),
        status=row[7],
        request_id=row[8],
        demo=bool(row[9]),
    )
