"""``/budget`` for every platform: the same numbers, wording and rules everywhere."""

from __future__ import annotations

from core.ledger import BudgetReport, Ledger
from core.money import format_usd, parse_usd
from core.parts import Scope


def format_report(report: BudgetReport, *, transactions: int = 5) -> str:
    """Limit, spent, held, remaining, reset date, per-service split and the last transactions."""
    default = " (default)" if report.limit_is_default else ""
    lines = [
        f"**Budget for {report.period}**",
        f"Limit: {format_usd(report.limit)}{default}",
        f"Spent: {format_usd(report.used)}",
        f"Held for running work: {format_usd(report.held)}",
        f"Remaining: {format_usd(report.remaining)}",
        f"Resets on: {report.resets_on.isoformat()} (UTC)",
    ]
    if report.by_service:
        split = ", ".join(f"{service} {format_usd(total)}" for service, total in report.by_service.items())
        lines.append(f"By service: {split}")
    recent = report.recent[:transactions]
    if recent:
        lines.append("Last transactions:")
        for row in recent:
            amount = format_usd(row.charged if row.status == "charged" else row.reserved)
            demo = " · demo" if row.demo else ""
            line = f"• {row.created_at:%m-%d %H:%M} {row.service} {amount} {row.status}{demo}"
            if row.prompt:  # blank once HISTORY_DAYS have passed
                line += f": “{row.prompt if len(row.prompt) <= 40 else row.prompt[:39] + '…'}”"
            lines.append(line)
    return "\n".join(lines)


async def budget_command(
    ledger: Ledger, scope: Scope, args: str, *, user: str, can_view: bool, can_change: bool
) -> str:
    """Answer ``/budget``, ``/budget set AMOUNT`` or ``/budget reset`` with the caller's rights.

    Platforms decide the rights (Discord: Manage Guild; Slack: workspace admins); the wording and
    the ledger calls are the same everywhere.
    """
    words = args.split()
    action = words[0].lower() if words else "show"
    if action == "show" and len(words) <= 1:
        if not can_view:
            return "Only admins can see this budget."
        return format_report(await ledger.report(scope))
    if action not in ("set", "reset"):
        return "Usage: `/budget`, `/budget set AMOUNT` (dollars, e.g. 25) or `/budget reset`."
    if not can_change:
        return "Only admins can change this budget."
    if action == "reset":
        if len(words) != 1:
            return "Usage: `/budget reset` (no amount: it restores the default limit)."
        await ledger.reset_limit(scope)
        report = await ledger.report(scope)
        return f"Limit reset to the default, {format_usd(report.limit)} a month.\n\n{format_report(report)}"
    if len(words) != 2:
        return "Usage: `/budget set AMOUNT`, e.g. `/budget set 25`."
    try:
        limit = parse_usd(words[1])
    except ValueError as error:
        return f"Can't set the limit: {error}."
    await ledger.set_limit(scope, limit, by=user)
    report = await ledger.report(scope)
    return f"Monthly limit set to {format_usd(limit)}.\n\n{format_report(report)}"
