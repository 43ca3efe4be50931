"""The command catalogue every platform offers, so help texts and usage hints agree everywhere."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from core.parts import Intent

MAX_PROMPT_CHARS = 4000


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    usage: str
    description: str
    intent: Intent | None = None


COMMANDS: tuple[Command, ...] = (
    Command("imagine", "/imagine PROMPT", "draw an image", Intent.IMAGE),
    Command("song", "/song PROMPT", "compose a song with lyrics", Intent.SONG),
    Command("research", "/research TOPIC", "write a short research paper, streamed", Intent.RESEARCH),
    Command("budget", "/budget [set AMOUNT | reset]", "show this server's spend (admins: change the limit)"),
)

CONVERSATION_COMMANDS: tuple[Command, ...] = (
    Command("summary", "/summary", "summarize this conversation", Intent.SUMMARY),
    Command("forget", "/forget [all]", "forget this conversation (admins: `all` forgets every one here)"),
)
"""Offered where an adapter supports conversations (the console so far); a platform adds them to
its own list of commands once it passes ``Request.conversation`` and answers ``/forget``."""

ALL_COMMANDS = COMMANDS + CONVERSATION_COMMANDS

BY_NAME = {command.name: command for command in ALL_COMMANDS}


def command_for(intent: Intent) -> Command | None:
    return next((command for command in COMMANDS if command.intent is intent), None)


def help_text(commands: Sequence[Command] = COMMANDS) -> str:
    lines = ["Commands:"]
    lines += [f"• `{command.usage}`: {command.description}" for command in commands]
    lines.append("Or just mention me with what you want, e.g. “draw a lighthouse at dusk”.")
    return "\n".join(lines)


def usage_hint(intent: Intent | None) -> str:
    """What to say when a prompt is empty."""
    command = command_for(intent) if intent else None
    if command is None:
        return "Tell me what you'd like: a picture, a song, some research or just a question.\n" + help_text()
    return f"Usage: `{command.usage}`: {command.description}. Please add a prompt."
