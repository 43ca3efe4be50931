"""The budget ledger: per-scope monthly limits in SQLite, reserved atomically, settled or refunded.

Invariant: for every (scope, period), ``used + held <= limit`` at the moment of each reservation.
A reservation is one conditional INSERT of a ``held`` transaction row; a trigger adds it to the
period's ``held`` inside the same statement. SQLite runs a statement (triggers included) atomically
under the database write lock, so concurrent reservations, even from other processes sharing the
file, can never overspend, and each reservation or settlement is a single round trip.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import aiosqlite

from core.parts import Scope

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

MIGRATIONS: tuple[str, ...] = (
    # 1: limits, monthly periods, transactions log.
    """
    CREATE TABLE limits (
        scope        TEXT PRIMARY KEY,
        limit_micros INTEGER NOT NULL CHECK (limit_micros >= 0),
        updated_at   TEXT NOT NULL,
        updated_by   TEXT NOT NULL
    );
    CREATE TABLE periods (
        scope  TEXT NOT NULL,
        period TEXT NOT NULL,
        used   INTEGER NOT NULL DEFAULT 0 CHECK (used >= 0),
        held   INTEGER NOT NULL DEFAULT 0 CHECK (held >= 0),
        PRIMARY KEY (scope, period)
    );
    CREATE TABLE transactions (
        id         INTEGER PRIMARY KEY,
        created_at TEXT NOT NULL,
        settled_at TEXT,
        scope      TEXT NOT NULL,
        period     TEXT NOT NULL,
        user       TEXT NOT NULL,
        service    TEXT NOT NULL,
        prompt     TEXT NOT NULL,
        reserved   INTEGER NOT NULL,
        charged    INTEGER NOT NULL DEFAULT 0,
        status     TEXT NOT NULL
                   CHECK (status IN ('held', 'charged', 'refunded', 'orphaned')),
        request_id TEXT NOT NULL,
        demo       INTEGER NOT NULL DEFAULT 0,
        note       TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX transactions_by_scope ON transactions (scope, id);
    CREATE INDEX transactions_held ON transactions (status) WHERE status = 'held';
    CREATE TRIGGER hold_on_reserve AFTER INSERT ON transactions WHEN NEW.status = 'held'
    BEGIN
        UPDATE periods SET held = held + NEW.reserved WHERE scope = NEW.scope AND period = NEW.period;
    END;
    CREATE TRIGGER release_on_close AFTER UPDATE OF status ON transactions
    WHEN OLD.status = 'held' AND NEW.status != 'held'
    BEGIN
        UPDATE periods SET held = held - OLD.reserved, used = used + NEW.charged
        WHERE scope = OLD.scope AND period = OLD.period;
    END;
    """,
    # 2: platform events already processed (Slack retries, Discord interaction replays).
    """
    CREATE TABLE seen_events (
        key     TEXT PRIMARY KEY,
        seen_at TEXT NOT NULL
    );
    CREATE INDEX seen_events_by_time ON seen_events (seen_at);
    """,
    # 3: durable jobs, so a restart resumes paid work instead of losing or resubmitting it.
    """
    CREATE TABLE jobs (
        id             TEXT PRIMARY KEY,
        created_at     TEXT NOT NULL,
        updated_at     TEXT NOT NULL,
        scope          TEXT NOT NULL,
        user           TEXT NOT NULL,
        intent         TEXT NOT NULL,
        prompt         TEXT NOT NULL,
        state          TEXT NOT NULL CHECK (state IN
                       ('queued', 'running', 'delivering', 'delivered', 'done', 'failed', 'refunded')),
        transaction_id INTEGER NOT NULL REFERENCES transactions (id),
        destination    TEXT,
        checkpoint     TEXT,
        error          TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX jobs_unfinished ON jobs (state)
        WHERE state IN ('queued', 'running', 'delivering', 'delivered');
    """,
    # 4: conversation memory (core.conversations), and bot messages linked to their conversation.
    """
    CREATE TABLE conversation_events (
        id           INTEGER PRIMARY KEY,
        conversation TEXT NOT NULL,
        scope        TEXT NOT NULL,
        user         TEXT NOT NULL,
        kind         TEXT NOT NULL CHECK (kind IN
                     ('user_message', 'answer', 'image', 'song', 'failure', 'summary')),
        text         TEXT NOT NULL,
        created_at   TEXT NOT NULL,
        request_id   TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX conversation_events_by_conversation ON conversation_events (conversation, id);
    CREATE INDEX conversation_events_by_time ON conversation_events (created_at);
    CREATE INDEX conversation_events_by_scope ON conversation_events (scope);
    CREATE TABLE conversation_links (
        key          TEXT PRIMARY KEY,
        conversation TEXT NOT NULL,
        scope        TEXT NOT NULL,
        created_at   TEXT NOT NULL
    );
    CREATE INDEX conversation_links_by_conversation ON conversation_links (conversation);
    CREATE INDEX conversation_links_by_time ON conversation_links (created_at);
    CREATE INDEX conversation_links_by_scope ON conversation_links (scope);
    """,
    # 5: a resumed job's answer is remembered in the conversation it was asked in.
    """
    ALTER TABLE jobs ADD COLUMN conversation TEXT;
    """,
    # 6: transactions whose prompt is still kept, by age, for Ledger.purge.
    """
    CREATE INDEX transactions_with_prompt ON transactions (created_at) WHERE prompt != '';
    """,
)

PROMPT_LOG_CHARS = 500


def utc_now() -> datetime:
    return datetime.now(UTC)


def period_of(moment: datetime) -> str:
    """The budget period a moment falls in: its calendar month in UTC, as ``YYYY-MM``."""
    return moment.astimezone(UTC).strftime("%Y-%m")


def period_end(period: str) -> date:
    """The first day of the month after ``period``: when its budget resets."""
    year, month = (int(part) for part in period.split("-"))
    return date(year + month // 12, month % 12 + 1, 1)


def sqlite_path(database_url: str) -> Path | str:
    """``sqlite:///relative.db``, ``sqlite:////abs.db`` or ``sqlite://:memory:`` → a path for sqlite3."""
    prefix = "sqlite://"
    if not database_url.startswith(prefix):
        raise ValueError("only sqlite:// URLs are supported, e.g. sqlite:///data/bot.db")
    rest = database_url[len(prefix) :]
    if rest in ("", "/:memory:", ":memory:"):
        return ":memory:"
    return Path(rest[1:] if rest.startswith("/") else rest)


@dataclass(frozen=True, slots=True)
class Hold:
    """Money set aside for one piece of work until it is settled or refunded."""

    transaction_id: int
    scope: Scope
    period: str
    amount: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Transaction:
    id: int
    created_at: datetime
    user: str
    service: str
    prompt: str
    reserved: int
    charged: int
    status: str
    request_id: str
    demo: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetReport:
    """A scope's budget for the current period, as shown by ``/budget``."""

    scope: Scope
    period: str
    limit: int
    limit_is_default: bool
    used: int
    held: int
    resets_on: date
    by_service: dict[str, int]
    recent: list[Transaction]

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used - self.held)


@dataclass(frozen=True, slots=True)
class Refusal:
    """A reservation that did not fit; carries the report so the user can be told what remains."""

    needed: int
    report: BudgetReport


class Ledger:
    """Async SQLite ledger. Open with ``await Ledger.open(url, default_limit=...)``."""

    def __init__(
        self,
        db: aiosqlite.Connection,
        *,
        default_limit: int,
        platform_limits: Mapping[str, int] | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self._db = db
        self._default_limit = default_limit
        self._platform_limits = dict(platform_limits or {})
        self._clock = clock
        # One connection carries one transaction at a time; the lock keeps coroutines from
        # interleaving statements inside each other's BEGIN ... COMMIT.
        self._lock = asyncio.Lock()
        self._known_periods: set[tuple[str, str]] = set()

    @classmethod
    async def open(
        cls,
        database_url: str,
        *,
        default_limit: int,
        platform_limits: Mapping[str, int] | None = None,
        clock: Clock = utc_now,
        busy_timeout_ms: int = 5000,
    ) -> Ledger:
        """Open (creating and migrating) the database. ``platform_limits`` overrides the default
        limit for every scope of a platform, e.g. ``{"discord-dm": 0}``."""
        path = sqlite_path(database_url)
        if isinstance(path, Path):
            path.parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(path, isolation_level=None)
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=NORMAL")
            # Another process holding the write lock (a CLI budget change) is waited for this long.
            await db.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            ledger = cls(db, default_limit=default_limit, platform_limits=platform_limits, clock=clock)
            await ledger._migrate()
        except BaseException:
            await db.close()
            raise
        return ledger

    def default_limit_for(self, scope: Scope) -> int:
        """The limit that applies to ``scope`` when no override is stored."""
        return self._platform_limits.get(scope.platform, self._default_limit)

    @property
    def connection(self) -> aiosqlite.Connection:
        """The shared connection, for other stores that keep tables in the same database."""
        return self._db

    async def close(self) -> None:
        await self._db.close()

    async def ping(self) -> None:
        """Raise unless the database answers a trivial query."""
        async with self._db.execute("SELECT 1") as cursor:
            await cursor.fetchone()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on error), one at a time."""
        async with self._lock:
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                await self._db.execute("ROLLBACK")
                raise
            await self._db.execute("COMMIT")

    async def write(self, sql: str, params: Sequence[object] | Mapping[str, object] = ()) -> aiosqlite.Cursor:
        """Run one writing statement as its own transaction (the connection autocommits).

        The database thread runs statements in the order they are queued, and queuing happens
        without yielding, so a single statement only has to wait while a ``transaction`` is open
        (it would become part of it). Not taking the lock otherwise matters under load: a lock
        held across every round trip to the database thread makes each request's writes queue
        behind everyone else's event-loop turns.
        """
        if self._lock.locked():
            async with self._lock:
                return await self._db.execute(sql, params)
        return await self._db.execute(sql, params)

    async def _migrate(self) -> None:
        async with self._db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        version = int(row[0]) if row else 0
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            async with self._lock:
                # executescript runs the whole migration and the version bump in one transaction.
                await self._db.executescript(
                    f"BEGIN IMMEDIATE; {script}; PRAGMA user_version = {number}; COMMIT;"
                )
            log.info("database migrated to schema version %d", number)

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
        """Hold ``amount`` micro-dollars if it fits under the limit; otherwise say what remains."""
        if amount < 0:
            raise ValueError("amount must not be negative")
        now = self._clock()
        period = period_of(now)
        key = str(scope)
        if (key, period) not in self._known_periods:
            await self.write("INSERT OR IGNORE INTO periods (scope, period) VALUES (?, ?)", (key, period))
            self._known_periods.add((key, period))
        cursor = await self.write(
            """
            INSERT INTO transactions (created_at, scope, period, user, service, prompt,
                                      reserved, status, request_id, demo)
            SELECT :now, :scope, :period, :user, :service, :prompt, :amount, 'held', :request_id, :demo
            FROM periods
            WHERE scope = :scope AND period = :period
              AND used + held + :amount <= COALESCE(
                  (SELECT limit_micros FROM limits WHERE scope = :scope), :default_limit)
            """,
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
            },
        )
        if cursor.rowcount == 1 and cursor.lastrowid:
            return Hold(cursor.lastrowid, scope, period, amount)
        return Refusal(amount, await self.report(scope, recent=0, detailed=False))

    async def purge(self, older_than: timedelta) -> int:
        """Blank the prompts of closed transactions created longer ago than ``older_than``;
        returns how many. Amounts, users and services stay: the budget's history is not
        forgotten, only what was asked."""
        cutoff = (self._clock() - older_than).isoformat()
        cursor = await self.write(
            "UPDATE transactions SET prompt = '' WHERE prompt != '' AND created_at < ? AND status != 'held'",
            (cutoff,),
        )
        if cursor.rowcount:
            log.info("removed the prompts of %d transactions older than %s", cursor.rowcount, cutoff)
        return cursor.rowcount

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
        cursor = await self.write(
            "UPDATE transactions SET status = ?, charged = ?, settled_at = ?, note = ? "
            "WHERE id = ? AND status = 'held'",
            (status, charged, self._clock().isoformat(), note, hold.transaction_id),
        )
        if cursor.rowcount != 1:
            log.warning("transaction %d was already closed", hold.transaction_id)

    async def hold_for(self, transaction_id: int) -> Hold | None:
        """The open hold of a transaction (for resuming a job after a restart), if still held."""
        async with self._db.execute(
            "SELECT scope, period, reserved FROM transactions WHERE id = ? AND status = 'held'",
            (transaction_id,),
        ) as cursor:
            row = await cursor.fetchone()
        return Hold(transaction_id, Scope.parse(row[0]), row[1], int(row[2])) if row else None

    async def sweep_orphans(self, *, keep: Collection[int] = (), platform: str | None = None) -> int:
        """Release every hold left by a process that died mid-work, except the transactions in
        ``keep`` (jobs being resumed); with ``platform``, only that platform's scopes. Run once at
        start-up by the process that owns the work."""
        scopes = f"{platform}:%" if platform else "%"
        async with self.transaction() as db:
            cursor = await db.execute(
                "UPDATE transactions SET status = 'orphaned', settled_at = ?, "
                "note = 'released at start-up' WHERE status = 'held' AND scope LIKE ? "
                f"AND id NOT IN ({', '.join('?' * len(keep))})",
                (self._clock().isoformat(), scopes, *keep),
            )
            swept = cursor.rowcount
            await db.execute(
                """
                UPDATE periods SET held = (
                    SELECT COALESCE(SUM(reserved), 0) FROM transactions t
                    WHERE t.scope = periods.scope AND t.period = periods.period AND t.status = 'held')
                """
            )
        if swept:
            log.warning("released %d orphaned budget holds", swept)
        return swept

    # --- idempotency ------------------------------------------------------------------------

    async def first_sighting(self, key: str, *, keep_days: int = 7) -> bool:
        """True the first time ``key`` (e.g. ``slack:event:Ev123``) is seen, false ever after,
        across restarts. Keys older than ``keep_days`` are forgotten."""
        now = self._clock()
        cursor = await self.write(
            "INSERT OR IGNORE INTO seen_events (key, seen_at) VALUES (?, ?)", (key, now.isoformat())
        )
        first = cursor.rowcount == 1
        if first and cursor.lastrowid and cursor.lastrowid % 1000 == 0:
            cutoff = (now - timedelta(days=keep_days)).isoformat()
            await self.write("DELETE FROM seen_events WHERE seen_at < ?", (cutoff,))
        return first

    # --- limits and reports -----------------------------------------------------------------

    async def set_limit(self, scope: Scope, limit: int, *, by: str) -> None:
        if limit < 0:
            raise ValueError("limit must not be negative")
        async with self.transaction() as db:
            await db.execute(
                """
                INSERT INTO limits (scope, limit_micros, updated_at, updated_by) VALUES (?, ?, ?, ?)
                ON CONFLICT (scope) DO UPDATE SET limit_micros = excluded.limit_micros,
                    updated_at = excluded.updated_at, updated_by = excluded.updated_by
                """,
                (str(scope), limit, self._clock().isoformat(), by),
            )

    async def reset_limit(self, scope: Scope) -> None:
        """Drop the scope's override so the default limit applies again."""
        async with self.transaction() as db:
            await db.execute("DELETE FROM limits WHERE scope = ?", (str(scope),))

    async def report(self, scope: Scope, *, recent: int = 10, detailed: bool = True) -> BudgetReport:
        """The scope's current period. ``detailed=False`` skips the per-service split (and pass
        ``recent=0`` to skip the transaction list): cheap enough for every refusal."""
        key = str(scope)
        by_service: dict[str, int] = {}
        rows: list[aiosqlite.Row] = []
        period = period_of(self._clock())
        async with self._lock:
            limit_row = await _fetchone(self._db, "SELECT limit_micros FROM limits WHERE scope = ?", (key,))
            period_row = await _fetchone(
                self._db, "SELECT used, held FROM periods WHERE scope = ? AND period = ?", (key, period)
            )
            if detailed:
                async with self._db.execute(
                    "SELECT service, SUM(charged) FROM transactions WHERE scope = ? AND period = ? "
                    "AND status = 'charged' GROUP BY service ORDER BY service",
                    (key, period),
                ) as cursor:
                    by_service = {str(service): int(total) for service, total in await cursor.fetchall()}
            if recent:
                async with self._db.execute(
                    "SELECT id, created_at, user, service, prompt, reserved, charged, status, request_id, "
                    "demo FROM transactions WHERE scope = ? ORDER BY id DESC LIMIT ?",
                    (key, recent),
                ) as cursor:
                    rows = list(await cursor.fetchall())
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


async def _fetchone(db: aiosqlite.Connection, sql: str, params: tuple[object, ...]) -> aiosqlite.Row | None:
    async with db.execute(sql, params) as cursor:
        return await cursor.fetchone()


def _transaction(row: aiosqlite.Row) -> Transaction:
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
