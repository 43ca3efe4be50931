"""``/budget`` for every platform: the same numbers, wording and rules everywhere."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from core.commands.references import member_id, mention
from core.ledger import BudgetReport, Ledger, MemberReport
from core.members import MemberCaps, MemberSpend
from core.money import format_usd, parse_usd
from core.parts import Scope

Name = Callable[[str], str]
"""How a member id is shown: ``<@id>`` in chat (both platforms show a name), plain in a terminal."""

USAGE = (
    "Usage: `/budget`, `/budget set AMOUNT` (dollars, e.g. 25), `/budget reset`, `/budget users`, "
    "`/budget user @member AMOUNT|off|reset`, `/budget user-default AMOUNT|off|reset` or "
    "`/budget dashboard`."
)
ONLY_ADMINS_CHANGE = "Only admins can change this budget."


def format_report(report: BudgetReport, *, transactions: int = 5, name: Name = mention) -> str:
    """Limit, spent, held, remaining, reset date, per-service split and the last transactions
    with who asked for each."""
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
            line = (
                f"• {row.created_at:%m-%d %H:%M} {name(row.user)} {row.service} {amount} {row.status}{demo}"
            )
            if row.prompt:  # blank once HISTORY_DAYS have passed
                line += f": “{row.prompt if len(row.prompt) <= 40 else row.prompt[:39] + '…'}”"
            lines.append(line)
    return "\n".join(lines)


def format_cap(cap: int | None) -> str:
    return "no cap" if cap is None else format_usd(cap)


def monthly(cap: int | None) -> str:
    """``$5.00 a month``, or ``no cap``."""
    return "no cap" if cap is None else f"{format_usd(cap)} a month"


def format_member(member: MemberReport) -> str:
    """The caller's own line: spend, cap and what is left, and when it resets."""
    requests = f"{member.requests} request{'s' if member.requests != 1 else ''}"
    held = f", {format_usd(member.held)} held for running work" if member.held else ""
    if member.cap is None:
        standing = f"{format_usd(member.used)} spent{held} ({requests}); no per-member cap"
    else:
        source = {"member": "set for you", "scope": "the default here", "default": "the default"}
        standing = (
            f"{format_usd(member.used)} spent{held} of your {format_usd(member.cap)} cap "
            f"({source[member.cap_source]}); {format_usd(member.remaining or 0)} left ({requests})"
        )
    return f"**Your spend in {member.period}:** {standing}. Resets on {member.resets_on.isoformat()} (UTC)."


def format_spenders(
    period: str, spenders: Sequence[MemberSpend], *, default_cap: int | None, name: Name = mention
) -> str:
    """``/budget users``: the top spenders with amount, share, requests and their cap."""
    if not spenders:
        return f"Nobody has spent anything in {period} yet."
    lines = [f"**Top spenders in {period}** (default cap per member: {format_cap(default_cap)})"]
    for place, spender in enumerate(spenders, start=1):
        cap = f" · own cap {format_cap(spender.own_cap)}" if spender.has_own_cap else ""
        held = f" (+{format_usd(spender.held)} held)" if spender.held else ""
        requests = f"{spender.requests} request{'s' if spender.requests != 1 else ''}"
        lines.append(
            f"{place}. {name(spender.user)} {format_usd(spender.spent)}{held} · "
            f"{spender.share:.0%} · {requests}{cap}"
        )
    return "\n".join(lines)


def parse_cap(text: str) -> int | None:
    """``off`` (no cap) or dollars; raises ``ValueError`` explaining the accepted forms."""
    if text.strip().lower() == "off":
        return None
    return parse_usd(text)


async def budget_command(
    ledger: Ledger, scope: Scope, args: str, *, user: str, can_view: bool, can_change: bool
) -> str:
    """Answer ``/budget`` and its subcommands with the caller's rights.

    Platforms decide the rights (Discord: Manage Guild; Slack: workspace admins); the wording and
    the ledger calls are the same everywhere. Everyone sees their own line; the scope's report
    only with ``can_view``.
    """
    words = args.split()
    action = words[0].lower() if words else "show"
    if action == "show" and len(words) <= 1:
        own = format_member(await ledger.member_report(scope, user))
        if not can_view:
            return own
        return f"{format_report(await ledger.report(scope))}\n\n{own}"
    if action == "users":
        if not can_change:
            return "Only admins can see who spent what."
        caps = MemberCaps(ledger)
        default_cap, _ = await caps.scope_default(scope)
        period = (await ledger.member_report(scope, user)).period
        return format_spenders(period, await caps.top_spenders(scope), default_cap=default_cap)
    if action not in ("set", "reset", "user", "user-default"):
        return USAGE
    if not can_change:
        return ONLY_ADMINS_CHANGE
    if action == "user":
        return await _member_cap(ledger, scope, words[1:], by=user)
    if action == "user-default":
        return await _default_cap(ledger, scope, words[1:], by=user)
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


async def _member_cap(ledger: Ledger, scope: Scope, words: list[str], *, by: str) -> str:
    usage = (
        "Usage: `/budget user @member AMOUNT`, `/budget user @member off` or `/budget user @member reset`."
    )
    if len(words) != 2:
        return usage
    member = member_id(words[0])
    if member is None:
        return f"{words[0]!r} isn't a member: mention them, e.g. @alice. {usage}"
    caps = MemberCaps(ledger)
    if words[1].lower() == "reset":
        await caps.reset_cap(scope, member)
        report = await ledger.member_report(scope, member)
        return f"{mention(member)}'s cap is the default again: {monthly(report.cap)}."
    try:
        cap = parse_cap(words[1])
    except ValueError as error:
        return f"Can't set the cap: {error}, or off."
    await caps.set_cap(scope, member, cap, by=by)
    report = await ledger.member_report(scope, member)
    spent = f"{format_usd(report.used)} spent this month"
    if cap is None:
        return f"{mention(member)} now has no per-member cap ({spent})."
    return f"{mention(member)}'s monthly cap set to {format_usd(cap)} ({spent})."


async def _default_cap(ledger: Ledger, scope: Scope, words: list[str], *, by: str) -> str:
    if len(words) != 1:
        return "Usage: `/budget user-default AMOUNT`, `/budget user-default off` or `… reset`."
    caps = MemberCaps(ledger)
    if words[0].lower() == "reset":
        await caps.reset_default(scope)
        return f"Members' default cap is the bot's default again: {monthly(ledger.member_cap)}."
    try:
        cap = parse_cap(words[0])
    except ValueError as error:
        return f"Can't set the default cap: {error}, or off."
    await caps.set_default(scope, cap, by=by)
    if cap is None:
        return "Members here now have no per-member cap by default (only the budget's limit applies)."
    return f"Every member without a cap of their own may now spend {format_usd(cap)} a month."
