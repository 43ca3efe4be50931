"""Filenames for generated media, made from the prompt that asked for them."""

from __future__ import annotations


def slug(prompt: str, *, limit: int = 40) -> str:
    """A filename-safe stem from a prompt: ``a red fox`` → ``a-red-fox``."""
    words = "".join(ch if ch.isalnum() else " " for ch in prompt.lower()).split()
    return "-".join(words)[:limit].strip("-") or "untitled"
