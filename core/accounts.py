"""What the ledger hands out: holds, transactions, budget reports and refusals, and the monthly
periods they belong to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal

from core.parts import Scope


def period_of(moment: datetime) -> str:
    """The budget period a moment falls in: its calendar month in UTC, as ``YYYY-MM``."""
    return moment.astimezone(UTC).strftime("%Y-%m")


def period_end(period: str) -> date:
    """The first day of the month after ``period``: when its budget resets."""
    year, month = (int(part) for part in period.split("-"))
    return date(year + month // 12, month % 12 + 1, 1)


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


CapSource = Literal["member", "scope", "default"]
"""Where a member's cap comes from: set for them, the scope's default, or the bot's default."""
UNCAPPED = 2**63 - 1
"""What "no cap" compares as inside the reservation statement."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberReport:
    """One member's spend in a scope's current period against their own cap."""

    scope: Scope
    user: str
    period: str
    cap: int | None
    """``None``: no per-member cap, only the scope's budget applies."""
    cap_source: CapSource
    used: int
    held: int
    requests: int
    resets_on: date

    @property
    def remaining(self) -> int | None:
        """What the member may still spend this period, or ``None`` without a cap."""
        return None if self.cap is None else max(0, self.cap - self.used - self.held)


@dataclass(frozen=True, slots=True)
class Refusal:
    """A reservation that did not fit; carries the reports so the user can be told which limit
    it hit, what remains and when it resets."""

    needed: int
    report: BudgetReport
    member: MemberReport | None = None

    @property
    def limit(self) -> Literal["scope", "member"]:
        """The limit that refused: the member's own cap when it leaves less than was needed and
        no more than the scope's budget does, else the scope's budget."""
        member = self.member
        if member is None or member.remaining is None or member.remaining >= self.needed:
            return "scope"
        if self.report.remaining >= self.needed or member.remaining <= self.report.remaining:
            return "member"
        return "scope"
