"""The command catalogue every platform offers, so help texts and usage hints agree everywhere."""

from __future__ import annotations

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

BY_NAME = {command.name: command for command in COMMANDS}


def command_for(intent: Intent) -> Command | None:
    return next((command for command in COMMANDS if command.intent is intent), None)


def help_text() -> str:
    lines = ["Commands:"]
    lines += [f"• `{command.usage}`: {command.description}" for command in COMMANDS]
    lines.append("Or just mention me with what you want, e.g. “draw a lighthouse at dusk”.")
    return "\n".join(lines)


def usage_hint(intent: Intent | None) -> str:
    """What to say when a prompt is empty."""
    command = command_for(intent) if intent else None
    if command is None:
        return "Tell me what you'd like: a picture, a song, some research or just a question.\n" + help_text()
    return f"Usage: `{command.usage}`: {command.description}. Please add a prompt."
