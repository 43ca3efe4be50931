"""The PostgreSQL implementation of ``core.db.Database`` (asyncpg): a connection pool shared by every
store, for several bot processes on one ledger."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from core.clock import Clock
from core.db import MIGRATIONS, Database, Dialect, Params, Row, Written, arguments, migration_sql, numbered

log = logging.getLogger(__name__)

POOL_SIZE = 4
"""Connections per process unless the URL says ``?pool_size=N``. Each reservation or settlement
holds one for a single round trip, so a few serve a busy process; more only add backends that
contend for the server's cores and its hot rows (docs/scaling.md: 4 processes × 10 connections
on 2 cores made fewer reservations per second than 1 process)."""
MIGRATION_LOCK = 0x53_54_55_44_49_4F
"""The advisory lock key that makes processes starting together migrate one at a time."""
CLOSE_WAIT_S = 5.0
"""How long closing waits for statements already sent."""
_COUNT = re.compile(r"(\d+)$")


def asyncpg_dsn(database_url: str) -> str:
    """``postgresql+asyncpg://`` and ``postgres://`` spellings as the ``postgresql://`` asyncpg reads
    (without our own ``pool_size`` parameter, which asyncpg would send as a server setting)."""
    parts = urlsplit(database_url.strip())
    query = urlencode(
        [pair for pair in parse_qsl(parts.query, keep_blank_values=True) if pair[0] != "pool_size"]
    )
    return urlunsplit(("postgresql", parts.netloc, parts.path, query, parts.fragment))


def pool_size(database_url: str) -> int:
    """The URL's ``?pool_size=N`` (a positive whole number), else ``POOL_SIZE``."""
    query = parse_qsl(urlsplit(database_url.strip()).query, keep_blank_values=True)
    values = [value for key, value in query if key == "pool_size"]
    if not values:
        return POOL_SIZE
    if not values[-1].isdigit() or int(values[-1]) < 1:
        raise ValueError(f"pool_size in DATABASE_URL must be a positive whole number, not {values[-1]!r}")
    return int(values[-1])


async def _run(connection: Any, sql: str, params: Params) -> Written:
    query, order = numbered(sql)
    args = arguments(order, params)
    if "RETURNING" in sql:
        rows = [tuple(record) for record in await connection.fetch(query, *args)]
        return Written(len(rows), rows)
    status: str = await connection.execute(query, *args)
    found = _COUNT.search(status)
    return Written(int(found.group(1)) if found else 0)


async def _keep_session(connection: Any) -> None:
    """A released connection goes back to the pool as it is: the stores change no session state
    (no SET, LISTEN or session advisory lock), and asyncpg's default reset query would double
    the round trips of every statement."""


class _Session:
    """Statements on one connection of the pool, inside one transaction."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    async def execute(self, sql: str, params: Params = ()) -> Written:
        return await _run(self._connection, sql, params)

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        query, order = numbered(sql)
        record = await self._connection.fetchrow(query, *arguments(order, params))
        return tuple(record) if record is not None else None

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        query, order = numbered(sql)
        return [tuple(record) for record in await self._connection.fetch(query, *arguments(order, params))]


class Unreachable(ConnectionError):
    """The PostgreSQL server could not be reached; ``host`` names it (for the start-up message)."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"can't reach the PostgreSQL server {host}: {reason}")
        self.host = host


class PostgresDatabase(Database):
    """A pool of connections to one PostgreSQL database. Open with ``await Database.open(url)``."""

    dialect: Dialect = "postgresql"

    def __init__(self, pool: Any, *, clock: Clock) -> None:
        super().__init__()
        self._pool = pool
        self.clock = clock
        self._dsn = ""
        self._listener: Any = None
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @classmethod
    async def connect(cls, database_url: str, *, clock: Clock) -> PostgresDatabase:
        """Connect and migrate (under an advisory lock, so processes starting together migrate once)."""
        dsn = asyncpg_dsn(database_url)
        size = pool_size(database_url)
        try:
            pool = await asyncpg.create_pool(dsn, min_size=1, max_size=size, reset=_keep_session)
        except OSError as error:
            host = urlsplit(dsn).hostname or "on the local socket"
            raise Unreachable(host, error.strerror or str(error)) from error
        try:
            database = cls(pool, clock=clock)
            database._dsn = dsn
            await database._migrate()
        except BaseException:
            await pool.close()
            raise
        return database

    async def close(self) -> None:
        """Close once the statements already sent have finished (as SQLite's connection does:
        a write started just before a shutdown is not lost to it)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), CLOSE_WAIT_S)
        if self._listener is not None:
            await self._listener.close()
        await self._pool.close()

    async def notify(self, channel: str, payload: str) -> None:
        await self.write("SELECT pg_notify(?, ?)", (channel, payload))

    async def listen(self, channel: str, callback: Callable[[str], None]) -> None:
        """LISTEN on a connection of its own (a pooled one would lose it on release)."""
        if self._listener is None:
            self._listener = await asyncpg.connect(self._dsn)
        await self._listener.add_listener(
            channel, lambda _connection, _pid, _channel, payload: callback(payload)
        )

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        self._busy += 1
        self._idle.clear()
        try:
            async with self._pool.acquire() as connection:
                yield connection
        finally:
            self._busy -= 1
            if not self._busy:
                self._idle.set()

    async def write(self, sql: str, params: Params = ()) -> Written:
        async with self._connection() as connection:
            return await _run(connection, sql, params)

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        async with self._connection() as connection:
            return await _Session(connection).fetchone(sql, params)

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        async with self._connection() as connection:
            return await _Session(connection).fetchall(sql, params)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_Session]:
        async with self._connection() as connection, connection.transaction():
            yield _Session(connection)

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[_Session]:
        async with (
            self._connection() as connection,
            connection.transaction(isolation="repeatable_read", readonly=True),
        ):
            yield _Session(connection)

    async def _migrate(self) -> None:
        async with self._pool.acquire() as connection, connection.transaction():
            # Held to the end of this transaction: a second process waits here, then finds the
            # schema current. DDL is transactional, so a failed migration leaves nothing behind.
            await connection.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await connection.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            version = await connection.fetchval("SELECT max(version) FROM schema_version") or 0
            for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
                await connection.execute(migration_sql(migration, "postgresql"))
                await connection.execute("INSERT INTO schema_version (version) VALUES ($1)", number)
                log.info("database migrated to schema version %d", number)

    async def schema_version(self) -> int:
        row = await self.fetchone("SELECT max(version) FROM schema_version")
        return int(row[0]) if row and row[0] is not None else 0
