"""``python -m bot budget``: scopes are checked before anything is written, and ``list`` shows them all."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.console import CONSOLE_SCOPE
from bot.cli import SCOPE_FORMS, parse_scope
from bot.errors import UsageError
from core.ledger import Hold, Ledger
from core.money import usd_to_micros
from core.parts import Scope
from core.scopes import scope_activity
from tests.cli import run_bot


@pytest.mark.parametrize(
    "typed",
    [
        "discrod:123",
        "discord:12a",
        "discord-dm:@alice",
        "slack:t0123",
        "slack:U0123",
        "console:me",
        "slack:T",
    ],
)
def test_budget_set_refuses_a_scope_that_no_platform_has(tmp_path: Path, typed: str) -> None:
    refused = run_bot(tmp_path, "budget", "set", typed, "5")

    assert refused.returncode == 2
    assert refused.stdout == ""
    assert repr(typed) in refused.stderr and "discord:GUILD_ID" in refused.stderr
    assert "Traceback" not in refused.stderr
    listed = run_bot(tmp_path, "budget", "list")
    assert typed not in listed.stdout, "nothing was written"


def test_scopes_of_every_platform_are_accepted() -> None:
    from adapters.discord.places import DM_PLATFORM, GUILD_PLATFORM
    from adapters.slack.app import PLATFORM as SLACK_PLATFORM

    assert parse_scope(f"{GUILD_PLATFORM}:123456789012345678") == Scope(GUILD_PLATFORM, "123456789012345678")
    assert parse_scope(f"{DM_PLATFORM}:42") == Scope(DM_PLATFORM, "42")
    assert parse_scope(f"{SLACK_PLATFORM}:T0123ABCD") == Scope(SLACK_PLATFORM, "T0123ABCD")
    assert parse_scope(str(CONSOLE_SCOPE)) == CONSOLE_SCOPE
    with pytest.raises(UsageError, match="platform:id"):
        parse_scope("nonsense")
    assert "console:local" in SCOPE_FORMS


def test_budget_list_shows_every_scope_seen(tmp_path: Path) -> None:
    empty = run_bot(tmp_path, "budget", "list")
    assert empty.returncode == 0, empty.stderr
    assert "No scopes yet" in empty.stdout

    assert run_bot(tmp_path, "budget", "set", "slack:T0123", "1,000").returncode == 0
    chat = run_bot(tmp_path, "chat", stdin="/imagine a red fox\n")
    assert chat.returncode == 0, chat.stderr

    listed = run_bot(tmp_path, "budget", "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    month = datetime.now(UTC).strftime("%Y-%m")
    assert lines[0].split() == ["scope", "limit", "spent", month, "held", "last", "activity", "(UTC)"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == {"console:local", "slack:T0123"}
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    # The console's demo image is free: the scope is listed (activity) without spend.
    assert rows["console:local"].split()[1:5] == ["$20.00", "(default)", "$0.00", "$0.00"]
    assert today in rows["console:local"]
    assert rows["slack:T0123"].split()[1:4] == ["$1000.00", "$0.00", "$0.00"]
    assert today in rows["slack:T0123"], "a limit change counts as activity"


async def test_scope_activity_reads_limits_periods_and_transactions(ledger: Ledger) -> None:
    guild, team = Scope("discord", "1"), Scope("slack", "T1")
    await ledger.set_limit(team, usd_to_micros(5), by="cli")
    charged = await ledger.reserve(
        guild, usd_to_micros("0.04"), user="u", service="image", prompt="p", request_id="r1"
    )
    running = await ledger.reserve(
        guild, usd_to_micros("0.05"), user="u", service="song", prompt="p", request_id="r2"
    )
    assert isinstance(charged, Hold) and isinstance(running, Hold)
    await ledger.settle(charged, usd_to_micros("0.04"))

    activity = {str(line.scope): line for line in await scope_activity(ledger)}

    assert set(activity) == {"discord:1", "slack:T1"}
    assert (activity["discord:1"].spent, activity["discord:1"].held) == (
        usd_to_micros("0.04"),
        usd_to_micros("0.05"),
    )
    assert activity["discord:1"].limit_is_default and activity["discord:1"].limit == ledger.default_limit_for(
        guild
    )
    assert (activity["slack:T1"].limit, activity["slack:T1"].limit_is_default) == (usd_to_micros(5), False)
    assert activity["slack:T1"].spent == 0 and activity["slack:T1"].last_activity is not None

    next_month = await scope_activity(ledger, now=datetime(2999, 1, 1, tzinfo=UTC))
    assert [line.spent for line in next_month] == [0, 0]


def test_budget_user_sets_and_resets_a_members_cap_and_users_lists_spenders(tmp_path: Path) -> None:
    assert "Nobody has spent anything" in run_bot(tmp_path, "budget", "users", "slack:T0123").stdout

    capped = run_bot(tmp_path, "budget", "user", "slack:T0123", "U0ALICE", "2.50")
    assert capped.returncode == 0, capped.stderr
    assert capped.stdout.strip() == "slack:T0123 U0ALICE: monthly cap set to $2.50."
    bad = run_bot(tmp_path, "budget", "user", "slack:T0123", "U0ALICE", "lots")
    assert bad.returncode == 2 and "Can't set the cap" in bad.stderr
    wrong_scope = run_bot(tmp_path, "budget", "user", "slak:T0123", "U0ALICE", "1")
    assert wrong_scope.returncode == 2

    async def spend_and_check() -> None:
        ledger = await Ledger.open(f"sqlite:///{tmp_path}/bot.db", default_limit=usd_to_micros(20))
        try:
            member = await ledger.member_report(Scope("slack", "T0123"), "U0ALICE")
            assert (member.cap, member.cap_source) == (usd_to_micros("2.50"), "member")
            hold = await ledger.reserve(
                Scope("slack", "T0123"),
                usd_to_micros(2),
                user="U0ALICE",
                service="image",
                prompt="p",
                request_id="r",
            )
            assert isinstance(hold, Hold)
            await ledger.settle(hold, usd_to_micros(2))
        finally:
            await ledger.close()

    asyncio.run(spend_and_check())
    listed = run_bot(tmp_path, "budget", "users", "slack:T0123")
    assert listed.returncode == 0, listed.stderr
    assert "1. U0ALICE $2.00 · 100% · 1 request · own cap $2.50" in listed.stdout
    assert "default cap per member: $5.00" in listed.stdout

    reset = run_bot(
        tmp_path, "budget", "user", "slack:T0123", "U0ALICE", "reset", DEFAULT_USER_BUDGET_USD="off"
    )
    assert reset.returncode == 0, reset.stderr
    assert reset.stdout.strip() == "slack:T0123 U0ALICE: cap reset to the default, no cap."
