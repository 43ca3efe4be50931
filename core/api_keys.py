"""API keys for the HTTP and WebSocket surface: created once, stored only as a hash, revocable at once.

A key is ``sk-studio-`` and 43 characters of ``secrets.token_urlsafe(32)`` (256 random bits), so a
plain SHA-256 of it is as good as a slow password hash: nobody can guess their way back from it.
Every request looks its key up in the database, so a key revoked from another process (the CLI)
is refused from the next request on. Each key pays from its ``scope`` (a Discord server, a Slack
workspace, or an ``api:NAME`` scope of its own) and appears in the ledger as the user ``api:NAME``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.db import Database, Row
from core.ledger import period_of
from core.parts import Scope

KEY_PREFIX = "sk-studio-"
USER_PREFIX = "api:"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
LAST_USED_EVERY = timedelta(minutes=1)
"""How stale ``last used`` may get: a busy key is not written to on every request."""


def key_user(name: str) -> str:
    """The ledger's user for a key's requests: ``api:NAME``."""
    return f"{USER_PREFIX}{name}"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiKey:
    """A key as stored (never the key itself)."""

    name: str
    scope: Scope
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def user(self) -> str:
        return key_user(self.name)


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyUsage:
    """A key and what it spent this month, for ``api-key list``."""

    key: ApiKey
    period: str
    spent: int


class ApiKeyError(Exception):
    """A key can't be created or revoked as asked; the message says why."""


class KeyStore:
    """API keys in the bot's database."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._touched: dict[str, datetime] = {}

    async def create(self, name: str, scope: Scope) -> tuple[ApiKey, str]:
        """A new key named ``name`` paying from ``scope``; returns it and the secret, which is
        shown this once and stored only as a hash."""
        if not NAME_PATTERN.fullmatch(name):
            raise ApiKeyError(
                f"{name!r} is not a key name: use up to 64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit."
            )
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        now = self._database.clock.utc()
        written = await self._database.write(
            "INSERT INTO api_keys (name, scope, key_hash, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            (name, str(scope), _digest(secret), now.isoformat()),
        )
        if written.rowcount != 1:
            raise ApiKeyError(f"A key named {name!r} already exists (names are never reused); pick another.")
        return ApiKey(name=name, scope=scope, created_at=now), secret

    async def authenticate(self, secret: str) -> ApiKey | None:
        """The live key ``secret`` is, or ``None`` (unknown, malformed or revoked)."""
        if not secret.startswith(KEY_PREFIX) or len(secret) > 200:
            return None
        digest = _digest(secret)
        # ``fetchall`` (key_hash is unique): on SQLite one round trip to the database thread
        # where ``fetchone`` takes three, and each waits for an event-loop turn in a burst.
        rows = await self._database.fetchall(
            "SELECT name, scope, created_at, last_used_at, revoked_at, key_hash FROM api_keys "
            "WHERE key_hash = ?",
            (digest,),
        )
        row = rows[0] if rows else None
        if row is None or not hmac.compare_digest(str(row[5]), digest) or row[4] is not None:
            return None
        key = _key(row)
        await self._touch(key)
        return key

    async def _touch(self, key: ApiKey) -> None:
        now = self._database.clock.utc()
        last = self._touched.get(key.name) or key.last_used_at
        if last is not None and now - last < LAST_USED_EVERY:
            return
        self._touched[key.name] = now
        await self._database.write(
            "UPDATE api_keys SET last_used_at = ? WHERE name = ?", (now.isoformat(), key.name)
        )

    async def revoke(self, name: str) -> bool:
        """Refuse key ``name`` from now on; False when there is no live key by that name."""
        written = await self._database.write(
            "UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
            (self._database.clock.utc().isoformat(), name),
        )
        return written.rowcount == 1

    async def usage(self) -> list[KeyUsage]:
        """Every key, oldest first, with what its requests were charged this month."""
        period = period_of(self._database.clock.utc())
        rows = await self._database.fetchall(
            """
            SELECT k.name, k.scope, k.created_at, k.last_used_at, k.revoked_at, k.key_hash,
                   (SELECT COALESCE(SUM(t.charged), 0) FROM transactions t
                    WHERE t.scope = k.scope AND t."user" = ? || k.name AND t.period = ?)
            FROM api_keys k ORDER BY k.created_at, k.name
            """,
            (USER_PREFIX, period),
        )
        return [KeyUsage(key=_key(row), period=period, spent=int(row[6])) for row in rows]

    async def request_cost(self, request_id: str) -> int:
        """What the ledger charged for one request (its classifier call included), in micro-dollars."""
        row = await self._database.fetchone(
            "SELECT COALESCE(SUM(charged), 0) FROM transactions WHERE request_id = ?", (request_id,)
        )
        return int(row[0]) if row else 0


def _key(row: Row) -> ApiKey:
    return ApiKey(
        name=row[0],
        scope=Scope.parse(row[1]),
        created_at=datetime.fromisoformat(row[2]),
        last_used_at=datetime.fromisoformat(row[3]) if row[3] else None,
        revoked_at=datetime.fromisoformat(row[4]) if row[4] else None,
    )
