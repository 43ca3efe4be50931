"""A command's or button's answer shown at once, as a value every surface renders the same way."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer to show at once; ``private`` ones only the caller sees (ephemeral)."""

    text: str
    private: bool = True
