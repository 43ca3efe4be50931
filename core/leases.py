"""Process leases on budget holds: a hold belongs to the process that made it for as long as that
process keeps renewing it, so processes sharing one database never release each other's holds.

A job's lease is its hold's (``jobs.transaction_id``): one lease per piece of work, nothing to keep
in step. A hold whose owner stopped renewing (it died, or a refund failed and it let go) is taken
over at the next start (work to resume) or released by the periodic sweep (money to give back).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import socket
from collections.abc import Collection
from datetime import timedelta

from core.db import Database

log = logging.getLogger(__name__)

LEASE_RENEW_S = 10.0
"""How often a process renews the leases of the holds it is working on (and sweeps expired ones)."""
LEASE_TTL_S = 60.0
"""How long a lease lasts unrenewed: a process silent this long is presumed dead and its holds
are taken over. Several renewals fit in it, so a busy event loop never loses a live hold."""

_PAID_WORK = (
    "SELECT transaction_id FROM jobs WHERE state IN ('delivering', 'delivered') "
    "OR (state IN ('queued', 'running') AND checkpoint IS NOT NULL)"
)
"""Unfinished jobs the provider already has: their holds wait for a start to resume them."""
_OWNERS_HERE: set[str] = set()
"""Owners open in this interpreter (tests run several "processes" in one)."""


def new_owner() -> str:
    """An id naming this process: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def _gone(owner: str) -> bool:
    """Whether ``owner`` was a process on this host that no longer runs: after a ``kill -9`` and
    a restart its leases need not run out before its work is resumed."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():  # a previous incarnation with our pid (a container's pid 1)
        return owner not in _OWNERS_HERE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def _in_ids(database: Database, column: str) -> str:
    """``column`` is one of a list of ids given as one parameter (see ``_ids``)."""
    if database.dialect == "postgresql":
        return f"{column} = ANY(?::bigint[])"
    return f"{column} IN (SELECT value FROM json_each(?))"


def _ids(database: Database, ids: Collection[int]) -> object:
    return sorted(ids) if database.dialect == "postgresql" else json.dumps(sorted(ids))


class Leases:
    """The leases of this process's holds, in the ``owner`` and ``lease_until`` of each
    transaction. ``renew`` must run every ``renew_s`` (see ``maintain``)."""

    def __init__(
        self,
        database: Database,
        *,
        owner: str | None = None,
        ttl_s: float = LEASE_TTL_S,
        renew_s: float = LEASE_RENEW_S,
    ) -> None:
        if not 0 < renew_s < ttl_s:
            raise ValueError(
                f"leases must be renewed (every {renew_s} s) more often than they last ({ttl_s} s)"
            )
        self._database = database
        self.owner = owner or new_owner()
        self.ttl_s = ttl_s
        """How long a lease lasts unrenewed (``LEASE_TTL_S`` by default)."""
        self.renew_s = renew_s
        """How often ``maintain`` renews and sweeps (``LEASE_RENEW_S`` by default)."""
        self._live: set[int] = set()
        _OWNERS_HERE.add(self.owner)

    def _now(self) -> str:
        return self._database.clock.utc().isoformat()

    def expiry(self) -> str:
        """When a lease taken or renewed now runs out."""
        return (self._database.clock.utc() + timedelta(seconds=self.ttl_s)).isoformat()

    def track(self, transaction_id: int) -> None:
        """Keep renewing the lease of this hold (made or taken over by this process)."""
        self._live.add(transaction_id)

    def untrack(self, transaction_id: int) -> None:
        """Stop renewing it: closed, or left for the sweep after a failed refund."""
        self._live.discard(transaction_id)

    async def renew(self) -> None:
        if not self._live:
            return
        await self._database.write(
            "UPDATE transactions SET lease_until = ? WHERE owner = ? AND status = 'held' "
            f"AND {_in_ids(self._database, 'id')}",
            (self.expiry(), self.owner, _ids(self._database, self._live)),
        )

    async def take_over(self, transaction_id: int) -> bool:
        """Make a hold ours if its owner's lease ran out (or it is already ours). Of several
        processes trying at once exactly one wins: the condition is checked on the locked row."""
        claimable = "id = ? AND status = 'held' AND (lease_until < ? OR owner = ?)"
        if self._database.dialect == "postgresql":
            # A row another process is claiming right now is skipped, not waited for: it wins.
            claimable = f"id = (SELECT id FROM transactions WHERE {claimable} FOR UPDATE SKIP LOCKED)"
        written = await self._database.write(
            f"UPDATE transactions SET owner = ?, lease_until = ? WHERE {claimable}",
            (self.owner, self.expiry(), transaction_id, self._now(), self.owner),
        )
        if written.rowcount != 1:
            return False
        self.track(transaction_id)
        return True

    async def end_leases_of_gone_processes(self) -> int:
        """At start-up: end the leases of processes on this host that no longer run."""
        rows = await self._database.fetchall(
            "SELECT DISTINCT owner FROM transactions "
            "WHERE status = 'held' AND lease_until >= ? AND owner != ?",
            (self._now(), self.owner),
        )
        ended = 0
        for owner in filter(_gone, (str(row[0]) for row in rows)):
            written = await self._database.write(
                "UPDATE transactions SET lease_until = '' WHERE owner = ? AND status = 'held'", (owner,)
            )
            ended += written.rowcount
        return ended

    async def release_all(self) -> None:
        """On closing: our leases end now, so the next start takes our kept work over at once."""
        _OWNERS_HERE.discard(self.owner)
        with contextlib.suppress(Exception):
            await self._database.write(
                "UPDATE transactions SET lease_until = '' WHERE owner = ? AND status = 'held'", (self.owner,)
            )

    async def sweep(
        self, *, keep: Collection[int] = (), platform: str | None = None, spare_jobs: bool = False
    ) -> int:
        """Release the holds whose lease ran out, except ``keep``; with ``platform``, only that
        platform's scopes; with ``spare_jobs``, not those of unfinished jobs the provider already
        has (paid work waits for a start to resume it). Returns how many."""
        scopes = f"{platform}:%" if platform else "%"
        spared = f" AND id NOT IN ({_PAID_WORK})" if spare_jobs else ""
        now = self._now()
        expired = (
            "status = 'held' AND lease_until < ? AND scope LIKE ? "
            f"AND NOT {_in_ids(self._database, 'id')}{spared}"
        )
        params = (now, now, scopes, _ids(self._database, keep))
        if self._database.dialect == "postgresql":
            # The status trigger releases each hold from its period in the same statement. Rows
            # another process has locked (settling one just now) are skipped, not waited for:
            # no deadlock between a sweep and a settlement, and a settled hold is not swept.
            written = await self._database.write(
                "UPDATE transactions SET status = 'orphaned', settled_at = ?, "
                "note = 'released: lease expired' WHERE id IN "
                f"(SELECT id FROM transactions WHERE {expired} ORDER BY id FOR UPDATE SKIP LOCKED)",
                params,
            )
            swept = written.rowcount
        else:
            async with self._database.transaction() as db:
                written = await db.execute(
                    "UPDATE transactions SET status = 'orphaned', settled_at = ?, "
                    f"note = 'released: lease expired' WHERE {expired}",
                    params,
                )
                swept = written.rowcount
                # SQLite has one writer at a time: recounting every period's holds here cannot
                # race a reservation. (On PostgreSQL it could, so there the trigger alone counts.)
                await db.execute(
                    """
                    UPDATE periods SET held = (
                        SELECT COALESCE(SUM(reserved), 0) FROM transactions t
                        WHERE t.scope = periods.scope AND t.period = periods.period AND t.status = 'held')
                    """
                )
        if swept:
            log.warning("released %d budget holds whose lease expired", swept)
        return swept

    async def maintain(self) -> None:
        """Renew this process's leases and release expired holds every ``renew_s`` seconds,
        until cancelled."""
        while True:
            await self._database.clock.sleep(self.renew_s)
            try:
                await self.tend()
            except Exception:
                log.exception("lease renewal or sweep failed; trying again in %.0f s", self.renew_s)

    async def tend(self) -> None:
        """One round of ``maintain``: renew ours, release expired holds (a failed refund's
        included) but not those of paid work waiting to be resumed."""
        await self.renew()
        await self.sweep(spare_jobs=True)
