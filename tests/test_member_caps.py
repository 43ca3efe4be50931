"""Per-member caps: checked with the scope's budget in one statement, under concurrency, explained,
shown in /budget and changed by admins only."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiosqlite
import pytest

from core.budget import budget_command
from core.commands.dispatcher import CommandContext, Dispatcher, Reply
from core.db import MIGRATIONS, migration_sql
from core.ledger import Hold, Ledger, Refusal
from core.members import MemberCaps
from core.money import usd_to_micros
from core.outcomes import budget_refusal
from core.parts import Failure, Intent, Request, Scope
from tests.conftest import IMAGE_COST, demo_engine

pytestmark = pytest.mark.backends

SCOPE = Scope("discord", "42")
CAP = usd_to_micros(5)


async def open_ledger(url: str, *, member_cap: int | None = CAP, limit: int = usd_to_micros(20)) -> Ledger:
    return await Ledger.open(url, default_limit=limit, member_cap=member_cap)


async def reserve(ledger: Ledger, user: str, amount: int, request_id: str = "r") -> Hold | Refusal:
    return await ledger.reserve(SCOPE, amount, user=user, service="image", prompt="p", request_id=request_id)


async def test_200_simultaneous_requests_from_one_member_take_exactly_their_cap(database_url: str) -> None:
    ledger = await open_ledger(database_url, member_cap=3 * IMAGE_COST)
    try:
        results = await asyncio.gather(*(reserve(ledger, "greedy", IMAGE_COST, str(n)) for n in range(200)))
        others = await asyncio.gather(*(reserve(ledger, f"other{n}", IMAGE_COST, f"o{n}") for n in range(5)))

        holds = [result for result in results if isinstance(result, Hold)]
        assert len(holds) == 3, "exactly the three that fit the cap"
        assert all(
            isinstance(result, Refusal) and result.limit == "member"
            for result in results
            if result not in holds
        )
        assert all(isinstance(result, Hold) for result in others), "other members are still served"
        greedy = await ledger.member_report(SCOPE, "greedy")
        assert (greedy.held, greedy.used, greedy.requests) == (3 * IMAGE_COST, 0, 3)
        report = await ledger.report(SCOPE)
        assert report.held == 8 * IMAGE_COST
    finally:
        await ledger.close()


async def test_both_limits_are_checked_and_the_refusal_says_which(database_url: str) -> None:
    ledger = await open_ledger(database_url, member_cap=usd_to_micros(1), limit=usd_to_micros("1.50"))
    try:
        assert isinstance(await reserve(ledger, "ann", usd_to_micros("0.80")), Hold)
        mine = await reserve(ledger, "ann", usd_to_micros("0.30"))
        assert isinstance(mine, Refusal) and mine.limit == "member"
        text = budget_refusal(mine, Intent.IMAGE)
        assert text.startswith(
            "Your own monthly cap here can't cover an image ($0.30): $0.20 of your $1.00 is left."
        )
        assert "resets on" in text and "Nothing was charged." in text

        assert isinstance(await reserve(ledger, "bob", usd_to_micros("0.60")), Hold)
        scope_full = await reserve(ledger, "cat", usd_to_micros("0.20"))
        assert isinstance(scope_full, Refusal) and scope_full.limit == "scope"
        assert budget_refusal(scope_full, Intent.IMAGE).startswith(
            "The budget here can't cover an image ($0.20): $0.10 of $1.50 is left this month."
        )
    finally:
        await ledger.close()


async def test_a_members_own_cap_beats_the_scope_default_which_beats_the_setting(database_url: str) -> None:
    ledger = await open_ledger(database_url, member_cap=usd_to_micros(1))
    caps = MemberCaps(ledger)
    try:
        assert (await ledger.member_report(SCOPE, "ann")).cap_source == "default"
        await caps.set_default(SCOPE, usd_to_micros(2), by="admin")
        assert isinstance(await reserve(ledger, "ann", usd_to_micros("1.50")), Hold), (
            "the scope default applies"
        )
        await caps.set_cap(SCOPE, "ann", usd_to_micros("1.60"), by="admin")
        refused = await reserve(ledger, "ann", usd_to_micros("0.20"))
        assert isinstance(refused, Refusal) and refused.member is not None
        assert (refused.member.cap, refused.member.cap_source) == (usd_to_micros("1.60"), "member")
        await caps.set_cap(SCOPE, "ann", None, by="admin")
        assert isinstance(await reserve(ledger, "ann", usd_to_micros(10)), Hold), "off: only the scope budget"
        await caps.reset_cap(SCOPE, "ann")
        await caps.set_default(SCOPE, None, by="admin")
        assert (await ledger.member_report(SCOPE, "ann")).cap is None
        await caps.reset_default(SCOPE)
        assert (await ledger.member_report(SCOPE, "ann")).cap == usd_to_micros(1)
    finally:
        await ledger.close()


async def test_settlement_moves_the_members_hold_to_their_spend(database_url: str) -> None:
    ledger = await open_ledger(database_url)
    try:
        charged, refunded = await reserve(ledger, "ann", 50, "a"), await reserve(ledger, "ann", 70, "b")
        assert isinstance(charged, Hold) and isinstance(refunded, Hold)
        await ledger.settle(charged, 40)
        await ledger.refund(refunded)
        member = await ledger.member_report(SCOPE, "ann")
        assert (member.used, member.held, member.requests) == (40, 0, 2)
        [spender] = await MemberCaps(ledger).top_spenders(SCOPE)
        assert (spender.user, spender.spent, spender.requests, spender.share) == ("ann", 40, 2, 1.0)
    finally:
        await ledger.close()


async def test_the_migration_counts_what_members_spent_before_it(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    async with aiosqlite.connect(path, isolation_level=None) as db:
        scripts = [migration_sql(migration, "sqlite") for migration in MIGRATIONS]
        before = scripts.index(next(script for script in scripts if "member_periods" in script))
        for number, script in enumerate(scripts[:before], start=1):
            await db.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")
        await db.executescript(
            """
            INSERT INTO periods (scope, period, used, held) VALUES ('discord:42', '2026-12', 30, 5);
            INSERT INTO transactions (created_at, scope, period, user, service, prompt, reserved, charged,
                                      status, request_id)
            VALUES ('2026-12-01T00:00:00+00:00', 'discord:42', '2026-12', 'ann', 'image', '', 40, 30,
                    'charged', 'a'),
                   ('2026-12-01T00:00:00+00:00', 'discord:42', '2026-12', 'ann', 'song', '', 5, 0,
                    'held', 'b');
            """
        )
    ledger = await Ledger.open(f"sqlite:///{path}", default_limit=100)
    try:
        rows = await ledger.database.fetchall(
            "SELECT used, held, requests FROM member_periods WHERE user = 'ann'"
        )
        assert rows == [(30, 5, 2)]
    finally:
        await ledger.close()


def context(*, user: str = "ann", admin: bool = False) -> CommandContext:
    return CommandContext(scope=SCOPE, user=user, admin=admin, channel="C1")


async def answer(commands: Dispatcher, text: str, **kwargs: object) -> str:
    reply = await commands.dispatch("budget", text, context(**kwargs))  # type: ignore[arg-type]
    assert isinstance(reply, Reply) and reply.private
    return reply.text


async def test_budget_commands_for_member_caps_are_for_admins(database_url: str) -> None:
    ledger = await open_ledger(database_url)
    engine = demo_engine(ledger)
    commands = Dispatcher(ledger=ledger, conversations=None, intents=engine.intents)
    try:
        hold = await reserve(ledger, "bob", usd_to_micros(2))
        assert isinstance(hold, Hold)
        await ledger.settle(hold, usd_to_micros(2))

        assert await answer(commands, "users") == "Only admins can see who spent what."
        assert await answer(commands, "user <@bob> 10") == "Only admins can change this budget."
        assert await answer(commands, "user-default off") == "Only admins can change this budget."
        assert (await ledger.member_report(SCOPE, "bob")).cap == CAP, "nothing changed"

        own = await answer(commands, "", user="bob")
        bob = await ledger.member_report(SCOPE, "bob")
        assert own == (
            f"**Your spend in {bob.period}:** $2.00 spent of your $5.00 cap (the default); $3.00 left "
            f"(1 request). Resets on {bob.resets_on.isoformat()} (UTC)."
        )

        users = await answer(commands, "users", admin=True)
        assert "1. <@bob> $2.00 · 100% · 1 request" in users
        assert (await answer(commands, "user <@bob> 1", admin=True)).startswith(
            "<@bob>'s monthly cap set to $1.00"
        )
        refused = await reserve(ledger, "bob", 1)
        assert isinstance(refused, Refusal) and refused.limit == "member"
        assert "own cap $1.00" in await answer(commands, "users", admin=True)
        # Slack's escaped form names the same member.
        assert (await answer(commands, "user <@bob|bob> off", admin=True)).startswith(
            "<@bob> now has no per-member cap"
        )
        assert isinstance(await reserve(ledger, "bob", 1), Hold)
        assert (await answer(commands, "user <@bob> reset", admin=True)).endswith(
            "the default again: $5.00 a month."
        )
        assert (await answer(commands, "user-default 0.50", admin=True)).startswith(
            "Every member without a cap"
        )
        assert (await ledger.member_report(SCOPE, "cat")).cap == usd_to_micros("0.50")
        assert "isn't a member" in await answer(commands, "user bob 3", admin=True)
        assert "Can't set the cap" in await answer(commands, "user <@bob> lots", admin=True)
    finally:
        await ledger.close()


async def test_a_member_over_their_cap_is_refused_by_the_engine_and_another_is_served(
    database_url: str,
) -> None:
    ledger = await open_ledger(database_url, member_cap=IMAGE_COST)
    engine = demo_engine(ledger)
    try:

        async def ask(user: str) -> list[object]:
            request = Request(scope=SCOPE, user=user, text="a fox", intent=Intent.IMAGE)
            return [part async for part in engine.handle(request)]

        await ask("ann")
        [refused] = await ask("ann")
        assert isinstance(refused, Failure) and refused.message.startswith("Your own monthly cap here")
        assert not any(isinstance(part, Failure) for part in await ask("bob"))
        assert (await ledger.report(SCOPE)).used == 2 * IMAGE_COST
    finally:
        await ledger.close()


async def test_budget_command_is_the_same_function_everywhere(database_url: str) -> None:
    ledger = await open_ledger(database_url, member_cap=None)
    try:
        own = await budget_command(ledger, SCOPE, "", user="ann", can_view=False, can_change=False)
        assert own.startswith("**Your spend in ") and "no per-member cap" in own
    finally:
        await ledger.close()
