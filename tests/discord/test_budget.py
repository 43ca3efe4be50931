"""/budget through the real client: who may view, who may change, and that answers are private."""

from __future__ import annotations

from core.ledger import Ledger
from core.money import usd_to_micros
from core.parts import Scope
from tests.conftest import DEFAULT_LIMIT
from tests.discord.conftest import StartBot
from tests.fakes.fake_discord import EPHEMERAL, FakeDiscord, FakeInteraction

MANAGE_GUILD = 1 << 5
ADMIN = FakeDiscord.user("900", "admin")
MEMBER = FakeDiscord.user("111", "alice")


async def budget(
    fake: FakeDiscord, action: str, *, user: dict[str, object], permissions: int, amount: str | None = None
) -> str:
    """Run ``/budget action [amount]`` and return the private answer's text."""
    options = [{"name": "amount", "type": 3, "value": amount}] if amount is not None else []
    interaction = await fake.slash(
        "budget", [{"name": action, "type": 1, "options": options}], user=user, permissions=permissions
    )
    await fake.wait_until(lambda: bool(interaction.callbacks))
    return answer_of(interaction)


def answer_of(interaction: FakeInteraction) -> str:
    [callback] = interaction.callbacks
    assert callback["type"] == 4, "answered at once, no deferral needed"
    assert callback["data"]["flags"] & EPHEMERAL, "budget answers are private"
    return str(callback["data"]["embeds"][0]["description"])


async def test_admin_sees_sets_and_resets_the_budget(
    fake: FakeDiscord, start_bot: StartBot, ledger: Ledger
) -> None:
    await start_bot()
    scope = Scope("discord", fake.guild_id)

    shown = await budget(fake, "show", user=ADMIN, permissions=MANAGE_GUILD)
    assert shown.startswith("**Budget for ")
    assert "Limit: $20.00 (default)" in shown
    assert "Remaining: $20.00" in shown

    changed = await budget(fake, "set", user=ADMIN, permissions=MANAGE_GUILD, amount="$12.50")
    assert changed.startswith("Monthly limit set to $12.50.")
    report = await ledger.report(scope)
    assert report.limit == usd_to_micros("12.50")

    reset = await budget(fake, "reset", user=ADMIN, permissions=MANAGE_GUILD)
    assert reset.startswith("Limit reset to the default, $20.00 a month.")
    assert (await ledger.report(scope)).limit == DEFAULT_LIMIT


async def test_bad_amount_gets_a_clear_message(
    fake: FakeDiscord, start_bot: StartBot, ledger: Ledger
) -> None:
    await start_bot()
    answer = await budget(fake, "set", user=ADMIN, permissions=MANAGE_GUILD, amount="lots")
    assert answer.startswith("Can't set the limit: 'lots' is not an amount in dollars")
    assert (await ledger.report(Scope("discord", fake.guild_id))).limit_is_default


async def test_member_without_manage_guild_sees_only_their_own_line_and_cannot_change(
    fake: FakeDiscord, start_bot: StartBot, ledger: Ledger
) -> None:
    await start_bot()
    own = await budget(fake, "show", user=MEMBER, permissions=0)
    assert own.startswith("**Your spend in ") and "Limit:" not in own and "Last transactions" not in own
    refused = await budget(fake, "set", user=MEMBER, permissions=0, amount="1000")
    assert refused == "Only admins can change this budget."
    assert await budget(fake, "reset", user=MEMBER, permissions=0) == "Only admins can change this budget."
    assert (await ledger.report(Scope("discord", fake.guild_id))).limit == DEFAULT_LIMIT


async def test_everyone_may_view_but_only_admins_change_when_configured(
    fake: FakeDiscord, start_bot: StartBot, ledger: Ledger
) -> None:
    await start_bot(budget_visible_to="everyone")
    assert (await budget(fake, "show", user=MEMBER, permissions=0)).startswith("**Budget for ")
    refused = await budget(fake, "set", user=MEMBER, permissions=0, amount="1000")
    assert refused == "Only admins can change this budget."
    assert (await ledger.report(Scope("discord", fake.guild_id))).limit == DEFAULT_LIMIT
