"""The embedded SQLite ``core.db.Database``: one aiosqlite connection, one writer at a time."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

from core.clock import Clock
from core.db import (
    DEFAULT_BUSY_TIMEOUT_MS,
    MIGRATIONS,
    Database,
    Dialect,
    Params,
    Row,
    Written,
    migration_sql,
    sqlite_path,
)

log = logging.getLogger(__name__)


class _Session:
    """Statements on the connection while the database lock is held."""

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._db = connection

    async def execute(self, sql: str, params: Params = ()) -> Written:
        return await _run(self._db, sql, params)

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        async with self._db.execute(sql, params) as cursor:
            row = await cursor.fetchone()
        return tuple(row) if row is not None else None

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        return [tuple(row) for row in await self._db.execute_fetchall(sql, params)]


async def _run(db: aiosqlite.Connection, sql: str, params: Params) -> Written:
    if "RETURNING" in sql:
        # Executed and fetched in one call on the database thread: nothing queued by another
        # coroutine can run while the statement is still open.
        rows = [tuple(row) for row in await db.execute_fetchall(sql, params)]
        return Written(len(rows), rows)
    cursor = await db.execute(sql, params)
    return Written(cursor.rowcount)


class SqliteDatabase(Database):
    """One aiosqlite connection shared by every store. Open with ``await Database.open(url)``."""

    dialect: Dialect = "sqlite"

    def __init__(self, connection: aiosqlite.Connection, *, clock: Clock) -> None:
        super().__init__()
        self._db = connection
        self.clock = clock
        # One connection carries one transaction at a time; the lock keeps coroutines from
        # interleaving statements inside each other's BEGIN ... COMMIT.
        self._lock = asyncio.Lock()
        self._session = _Session(connection)

    @classmethod
    async def connect(
        cls, database_url: str, *, clock: Clock, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS
    ) -> SqliteDatabase:
        """Open (creating and migrating) the file."""
        path = sqlite_path(database_url)
        if isinstance(path, Path):
            path.parent.mkdir(parents=True, exist_ok=True)
        connection = await aiosqlite.connect(path, isolation_level=None)
        try:
            await connection.execute("PRAGMA journal_mode=WAL")
            await connection.execute("PRAGMA synchronous=NORMAL")
            await connection.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            database = cls(connection, clock=clock)
            await database._migrate()
        except BaseException:
            await connection.close()
            raise
        return database

    @property
    def connection(self) -> aiosqlite.Connection:
        """The shared connection (SQLite only: stores use ``write``, ``fetchone`` …)."""
        return self._db

    async def close(self) -> None:
        await self._db.close()

    async def notify(self, channel: str, payload: str) -> None:
        return None  # no signal between processes sharing a file

    async def listen(self, channel: str, callback: Callable[[str], None]) -> None:
        return None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_Session]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on error), one at a time."""
        async with self._lock:
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._session
            except BaseException:
                await self._db.execute("ROLLBACK")
                raise
            await self._db.execute("COMMIT")

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[_Session]:
        """Reads while no transaction of this connection is open (its only writer)."""
        async with self._lock:
            yield self._session

    async def write(self, sql: str, params: Params = ()) -> Written:
        """Run one writing statement as its own transaction (the connection autocommits).

        The database thread runs statements in the order they are queued, and queuing happens
        without yielding, so a single statement only has to wait while a ``transaction`` is open
        (it would become part of it). Not taking the lock otherwise matters under load: a lock
        held across every round trip to the database thread makes each request's writes queue
        behind everyone else's event-loop turns.
        """
        if self._lock.locked():
            async with self._lock:
                return await _run(self._db, sql, params)
        return await _run(self._db, sql, params)

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        return await self._session.fetchone(sql, params)

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        return await self._session.fetchall(sql, params)

    async def _version(self) -> int:
        row = await self.fetchone("PRAGMA user_version")
        return int(row[0]) if row else 0

    async def _migrate(self) -> None:
        if await self._version() >= len(MIGRATIONS):
            return
        # Under the write lock, the version is read again: of processes starting together on a
        # new file, the first migrates and the others find it done.
        async with self.transaction() as db:
            version = await self._version()
            for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in _statements(migration_sql(migration, "sqlite")):
                    await db.execute(statement)
                await db.execute(f"PRAGMA user_version = {number}")
                log.info("database migrated to schema version %d", number)


def _statements(script: str) -> Iterator[str]:
    """The statements of a migration one by one (a trigger's body included in its statement)."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            if statement.strip(" \n;"):
                yield statement
            statement = ""
    if statement.strip():
        yield statement
