"""Per-member caps: the caps admins set, each scope's default cap, and who spent what this month."""

from __future__ import annotations

from dataclasses import dataclass

from core.ledger import Ledger, period_of
from core.parts import Scope

TOP_SPENDERS = 10


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberSpend:
    """One line of ``/budget users``: a member's charges this period and their share of the scope's."""

    user: str
    spent: int
    held: int
    requests: int
    share: float
    """``spent`` as a fraction of everything the scope was charged this period (0 when nothing was)."""
    has_own_cap: bool
    """Whether an admin set this member's cap (else the scope's default applies)."""
    own_cap: int | None
    """The member's own cap when ``has_own_cap``; ``None`` there means no cap at all."""


class MemberCaps:
    """Change and list per-member caps on a ledger's database; every change names who made it."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._database = ledger.database

    def _now(self) -> str:
        return self._database.clock.utc().isoformat()

    async def set_cap(self, scope: Scope, user: str, cap: int | None, *, by: str) -> None:
        """Give ``user`` their own monthly cap in ``scope``; ``None`` lets them spend without one."""
        if cap is not None and cap < 0:
            raise ValueError("a cap must not be negative")
        await self._database.write(
            """
            INSERT INTO member_caps (scope, "user", cap_micros, updated_at, updated_by) VALUES (?, ?, ?, ?, ?)
            ON CONFLICT (scope, "user") DO UPDATE SET cap_micros = excluded.cap_micros,
                updated_at = excluded.updated_at, updated_by = excluded.updated_by
            """,
            (str(scope), user, cap, self._now(), by),
        )

    async def reset_cap(self, scope: Scope, user: str) -> None:
        """Drop ``user``'s own cap: the scope's default applies to them again."""
        await self._database.write(
            'DELETE FROM member_caps WHERE scope = ? AND "user" = ?', (str(scope), user)
        )

    async def set_default(self, scope: Scope, cap: int | None, *, by: str) -> None:
        """The cap of every member of ``scope`` without one of their own; ``None`` = no cap."""
        if cap is not None and cap < 0:
            raise ValueError("a cap must not be negative")
        await self._database.write(
            """
            INSERT INTO member_defaults (scope, cap_micros, updated_at, updated_by) VALUES (?, ?, ?, ?)
            ON CONFLICT (scope) DO UPDATE SET cap_micros = excluded.cap_micros,
                updated_at = excluded.updated_at, updated_by = excluded.updated_by
            """,
            (str(scope), cap, self._now(), by),
        )

    async def reset_default(self, scope: Scope) -> None:
        """Drop the scope's default cap: the bot's ``DEFAULT_USER_BUDGET_USD`` applies again."""
        await self._database.write("DELETE FROM member_defaults WHERE scope = ?", (str(scope),))

    async def scope_default(self, scope: Scope) -> tuple[int | None, bool]:
        """The cap members of ``scope`` get by default, and whether the scope set it itself."""
        row = await self._database.fetchone(
            "SELECT cap_micros FROM member_defaults WHERE scope = ?", (str(scope),)
        )
        if row is None:
            return self._ledger.member_cap, False
        return (None if row[0] is None else int(row[0])), True

    async def top_spenders(self, scope: Scope, *, limit: int = TOP_SPENDERS) -> list[MemberSpend]:
        """The members who spent most in ``scope`` this period, most first."""
        period = period_of(self._database.clock.utc())
        rows = await self._database.fetchall(
            """
            SELECT m."user", m.used, m.held, m.requests,
                   (SELECT SUM(used) FROM member_periods WHERE scope = :scope AND period = :period),
                   c.cap_micros, c."user" IS NOT NULL
            FROM member_periods m
            LEFT JOIN member_caps c ON c.scope = m.scope AND c."user" = m."user"
            WHERE m.scope = :scope AND m.period = :period AND (m.used > 0 OR m.held > 0 OR m.requests > 0)
            ORDER BY m.used DESC, m.requests DESC, m."user"
            LIMIT :limit
            """,
            {"scope": str(scope), "period": period, "limit": limit},
        )
        return [
            MemberSpend(
                user=str(user),
                spent=int(used),
                held=int(held),
                requests=int(requests),
                share=int(used) / int(total) if total else 0.0,
                has_own_cap=bool(has_own),
                own_cap=int(cap) if cap is not None else None,
            )
            for user, used, held, requests, total, cap, has_own in rows
        ]
