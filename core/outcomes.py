"""How requests end for the person who asked: named work, counted failures, and the charge."""

from __future__ import annotations

import logging
import math

from core import metrics
from core.leases import LEASE_RENEW_S, LEASE_TTL_S
from core.ledger import Hold, Ledger, Refusal
from core.money import MICROS_PER_USD, format_usd
from core.parts import Failure, Intent

log = logging.getLogger(__name__)

ROUTER_SERVICE = "router"
"""The ledger service name of classifier calls."""

WHAT: dict[Intent, str] = {
    Intent.IMAGE: "an image",
    Intent.SONG: "a song",
    Intent.RESEARCH: "a research paper",
    Intent.CHAT: "a chat answer",
    Intent.SUMMARY: "a summary",
}
"""Each intent's work, as a sentence names it."""

_SERVICE: dict[Intent, str] = {
    Intent.IMAGE: "Image generation",
    Intent.SONG: "Song generation",
    Intent.RESEARCH: "Research",
    Intent.CHAT: "Chat",
    Intent.SUMMARY: "Summaries",
}


def failure(
    intent: Intent | None, outcome: str, message: str, *, retry_after_s: float | None = None
) -> Failure:
    """A ``Failure`` for the person who asked, counted under ``outcome`` (its ``reason``)."""
    metrics.REQUESTS.labels(intent.value if intent else "unrouted", outcome).inc()
    return Failure(message, outcome, retry_after_s)


async def settle(ledger: Ledger, hold: Hold, charged: int, intent: Intent | None) -> None:
    """Charge ``charged`` for ``hold`` and count it as spend."""
    await ledger.settle(hold, charged)
    service = intent.value if intent else ROUTER_SERVICE
    metrics.SPEND.labels(str(hold.scope), service).inc(charged / MICROS_PER_USD)


def not_configured(intent: Intent) -> str:
    """What to say when ``intent``'s service is off on this bot."""
    return f"{_SERVICE[intent]} isn't configured on this bot. Nothing was charged."


def budget_refusal(refusal: Refusal, intent: Intent | None) -> str:
    """Tell the person which limit refused (their own cap or the scope's budget), what it has
    left, what the work costs, and when it resets."""
    report = refusal.report
    what = WHAT[intent] if intent else "working out what you asked for"
    member = refusal.member
    if refusal.limit == "member" and member is not None and member.cap is not None:
        return (
            f"Your own monthly cap here can't cover {what} ({format_usd(refusal.needed)}): "
            f"{format_usd(member.remaining or 0)} of your {format_usd(member.cap)} is left. "
            f"It resets on {member.resets_on.isoformat()} (UTC); an admin can raise it with "
            "`/budget user`. Nothing was charged."
        )
    return (
        f"The budget here can't cover {what} ({format_usd(refusal.needed)}): "
        f"{format_usd(report.remaining)} of {format_usd(report.limit)} is left this month. "
        f"It resets on {report.resets_on.isoformat()} (UTC). Nothing was charged."
    )


class HoldNotReleased(Exception):
    """A refund failed (the database was locked too long): the hold waits for the sweep."""

    def __init__(self, hold: Hold) -> None:
        super().__init__(f"could not release hold {hold.transaction_id}")
        self.hold = hold


async def release(ledger: Ledger, hold: Hold, *, note: str) -> bool:
    """Refund ``hold``; False (logged) when that failed and the hold waits for the sweep."""
    try:
        await ledger.refund(hold, note=note)
    except Exception:
        log.exception("could not release hold %d; the lease sweep will", hold.transaction_id)
        return False
    return True


def nothing_charged(hold: Hold | None = None, *, released: bool = True) -> str:
    """ "Nothing was charged.", and the truth about the money set aside when its release failed."""
    if released or hold is None:
        return "Nothing was charged."
    minutes = math.ceil((LEASE_TTL_S + LEASE_RENEW_S) / 60)
    return (
        f"Nothing was charged, but the {format_usd(hold.amount)} set aside for it is still held "
        f"(I couldn't release it just now): it will be released within {minutes} minutes."
    )
