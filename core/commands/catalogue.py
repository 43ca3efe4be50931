"""The command catalogue every surface offers: Discord's command tree, the Slack manifest and the
help text are all built from this one table."""

from __future__ import annotations

import enum
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace

from core.parts import ASPECTS, Intent

MAX_PROMPT_CHARS = 4000


class ArgumentKind(enum.Enum):
    TEXT = "text"
    """Free text; as the last argument it takes the rest of the line."""
    AMOUNT = "amount"
    """Dollars as typed (``25``, ``12.50``); the command parses and validates it."""
    FLAG = "flag"
    """A word that is present or not (``/forget all``); a boolean option on Discord."""
    MEMBER = "member"
    """A member, written ``<@123>`` (Slack: ``<@U123|name>``); a user option on Discord."""
    ROLE = "role"
    """A role, written ``<@&456>``; a role option on Discord."""
    CHANNEL = "channel"
    """A channel, written ``<#789>`` (Slack: ``<#C123|general>``); a channel option on Discord."""
    CHOICE = "choice"
    """One of the argument's ``choices``; Discord offers them as a list."""
    ATTACHMENT = "attachment"
    """A file: an attachment option on Discord. Slash commands elsewhere carry no files (the
    console reads ``--ref PATH`` instead; Slack takes a mention with the file attached)."""


@dataclass(frozen=True, slots=True)
class Argument:
    name: str
    description: str
    kind: ArgumentKind = ArgumentKind.TEXT
    required: bool = True
    choices: tuple[str, ...] = ()
    """The words a ``CHOICE`` argument accepts."""
    flag: str = ""
    """Typed as ``--flag VALUE`` after the prompt (``--ar 16:9``); Discord sends its option so."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    """One slash command. ``intent`` marks a generation command (its argument is the prompt);
    ``subcommands`` are the words that may follow the name (Discord shows them as subcommands)."""

    name: str
    usage: str
    description: str
    intent: Intent | None = None
    arguments: tuple[Argument, ...] = ()
    subcommands: tuple[Command, ...] = ()
    conversational: bool = False
    """Only offered where conversations are remembered; acts on the conversation it is used in."""
    uses_rights: bool = False
    """Some of its actions are for admins: the surface works out whether the caller is one."""
    admins_only: bool = False
    """Every action is for admins: Discord hides it from members without Manage Server."""
    with_roles: bool | None = None
    """``True``: only on surfaces whose members have roles (Discord); ``False``: only on the
    others (Slack, the console); ``None``: everywhere."""
    on_last_media: Intent | None = None
    """Acts on the conversation's last image or song (``/reroll``): offered where buttons aren't
    (the console); surfaces with buttons carry the same actions under the media itself."""

    @property
    def names_members(self) -> bool:
        """Whether it takes members, roles or channels (Slack must send those escaped, with ids)."""
        kinds = {ArgumentKind.MEMBER, ArgumentKind.ROLE, ArgumentKind.CHANNEL}
        return any(
            argument.kind in kinds for command in (self, *self.subcommands) for argument in command.arguments
        )

    @property
    def usage_hint(self) -> str:
        """The usage without the command's own name, e.g. ``PROMPT`` (Slack's manifest shows it)."""
        return self.usage.removeprefix(f"/{self.name}").strip()


_PROMPT = Argument("prompt", "What you'd like")
_AMOUNT = Argument("amount", "Monthly limit in dollars, e.g. 25 or 12.50", ArgumentKind.AMOUNT)
_EVERYTHING = Argument("all", "Forget every conversation here (admins)", ArgumentKind.FLAG, required=False)
_CAP = Argument("amount", "Monthly cap in dollars (e.g. 5), off for no cap, or reset")
_ON_OFF = ("on", "off")
SERVICE_WORDS = ("image", "song", "research", "chat")

_ASPECT = Argument(
    "aspect", "Shape: 1:1, 4:3, 3:4, 16:9, 9:16 or 21:9", ArgumentKind.CHOICE, False, ASPECTS, flag="--ar"
)
_SEED = Argument("seed", "A seed (whole number) to reproduce an image", required=False, flag="--seed")
_REFERENCE = Argument(
    "reference", "A picture to start from (PNG, JPEG or WebP)", ArgumentKind.ATTACHMENT, required=False
)
_STRENGTH = Argument(
    "strength", "How far from the image: subtle or strong", ArgumentKind.CHOICE, False, ("subtle", "strong")
)

COMMANDS: tuple[Command, ...] = (
    Command(
        name="imagine",
        usage="/imagine PROMPT [--ar 16:9] [--seed 42]",
        description="draw an image",
        intent=Intent.IMAGE,
        arguments=(_PROMPT, _ASPECT, _SEED, _REFERENCE),
    ),
    Command(
        name="song",
        usage="/song PROMPT",
        description="compose a song with lyrics",
        intent=Intent.SONG,
        arguments=(_PROMPT,),
    ),
    Command(
        name="research",
        usage="/research TOPIC",
        description="write a short research paper, streamed",
        intent=Intent.RESEARCH,
        arguments=(_PROMPT,),
    ),
    Command(
        name="budget",
        usage="/budget [set AMOUNT | reset | users | user MEMBER AMOUNT|off|reset | user-default AMOUNT|off "
        "| dashboard]",
        description="your spend and this budget's (admins: limits and per-member caps)",
        uses_rights=True,
        subcommands=(
            Command(
                name="show",
                usage="/budget show",
                description="Your own spend and cap; admins also see the whole budget",
            ),
            Command(
                name="set",
                usage="/budget set AMOUNT",
                description="Set the monthly limit (admins)",
                arguments=(
                    Argument("amount", "Monthly limit in dollars, e.g. 25 or 12.50", ArgumentKind.AMOUNT),
                ),
            ),
            Command(
                name="reset", usage="/budget reset", description="Restore the default monthly limit (admins)"
            ),
            Command(
                name="dashboard",
                usage="/budget dashboard",
                description="A private link to this budget's web dashboard (admins)",
            ),
            Command(
                name="users",
                usage="/budget users",
                description="Top spenders this month: amount, share and requests (admins)",
            ),
            Command(
                name="user",
                usage="/budget user MEMBER AMOUNT|off|reset",
                description="Set one member's monthly cap, or reset it to the default (admins)",
                arguments=(Argument("member", "The member", ArgumentKind.MEMBER), _CAP),
            ),
            Command(
                name="user-default",
                usage="/budget user-default AMOUNT|off|reset",
                description="Every member's default monthly cap here (admins)",
                arguments=(_CAP,),
            ),
        ),
    ),
    Command(
        name="access",
        usage="/access show | channel on|off | mode open|allowlist | role|user … allow|remove | "
        "service NAME on|off",
        description="who may use me where, and which services are on (admins)",
        uses_rights=True,
        admins_only=True,
        subcommands=(
            Command(name="show", usage="/access show", description="This server's whole access policy"),
            Command(
                name="channel",
                usage="/access channel on|off [CHANNEL]",
                description="Switch me on or off in this channel (or the one given)",
                arguments=(
                    Argument("state", "on or off", ArgumentKind.CHOICE, choices=_ON_OFF),
                    Argument(
                        "channel", "Another channel than this one", ArgumentKind.CHANNEL, required=False
                    ),
                ),
            ),
            Command(
                name="mode",
                usage="/access mode open|allowlist",
                description="open: every channel not switched off; allowlist: only channels switched on",
                arguments=(
                    Argument("mode", "open or allowlist", ArgumentKind.CHOICE, choices=("open", "allowlist")),
                ),
            ),
            Command(
                name="role",
                usage="/access role ROLE allow|remove",
                description="Only members with an allowed role (or admins) may use paid commands",
                arguments=(
                    Argument("role", "The role", ArgumentKind.ROLE),
                    Argument("action", "allow or remove", ArgumentKind.CHOICE, choices=("allow", "remove")),
                ),
                with_roles=True,
            ),
            Command(
                name="user",
                usage="/access user @MEMBER allow|remove",
                description="Only allowed members (or admins) may use paid commands",
                arguments=(
                    Argument("member", "The member", ArgumentKind.MEMBER),
                    Argument("action", "allow or remove", ArgumentKind.CHOICE, choices=("allow", "remove")),
                ),
                with_roles=False,
            ),
            Command(
                name="service",
                usage="/access service image|song|research|chat on|off",
                description="Switch a service on or off here",
                arguments=(
                    Argument("service", "Which service", ArgumentKind.CHOICE, choices=SERVICE_WORDS),
                    Argument("state", "on or off", ArgumentKind.CHOICE, choices=_ON_OFF),
                ),
            ),
        ),
    ),
    Command(name="help", usage="/help", description="what I can do and how to ask"),
    Command(
        name="summary",
        usage="/summary [FOCUS]",
        description="summarize this conversation",
        intent=Intent.SUMMARY,
        arguments=(Argument("focus", "What the summary should concentrate on (optional)", required=False),),
        conversational=True,
    ),
    Command(
        name="forget",
        usage="/forget [all]",
        description="forget this conversation (admins: `all` forgets every one here)",
        arguments=(
            Argument("all", "Forget every conversation here (admins)", ArgumentKind.FLAG, required=False),
        ),
        conversational=True,
        uses_rights=True,
    ),
)

LAST_MEDIA_COMMANDS: tuple[Command, ...] = (
    Command(
        name="reroll",
        usage="/reroll",
        description="draw the last image again with a new seed",
        on_last_media=Intent.IMAGE,
    ),
    Command(
        name="vary",
        usage="/vary [subtle|strong]",
        description="an image close to the last one",
        arguments=(_STRENGTH,),
        on_last_media=Intent.IMAGE,
    ),
    Command(
        name="upscale",
        usage="/upscale",
        description="a larger version of the last image",
        on_last_media=Intent.IMAGE,
    ),
    Command(
        name="edit",
        usage="/edit INSTRUCTION",
        description="change the last image, e.g. “make it night”",
        arguments=(Argument("instruction", "What to change"),),
        on_last_media=Intent.IMAGE,
    ),
    Command(
        name="another",
        usage="/another",
        description="another take of the last song",
        on_last_media=Intent.SONG,
    ),
)
"""Commands on the conversation's last image or song, for surfaces without buttons (the console);
Discord and Slack offer the same actions as buttons under the media instead."""

BY_NAME = {command.name: command for command in (*COMMANDS, *LAST_MEDIA_COMMANDS)}


def command_for(intent: Intent) -> Command | None:
    return next((command for command in COMMANDS if command.intent is intent), None)


def available(
    *, intents: Collection[Intent], conversations: bool, roles: bool = False, last_media: bool = False
) -> tuple[Command, ...]:
    """The commands a bot serving ``intents`` offers; conversational ones only with a memory;
    role commands only where members have roles (``roles``), member lists only where they don't;
    commands on the last image or song only where asked for (``last_media``: the console)."""

    def fits(command: Command) -> bool:
        return command.with_roles is None or command.with_roles == roles

    return tuple(
        replace(command, subcommands=tuple(sub for sub in command.subcommands if fits(sub)))
        for command in (*COMMANDS, *(LAST_MEDIA_COMMANDS if last_media else ()))
        if (command.intent is None or command.intent in intents)
        and (conversations or not command.conversational)
        and (
            command.on_last_media is None
            or (last_media and conversations and command.on_last_media in intents)
        )
        and fits(command)
    )


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
    hint = f"Usage: `{command.usage}`: {command.description}. Please add a prompt."
    return hint + REFERENCE_HINT if intent is Intent.IMAGE else hint


REFERENCE_HINT = (
    "\nTo start from a picture of your own: on Discord, fill in /imagine's `reference` option; on "
    "Slack, mention me with the picture attached and say what to make of it (slash commands carry "
    "no files there); in the console, add `--ref PATH`."
)
"""How each surface takes a reference picture, said wherever ``/imagine`` explains itself."""
