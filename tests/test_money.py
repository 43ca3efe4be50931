"""Amounts people type: a comma is only ever a thousands separator, never a decimal comma."""

from __future__ import annotations

import pytest

from core.budget import budget_command
from core.ledger import Ledger
from core.money import format_usd, parse_usd, usd_to_micros
from core.parts import Scope


@pytest.mark.parametrize(
    ("typed", "dollars"),
    [
        ("25", "25"),
        ("12.50", "12.50"),
        ("$12.50", "12.50"),
        (" $ 7 ", "7"),
        (".5", "0.5"),
        ("12.", "12"),
        ("0", "0"),
        ("1,000", "1000"),
        ("12,500.50", "12500.50"),
        ("$1,000,000", "1000000"),
    ],
)
def test_accepted_forms(typed: str, dollars: str) -> None:
    assert parse_usd(typed) == usd_to_micros(dollars)


@pytest.mark.parametrize(
    "typed", ["5,00", "1,5", "1,0000", "12,50.5", ",500", "1,,000", "1,000,00", "1.000,50"]
)
def test_a_comma_outside_groups_of_three_is_refused_showing_the_accepted_forms(typed: str) -> None:
    with pytest.raises(ValueError, match="is not an amount in dollars") as refused:
        parse_usd(typed)
    message = str(refused.value)
    assert repr(typed) in message
    assert "12.50" in message and "1,000" in message, message


def test_a_decimal_comma_suggests_the_point() -> None:
    with pytest.raises(ValueError, match=r"for cents use a point: 5\.00"):
        parse_usd("5,00")
    with pytest.raises(ValueError, match=r"for cents use a point: 1\.5"):
        parse_usd("1,5")


@pytest.mark.parametrize("typed", ["lots", "", "$", "1e3", "NaN", "Infinity", "1.2.3", "0x10"])
def test_other_text_is_refused(typed: str) -> None:
    with pytest.raises(ValueError, match="is not an amount in dollars"):
        parse_usd(typed)


def test_negative_and_huge_amounts_are_refused() -> None:
    with pytest.raises(ValueError, match="zero or more"):
        parse_usd("-5")
    with pytest.raises(ValueError, match="at most"):
        parse_usd("1,000,001")


def test_format_round_trips() -> None:
    assert format_usd(parse_usd("12,500.50")) == "$12500.50"


async def test_budget_set_with_a_decimal_comma_leaves_the_limit_alone(ledger: Ledger) -> None:
    """``/budget set`` on Discord and Slack goes through ``budget_command``."""
    scope = Scope("discord", "123")
    before = (await ledger.report(scope)).limit

    answer = await budget_command(ledger, scope, "set 5,00", user="U1", can_view=True, can_change=True)

    assert answer.startswith("Can't set the limit: '5,00' is not an amount in dollars")
    assert "for cents use a point: 5.00" in answer
    assert (await ledger.report(scope)).limit == before
    await budget_command(ledger, scope, "set 1,000", user="U1", can_view=True, can_change=True)
    assert (await ledger.report(scope)).limit == usd_to_micros(1000)
