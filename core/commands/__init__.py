"""Slash commands for every surface: one catalogue (``catalogue``), one dispatcher (``dispatcher``)."""

from core.commands.catalogue import (
    COMMANDS,
    MAX_PROMPT_CHARS,
    Argument,
    ArgumentKind,
    Command,
    command_for,
    help_text,
    usage_hint,
)

__all__ = [
    "COMMANDS",
    "MAX_PROMPT_CHARS",
    "Argument",
    "ArgumentKind",
    "Command",
    "command_for",
    "help_text",
    "usage_hint",
]
