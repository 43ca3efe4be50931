"""Block Kit for the actions under delivered images and songs, and the Edit dialog.

``files.completeUploadExternal`` (behind ``files_upload_v2``) takes no interactive blocks and
returns no message ts (Slack shares the file asynchronously), so the buttons go in a message of
their own, posted in the same thread right after the file. That message's ``actions`` block
carries everything a later press needs and nothing lives only in memory: each element's
``action_id`` (and ``value``) is the core's action id, and the block's ``block_id`` names the files
and messages a Delete removes (``files.delete``, ``chat.delete``), so Delete still works after a
restart.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.parts import Strength
from core.studio import Action, Expired, parse_action_id

BLOCK_PREFIX = "studio-media:"
MAX_BLOCK_ID = 255
EDIT_CALLBACK = "studio-edit"
INSTRUCTION_BLOCK = "instruction"
INSTRUCTION_INPUT = "instruction-input"
MAX_INSTRUCTION = 1000
LABELS = {
    Action.REROLL: "🔁 Reroll",
    Action.VARY: "Vary",
    Action.UPSCALE: "⬆️ Upscale",
    Action.EDIT: "✏️ Edit",
    Action.ANOTHER: "🔁 Another take",
    Action.DELETE: "🗑 Delete",
}
PRESSED = {
    Action.REROLL: "Reroll",
    Action.VARY: "Vary",
    Action.UPSCALE: "Upscale",
    Action.EDIT: "Edit",
    Action.ANOTHER: "Another take",
}
"""How the note above a press's result names what was pressed ("Reroll by <@U…>")."""
STRENGTHS: tuple[Strength, ...] = ("subtle", "strong")
EMPTY_INSTRUCTION = "Tell me what to change, e.g. “make it night”."


@dataclass(frozen=True, slots=True)
class Leftovers:
    """What a Delete removes besides the buttons message itself."""

    files: tuple[str, ...] = ()
    messages: tuple[str, ...] = ()


def actions_block(actions: Sequence[str], leftovers: Leftovers) -> dict[str, Any]:
    """One element per action id, in order. Vary is a menu (subtle or strong) under the same id,
    because an action id must be unique within a message."""
    elements = [_element(text) for text in actions]
    return {"type": "actions", "block_id": _block_id(leftovers), "elements": elements}


def expired_blocks(expired: Expired, block_id: str) -> list[dict[str, Any]]:
    """The buttons message once some of its actions have stopped working for everyone: those are
    dropped (Block Kit has no disabled state), the rest keep the block id (so Delete still finds
    what to remove), and a context line says why."""
    blocks: list[dict[str, Any]] = []
    if expired.usable:
        blocks.append(actions_block(expired.usable, leftovers_of(block_id)))
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"⌛ {expired.reason}"}]})
    return blocks


def _element(text: str) -> dict[str, Any]:
    parsed = parse_action_id(text)
    action = parsed[0] if parsed else None
    if action is Action.VARY:
        return {
            "type": "static_select",
            "action_id": text,
            "placeholder": _plain("🎨 Vary"),
            "options": [{"text": _plain(f"Vary ({strength})"), "value": strength} for strength in STRENGTHS],
        }
    button: dict[str, Any] = {
        "type": "button",
        "action_id": text,
        "value": text,
        "text": _plain(LABELS.get(action, text) if action else text),
    }
    if action is Action.DELETE:
        button["style"] = "danger"
        button["confirm"] = {
            "title": _plain("Delete it?"),
            "text": _plain("This removes it from the thread, and I forget my copy."),
            "confirm": _plain("Delete"),
            "deny": _plain("Keep it"),
            "style": "danger",
        }
    return button


def _block_id(leftovers: Leftovers) -> str:
    """``studio-media:F1,F2;ts1,ts2``; entries that wouldn't fit Slack's 255 are left out."""
    text = BLOCK_PREFIX
    for index, items in enumerate((leftovers.files, leftovers.messages)):
        if index:
            text += ";"
        kept: list[str] = []
        for item in items:
            if len(text) + len(",".join([*kept, item])) > MAX_BLOCK_ID - 20:
                break
            kept.append(item)
        text += ",".join(kept)
    return text


def leftovers_of(block_id: str) -> Leftovers:
    """The files and messages a ``block_id`` from ``actions_block`` names."""
    if not block_id.startswith(BLOCK_PREFIX):
        return Leftovers()
    files, _, messages = block_id.removeprefix(BLOCK_PREFIX).partition(";")
    return Leftovers(
        files=tuple(item for item in files.split(",") if item),
        messages=tuple(item for item in messages.split(",") if item),
    )


def pressed_strength(action: dict[str, Any]) -> Strength:
    selected = (action.get("selected_option") or {}).get("value")
    return "strong" if selected == "strong" else "subtle"


def edit_dialog(
    action_id: str, *, channel: str, thread: str, message: str, block: str = ""
) -> dict[str, Any]:
    """The modal asking what to change; ``private_metadata`` carries the press (where it was
    pressed, and the buttons' block id) to the ``view_submission``."""
    metadata = {"action": action_id, "channel": channel, "thread": thread, "message": message, "block": block}
    return {
        "type": "modal",
        "callback_id": EDIT_CALLBACK,
        "private_metadata": json.dumps(metadata),
        "title": _plain("Edit the image"),
        "submit": _plain("Edit"),
        "close": _plain("Cancel"),
        "blocks": [
            {
                "type": "input",
                "block_id": INSTRUCTION_BLOCK,
                "label": _plain("What should change?"),
                "element": {
                    "type": "plain_text_input",
                    "action_id": INSTRUCTION_INPUT,
                    "max_length": MAX_INSTRUCTION,
                    "placeholder": _plain("make it night"),
                },
            }
        ],
    }


def submitted(view: dict[str, Any]) -> tuple[dict[str, str], str]:
    """The press an Edit dialog was opened for, and the instruction typed into it."""
    try:
        metadata = json.loads(str(view.get("private_metadata") or "{}"))
    except ValueError:
        metadata = {}
    values = ((view.get("state") or {}).get("values") or {}).get(INSTRUCTION_BLOCK) or {}
    instruction = str((values.get(INSTRUCTION_INPUT) or {}).get("value") or "")
    return {key: str(value) for key, value in metadata.items()}, " ".join(instruction.split())


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text[:75], "emoji": True}
