"""Per-token prices in integer micro-dollars, and the token arithmetic that keeps charges within holds."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from core.money import usd_to_micros

KNOWN_TEXT_PRICES = (
    "gpt-4o-mini=0.15/0.60,gpt-4o=2.50/10.00,gpt-4.1=2.00/8.00,gpt-4.1-mini=0.40/1.60,"
    "gpt-4.1-nano=0.10/0.40,gpt-5=1.25/10.00,gpt-5-mini=0.25/2.00,gpt-5-nano=0.05/0.40,"
    "llama-3.3-70b-versatile=0.59/0.79,llama-3.1-8b-instant=0.05/0.08"
)
"""List prices in USD per million input/output tokens at the time of writing; ``TEXT_PRICES`` overrides."""

MESSAGE_OVERHEAD_TOKENS = 8
"""Chat formatting tokens per message (role markers, separators), generously rounded up."""


@dataclass(frozen=True, slots=True)
class TokenPrice:
    """Micro-dollars per million tokens read (input) and written (output)."""

    input: int
    output: int

    def cost(self, input_tokens: int, output_tokens: int) -> int:
        """What a call that used these tokens costs, rounded up to the next micro-dollar."""
        return math.ceil((input_tokens * self.input + output_tokens * self.output) / 1_000_000)

    def affordable_output(self, budget: int, input_tokens: int) -> int:
        """The most output tokens that keep a call reading ``input_tokens`` within ``budget``."""
        left = budget * 1_000_000 - input_tokens * self.input
        if left <= 0:
            return 0
        return left // self.output if self.output else 1 << 31


def estimated_tokens(*messages: str) -> int:
    """A realistic token count of these chat messages: about four ASCII characters a token (English
    prose and code with OpenAI, Llama or Mistral tokenizers), one token for every other character
    (CJK, emoji and accented letters take one to three), plus each message's formatting.

    Used to cap answers within their allowance and to charge when a server reports no usage. An
    upper bound (a token per byte) would be safe but three to four times too high, and it made
    pricier models refuse any question that came with a conversation.
    """
    total = 0
    for message in messages:
        ascii_chars = len(message.encode("ascii", "ignore"))
        total += math.ceil(ascii_chars / 4) + (len(message) - ascii_chars) + MESSAGE_OVERHEAD_TOKENS
    return total


def parse_token_prices(text: str) -> dict[str, TokenPrice]:
    """Parse ``model=input/output,...`` (USD per million tokens) into prices by model name."""
    prices: dict[str, TokenPrice] = {}
    for entry in text.split(","):
        if not entry.strip():
            continue
        model, sep, pair = entry.strip().rpartition("=")
        read, slash, written = pair.partition("/")
        try:
            if not (sep and slash and model.strip()):
                raise InvalidOperation
            usd = Decimal(read.strip()), Decimal(written.strip())
        except InvalidOperation:
            raise ValueError(
                f"{entry.strip()!r} should look like model=INPUT/OUTPUT in USD per million tokens, "
                "e.g. gpt-4o-mini=0.15/0.60"
            ) from None
        if not all(amount.is_finite() and amount >= 0 for amount in usd):
            raise ValueError(f"{entry.strip()!r}: prices must be zero or more dollars")
        prices[model.strip()] = TokenPrice(usd_to_micros(usd[0]), usd_to_micros(usd[1]))
    return prices
