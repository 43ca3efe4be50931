"""Earlier turns as models need them: fitted to a token budget (oldest left out first) and described."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from core.commands.catalogue import command_for
from core.parts import Intent, Turn

BOT_AUTHOR = "bot"
"""The ``author`` of the bot's own turns."""

TURN_OVERHEAD_TOKENS = 8
"""Chat formatting tokens per message (role markers, separators), generously rounded up."""


def turn_text(turn: Turn) -> str:
    """The turn as one message: a user's text as they typed it (``/song a sea shanty``), or the
    bot's text, then a line per delivered media."""
    command = command_for(turn.intent) if turn.intent is not None else None
    lines = [f"/{command.name} {turn.text}" if command else turn.text] if turn.text else []
    lines += [f"[delivered {media}]" for media in turn.media]
    return "\n".join(lines)


def estimated_tokens(text: str) -> int:
    """A typical token count for a message: about four characters a token, plus formatting."""
    return math.ceil(len(text) / 4) + TURN_OVERHEAD_TOKENS


@dataclass(frozen=True, slots=True)
class Window:
    """The newest turns that fit a token budget, and how many older ones were left out."""

    turns: tuple[Turn, ...]
    left_out: int

    def notice(self) -> str | None:
        """A short note saying that earlier turns were left out, or ``None`` when none were."""
        if not self.left_out:
            return None
        turns = "turn" if self.left_out == 1 else "turns"
        return f"{self.left_out} earlier {turns} of this conversation were left out to keep it short."

    def status(self) -> str | None:
        """The same, for the person asking, as a transient progress line."""
        if not self.left_out:
            return None
        return (
            f"Reading the last {len(self.turns)} turns of this conversation ({self.left_out} older left out)…"
        )


DEFAULT_HISTORY_TOKENS = 3000


def fit_history(history: Sequence[Turn], *, max_tokens: int = DEFAULT_HISTORY_TOKENS) -> Window:
    """The newest turns of ``history`` whose estimated tokens add up to at most ``max_tokens``,
    oldest first. Older turns are left out whole; a single turn longer than half the budget (a
    research paper) is cut short first, so one long answer never crowds out everything else."""
    kept: list[Turn] = []
    used = 0
    longest = max_tokens * 2  # characters: about half the budget's tokens
    for turn in reversed(history):
        if len(turn.text) > longest:
            turn = replace(turn, text=turn.text[:longest] + " …[cut]")
        used += estimated_tokens(turn_text(turn))
        if used > max_tokens:
            break
        kept.append(turn)
    kept.reverse()
    return Window(tuple(kept), len(history) - len(kept))


def transcript(turns: Sequence[Turn], *, per_turn_chars: int | None = None) -> str:
    """Turns as plain lines (``<author>: <text>``) for a model to read rather than continue."""
    lines = []
    for turn in turns:
        text = " ".join(turn_text(turn).split())
        if per_turn_chars is not None and len(text) > per_turn_chars:
            text = text[: per_turn_chars - 1] + "…"
        who = "bot" if turn.role == "assistant" else f"user {turn.author}"
        lines.append(f"{who}: {text}")
    return "\n".join(lines)


def multiple_speakers(turns: Sequence[Turn], current_user: str) -> bool:
    """Whether more than one person speaks, so user turns should say who wrote them."""
    return any(turn.role == "user" and turn.author != current_user for turn in turns)


def last_media(turns: Sequence[Turn]) -> tuple[Intent, str] | None:
    """The newest media the bot delivered in ``turns``, as (intent, prompt)."""
    for turn in reversed(turns):
        if turn.media:
            return turn.media[-1].intent, turn.media[-1].prompt
    return None
