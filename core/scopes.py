"""Every budget scope the ledger has seen, with its limit, this month's spend and last activity."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.db import Database
from core.ledger import Ledger, period_of
from core.parts import Scope


@dataclass(frozen=True, slots=True, kw_only=True)
class ScopeActivity:
    """One line of ``python -m bot budget list``; amounts in micro-dollars."""

    scope: Scope
    limit: int
    limit_is_default: bool
    spent: int
    """Charged in ``period`` (the current month)."""
    held: int
    """Reserved for work still running."""
    period: str
    last_activity: datetime | None
    """The later of the latest transaction and the latest limit change."""


async def scope_activity(ledger: Ledger, *, now: datetime | None = None) -> list[ScopeActivity]:
    """Every scope with a limit, a budget period or a transaction, ordered by scope."""
    period = period_of(now or ledger.database.clock.utc())
    rows = await _scope_rows(ledger.database, period)
    activity = []
    for key, limit, spent, held, last_transaction, limit_changed in rows:
        scope = Scope.parse(key)
        last = max((moment for moment in (last_transaction, limit_changed) if moment), default=None)
        activity.append(
            ScopeActivity(
                scope=scope,
                limit=int(limit) if limit is not None else ledger.default_limit_for(scope),
                limit_is_default=limit is None,
                spent=int(spent),
                held=int(held),
                period=period,
                last_activity=datetime.fromisoformat(last) if last else None,
            )
        )
    return activity


async def _scope_rows(
    database: Database, period: str
) -> list[tuple[str, int | None, int, int, str | None, str | None]]:
    """The one query behind ``scope_activity``: (scope, stored limit, used, held, last transaction
    time, limit change time). Reads only; the latest transaction comes from the (scope, id) index."""
    rows = await database.fetchall(
        """
        WITH seen (scope) AS (
            SELECT scope FROM limits UNION SELECT scope FROM periods UNION SELECT scope FROM transactions
        )
        SELECT seen.scope,
               l.limit_micros,
               COALESCE(p.used, 0),
               COALESCE(p.held, 0),
               (SELECT t.created_at FROM transactions t
                WHERE t.scope = seen.scope ORDER BY t.id DESC LIMIT 1),
               l.updated_at
        FROM seen
        LEFT JOIN limits l ON l.scope = seen.scope
        LEFT JOIN periods p ON p.scope = seen.scope AND p.period = ?
        ORDER BY seen.scope
        """,
        (period,),
    )
    return [(row[0], row[1], row[2], row[3], row[4], row[5]) for row in rows]
