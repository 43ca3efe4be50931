"""Money as integer micro-dollars: exact sums, no float drift, easy to store in SQLite."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

MICROS_PER_USD = 1_000_000


def usd_to_micros(usd: Decimal | int | str) -> int:
    """Convert dollars to micro-dollars, rounding half up to the nearest micro-dollar."""
    return int((Decimal(usd) * MICROS_PER_USD).to_integral_value(rounding=ROUND_HALF_UP))


def format_usd(micros: int) -> str:
    """``$1.23`` for whole cents, more digits only when a sub-cent amount needs them."""
    sign = "-" if micros < 0 else ""
    dollars = Decimal(abs(micros)) / MICROS_PER_USD
    text = f"{dollars:.2f}" if dollars == dollars.quantize(Decimal("0.01")) else f"{dollars.normalize():f}"
    return f"{sign}${text}"


def parse_usd(text: str) -> int:
    """Parse an amount a person typed (``12``, ``12.50``, ``$12.50``) into micro-dollars."""
    cleaned = text.strip().removeprefix("$").replace(",", "").strip()
    try:
        amount = Decimal(cleaned)
    except ArithmeticError:
        raise ValueError(f"{text.strip()!r} is not an amount in dollars, e.g. 25 or 12.50") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError("the amount must be zero or more dollars")
    if amount > 1_000_000:
        raise ValueError("the amount must be at most $1,000,000")
    return usd_to_micros(amount)
