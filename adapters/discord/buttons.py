"""The buttons under delivered images and songs, and the Edit modal.

Buttons are ``DynamicItem``s: discord.py matches a press by its custom id (``studio:<action>:<job>``)
against templates registered when the client starts, so a button posted before a restart still
works. The Vary strength buttons (``studio-vary:<strength>:<job>``) work the same way. The Edit
modal's submission is recognised by its custom id too (the client reads it in ``on_interaction``),
so nothing about a button lives only in memory.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from typing import Any, Protocol, runtime_checkable

import discord

from core.parts import Strength
from core.studio import Action, parse_action_id

LABELS: dict[Action, tuple[str, str]] = {
    Action.REROLL: ("Reroll", "🔁"),
    Action.VARY: ("Vary", "🎨"),
    Action.UPSCALE: ("Upscale", "🔍"),
    Action.EDIT: ("Edit", "✏️"),
    Action.ANOTHER: ("Another take", "🎵"),
    Action.DELETE: ("Delete", "🗑️"),
}
STRENGTHS: tuple[Strength, ...] = ("subtle", "strong")
VARY_PREFIX = "studio-vary"
INSTRUCTION_FIELD = "instruction"
MAX_INSTRUCTION = 1000


@runtime_checkable
class Presses(Protocol):
    """The client that turns presses into requests (``StudioClient``)."""

    async def studio_press(
        self,
        interaction: discord.Interaction[Any],
        custom_id: str,
        *,
        strength: Strength | None = None,
        instruction: str | None = None,
    ) -> None: ...


def media_view(actions: Iterable[str], *, disabled: Collection[str] = ()) -> discord.ui.View | None:
    """One button per action id, in order, those in ``disabled`` greyed out (labels unchanged);
    ``None`` when there are none."""
    buttons = [
        StudioButton(custom_id, disabled=custom_id in disabled)
        for custom_id in actions
        if parse_action_id(custom_id) is not None
    ]
    if not buttons:
        return None
    # No timeout: a timed-out view would unregister the templates every later press needs.
    view = discord.ui.View(timeout=None)
    for button in buttons:
        view.add_item(button)
    return view


def vary_view(job: str) -> discord.ui.View:
    """The choice a Vary press offers: a subtle or a strong variation."""
    view = discord.ui.View(timeout=None)
    for strength in STRENGTHS:
        view.add_item(VaryChoice(job, strength))
    return view


async def _press(interaction: discord.Interaction[Any], custom_id: str, **how: Any) -> None:
    client = interaction.client
    if isinstance(client, Presses):
        await client.studio_press(interaction, custom_id, **how)


class StudioButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"studio:[a-z]+:[^:]+"):
    """A button under delivered media; its custom id is the action id itself."""

    def __init__(self, custom_id: str, *, disabled: bool = False) -> None:
        parsed = parse_action_id(custom_id)
        action = parsed[0] if parsed is not None else None
        label, emoji = LABELS[action] if action is not None else ("?", "❔")
        style = discord.ButtonStyle.danger if action is Action.DELETE else discord.ButtonStyle.secondary
        super().__init__(
            discord.ui.Button(label=label, emoji=emoji, style=style, custom_id=custom_id, disabled=disabled)
        )
        self.action_id = custom_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> StudioButton:
        return cls(match.group(0))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        await _press(interaction, self.action_id)


class VaryChoice(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=rf"{VARY_PREFIX}:(?P<strength>subtle|strong):(?P<job>[^:]+)",
):
    """Subtle or Strong, offered privately after a Vary press."""

    def __init__(self, job: str, strength: Strength) -> None:
        super().__init__(
            discord.ui.Button(
                label=strength.capitalize(),
                style=discord.ButtonStyle.primary,
                custom_id=f"{VARY_PREFIX}:{strength}:{job}",
            )
        )
        self.job = job
        self.strength: Strength = strength

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> VaryChoice:
        strength: Strength = "strong" if match.group("strength") == "strong" else "subtle"
        return cls(match.group("job"), strength)

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        await _press(interaction, f"studio:{Action.VARY.value}:{self.job}", strength=self.strength)


class InstructionModal(discord.ui.Modal):
    """Asks what to change; its custom id is the Edit action id, and the client handles the
    submission in ``on_interaction`` (so a modal left open across a restart still works)."""

    def __init__(self, custom_id: str) -> None:
        super().__init__(title="Edit the image", custom_id=custom_id, timeout=900)
        self.add_item(
            discord.ui.TextInput(
                label="What should change?",
                custom_id=INSTRUCTION_FIELD,
                placeholder="make it night",
                style=discord.TextStyle.paragraph,
                max_length=MAX_INSTRUCTION,
            )
        )


def submitted_instruction(data: Any) -> str:
    """The instruction typed into the Edit modal, from a modal submit's ``data``."""
    stack: list[Any] = list(data.get("components") or []) if isinstance(data, dict) else []
    while stack:
        component = stack.pop()
        if not isinstance(component, dict):
            continue
        if component.get("custom_id") == INSTRUCTION_FIELD and isinstance(component.get("value"), str):
            return str(component["value"])
        stack.extend(component.get("components") or [])
        if "component" in component:  # a Label wraps its input
            stack.append(component["component"])
    return ""
