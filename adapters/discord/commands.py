"""The core's command catalogue as Discord application commands: options in, command text out.

Members, roles and channels picked in Discord's menus become the text forms the core parses
(``<@123>``, ``<@&456>``, ``<#789>``), the same words a Slack user types."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import discord
from discord import app_commands

from core.attachments import AttachmentRef
from core.commands import Argument, ArgumentKind, Command

Invoke = Callable[[discord.Interaction[Any], Command, str, tuple[AttachmentRef, ...]], Awaitable[None]]
"""Called with the top-level command, the text a person would have typed after its name, and the
files given in its attachment options (not downloaded yet)."""

_ANNOTATIONS: dict[ArgumentKind, type] = {
    ArgumentKind.TEXT: str,
    ArgumentKind.AMOUNT: str,  # parsed by the core, which explains what it accepts
    ArgumentKind.FLAG: bool,
    ArgumentKind.MEMBER: discord.User,  # a user option: discord.py hands a Member or a User
    ArgumentKind.ROLE: discord.Role,
    ArgumentKind.CHANNEL: app_commands.AppCommandChannel,
    ArgumentKind.CHOICE: str,
    ArgumentKind.ATTACHMENT: discord.Attachment,
}


_EMPTY: dict[ArgumentKind, object] = {
    ArgumentKind.FLAG: False,
    ArgumentKind.TEXT: "",
    ArgumentKind.AMOUNT: "",
}
"""An optional option's value when left out; members, roles and channels are then ``None``."""


def build_commands(
    commands: tuple[Command, ...],
    invoke: Invoke,
    *,
    allow_dms: bool,
    admin_only: frozenset[str] = frozenset(),
) -> list[app_commands.Command[Any, ..., None] | app_commands.Group]:
    """One application command per catalogue entry; entries with subcommands become groups.
    Commands in ``admin_only`` are hidden from members without Manage Server (the core still
    checks every use)."""
    contexts = app_commands.AppCommandContext(guild=True, dm_channel=allow_dms)
    installs = app_commands.AppInstallationType(guild=True, user=False)
    built: list[app_commands.Command[Any, ..., None] | app_commands.Group] = []
    for command in commands:
        permissions = discord.Permissions(manage_guild=True) if command.name in admin_only else None
        if not command.subcommands:
            slash = _command(command, command, invoke, words=(), contexts=contexts, installs=installs)
            slash.default_permissions = permissions
            built.append(slash)
            continue
        group = app_commands.Group(
            name=command.name,
            description=_description(command),
            default_permissions=permissions,
            allowed_contexts=contexts,
            allowed_installs=installs,
        )
        for sub in command.subcommands:
            group.add_command(_command(sub, command, invoke, words=(sub.name,)))
        built.append(group)
    return built


def _command(
    command: Command,
    top: Command,
    invoke: Invoke,
    *,
    words: tuple[str, ...],
    contexts: app_commands.AppCommandContext | None = None,
    installs: app_commands.AppInstallationType | None = None,
) -> app_commands.Command[Any, ..., None]:
    async def callback(interaction: discord.Interaction[Any], **values: Any) -> None:
        await invoke(interaction, top, _as_text(command.arguments, values, words), _files(command, values))

    # discord.py reads a command's options from its callback's signature.
    callback.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(
                "interaction", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=discord.Interaction
            )
        ]
        + [_parameter(argument) for argument in command.arguments]
    )
    described = app_commands.describe(
        **{argument.name: argument.description for argument in command.arguments}
    )
    choices = app_commands.choices(
        **{
            argument.name: [app_commands.Choice(name=choice, value=choice) for choice in argument.choices]
            for argument in command.arguments
            if argument.kind is ArgumentKind.CHOICE
        }
    )
    return app_commands.Command(
        name=command.name,
        description=_description(command),
        callback=choices(described(callback)),
        allowed_contexts=contexts,
        allowed_installs=installs,
    )


def _parameter(argument: Argument) -> inspect.Parameter:
    default: object = inspect.Parameter.empty
    if not argument.required:
        default = _EMPTY.get(argument.kind)
    return inspect.Parameter(
        argument.name,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        annotation=_ANNOTATIONS[argument.kind],
        default=default,
    )


def _as_text(arguments: tuple[Argument, ...], values: dict[str, Any], words: tuple[str, ...]) -> str:
    """The options as the words a person would type after the command's name."""
    parts = list(words)
    for argument in arguments:
        value = values.get(argument.name)
        if argument.kind is ArgumentKind.ATTACHMENT:
            continue  # files travel beside the text (see ``_files``)
        if argument.kind is ArgumentKind.FLAG:
            if value:
                parts.append(argument.name)
        elif value and argument.flag:
            parts.append(f"{argument.flag} {_word(argument.kind, value)}")
        elif value:
            parts.append(_word(argument.kind, value))
    return " ".join(parts)


def _files(command: Command, values: dict[str, Any]) -> tuple[AttachmentRef, ...]:
    """The files given in ``command``'s attachment options, as Discord announces them."""
    return tuple(
        AttachmentRef(url=item.url, name=item.filename, size=item.size, content_type=item.content_type or "")
        for argument in command.arguments
        if argument.kind is ArgumentKind.ATTACHMENT
        and isinstance(item := values.get(argument.name), discord.Attachment)
    )


def _word(kind: ArgumentKind, value: Any) -> str:
    """An option's value as the core reads it: ids of members, roles and channels in their text forms."""
    if kind is ArgumentKind.MEMBER:
        return f"<@{value.id}>"
    if kind is ArgumentKind.ROLE:
        return f"<@&{value.id}>"
    if kind is ArgumentKind.CHANNEL:
        return f"<#{value.id}>"
    return str(value)


def _description(command: Command) -> str:
    # Discord shows descriptions as plain text of at most 100 characters.
    return command.description.replace("`", "")[:100]
