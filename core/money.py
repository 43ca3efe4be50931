"""Money as integer micro-dollars: exact sums, no float drift, easy to store in SQLite."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal

MICROS_PER_USD = 1_000_000
MAX_TYPED_USD = 1_000_000

# Plain digits, or digits grouped in threes by commas (``1,000``); a point and decimals after either.
# A comma anywhere else (``5,00``, ``1,5``) is a decimal comma in many locales: refusing it beats
# reading ``5,00`` as $500.
_AMOUNT = re.compile(r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|\.\d+")
ACCEPTED_FORMS = "25, 12.50, $12.50 or 1,000 (a comma only between groups of three digits)"


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
    """Parse an amount a person typed (``12``, ``12.50``, ``$12.50``, ``1,000``) into micro-dollars.

    Raises ``ValueError`` with a message showing the accepted forms for anything else, including
    a decimal comma (``5,00``), which would otherwise be read as a thousands separator.
    """
    typed = text.strip()
    cleaned = typed.removeprefix("$").strip()
    if cleaned.startswith("-") and _AMOUNT.fullmatch(cleaned[1:].strip()):
        raise ValueError("the amount must be zero or more dollars")
    if not _AMOUNT.fullmatch(cleaned):
        as_point = cleaned.replace(",", ".")
        hint = f" (for cents use a point: {as_point})" if _AMOUNT.fullmatch(as_point) else ""
        raise ValueError(f"{typed!r} is not an amount in dollars{hint}; write it like {ACCEPTED_FORMS}")
    amount = Decimal(cleaned.replace(",", ""))
    if amount > MAX_TYPED_USD:
        raise ValueError("the amount must be at most $1,000,000")
    return usd_to_micros(amount)
