"""Work on delivered images and songs (reroll, vary, upscale, edit, another take, delete): the
persistent action ids buttons carry, the ``/imagine`` flags, the durable record of what was
delivered, and ``press``, which turns a button press into a new request by the presser.

A press never runs anything itself: it returns a ``Request`` the adapter hands to
``Engine.handle`` like any other (same policies, reservation, member cap and ledger), or a private
``Reply`` saying why not (nothing charged), an ``Expired`` when some buttons have stopped working
for everyone, or a ``Removal`` for a permitted delete.
"""

from __future__ import annotations

import enum
import re
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from core.commands.reply import Reply
from core.db import Database, Row
from core.parts import (
    ASPECTS,
    Access,
    Audio,
    Destination,
    Image,
    ImageAttachment,
    Intent,
    Operation,
    Request,
    Scope,
    Strength,
    StudioWork,
)

PREFIX = "studio"
MAX_ACTION_ID = 100
"""Discord's custom_id limit; Slack's action_id (255) and value (2000) are looser."""
DEFAULT_KEEP_DAYS = 7
MAX_SEED = 2**32 - 1


class Action(enum.StrEnum):
    """What a button under delivered media does."""

    REROLL = "reroll"
    VARY = "vary"
    UPSCALE = "upscale"
    EDIT = "edit"
    ANOTHER = "another"
    DELETE = "delete"


IMAGE_ACTIONS = (Action.REROLL, Action.VARY, Action.UPSCALE, Action.EDIT, Action.DELETE)
SONG_ACTIONS = (Action.ANOTHER, Action.DELETE)
NEEDS_SOURCE = frozenset({Action.VARY, Action.UPSCALE, Action.EDIT})
"""Actions that work on the bot's copy of the image, so they end when it expires."""


def action_id(action: Action, job: str) -> str:
    """``studio:<action>:<job>``, the id a Discord custom_id or Slack action_id/value carries."""
    text = f"{PREFIX}:{action.value}:{job}"
    if len(text) > MAX_ACTION_ID or ":" in job:
        raise ValueError(f"job id {job!r} makes an invalid action id")
    return text


def parse_action_id(text: str) -> tuple[Action, str] | None:
    """The action and job an id names, or ``None`` when it isn't a studio action id."""
    prefix, _, rest = text.partition(":")
    word, _, job = rest.partition(":")
    if prefix != PREFIX or not job or ":" in job or len(text) > MAX_ACTION_ID:
        return None
    try:
        return Action(word), job
    except ValueError:
        return None


# --- /imagine flags ---------------------------------------------------------------------------

_FLAG = re.compile(r'(?:^|\s)--(ar|aspect|seed|ref)(?:\s+|=)("[^"]*"|\S*)', re.IGNORECASE)
REFERENCE_ELSEWHERE = (
    "`--ref` reads a file on the bot's own computer, so it only works in the console. Here, attach "
    "the picture instead: on Discord, /imagine's `reference` option; on Slack, mention me with the "
    "picture attached and say what to make of it. Nothing was charged."
)


@dataclass(frozen=True, slots=True)
class ImagePrompt:
    """A prompt with its ``--ar``/``--seed``/``--ref`` flags read off."""

    prompt: str
    aspect: str | None = None
    seed: int | None = None
    reference: str | None = None
    """``--ref PATH`` as typed (quotes removed): a picture to start from, read by the console."""


class BadOption(ValueError):
    """A flag with a value it can't take; the message says what it accepts."""


def parse_image_prompt(text: str) -> ImagePrompt:
    """Read ``--ar 16:9`` (or ``--aspect``), ``--seed 42`` and ``--ref PATH`` anywhere in
    ``text``; raise ``BadOption`` with a message for the person on a bad value or a flag given
    twice."""
    aspect: str | None = None
    seed: int | None = None
    reference: str | None = None
    seen: set[str] = set()
    for match in _FLAG.finditer(text):
        word = match.group(1).lower()
        name = "ar" if word == "aspect" else word
        value = match.group(2)
        if name in seen:
            raise BadOption(f"`--{name}` was given twice. Nothing was charged.")
        seen.add(name)
        if name == "ar":
            if value not in ASPECTS:
                raise BadOption(
                    f"`--ar {value}` isn't an aspect I can draw: use one of {', '.join(ASPECTS)}. "
                    "Nothing was charged."
                )
            aspect = value
        elif name == "ref":
            reference = value.strip('"')
            if not reference:
                raise BadOption("`--ref` needs the path of a picture. Nothing was charged.")
        else:
            if not value.isdigit() or int(value) > MAX_SEED:
                raise BadOption(
                    f"`--seed {value}` isn't a seed: use a whole number from 0 to {MAX_SEED}. "
                    "Nothing was charged."
                )
            seed = int(value)
    prompt = " ".join(_FLAG.sub(" ", text).split())
    return ImagePrompt(prompt, aspect, seed, reference)


def without_reference(text: str) -> tuple[str, str | None]:
    """``text`` without its ``--ref PATH`` flag, and that path (``None`` when there is none);
    the other flags stay for the dispatcher. Raises ``BadOption`` like ``parse_image_prompt``."""
    reference = parse_image_prompt(text).reference
    kept = [match for match in _FLAG.finditer(text) if match.group(1).lower() == "ref"]
    for match in reversed(kept):
        text = text[: match.start()] + " " + text[match.end() :]
    return " ".join(text.split()), reference


def typed_options(text: str, prompt: str) -> tuple[str, StudioWork]:
    """The flags typed in a mention routed to an image ("@bot draw a lighthouse --ar 16:9 --seed
    7"): ``prompt`` (the routed subject) without them, and the options they ask for. The flags are
    read from ``text``, the words as typed, in case routing rephrased the subject. Raises
    ``BadOption`` like ``/imagine``, and for ``--ref`` (a file only the console can read)."""
    typed = parse_image_prompt(text)
    if typed.reference is not None:
        raise BadOption(REFERENCE_ELSEWHERE)
    return parse_image_prompt(prompt).prompt, StudioWork(aspect=typed.aspect, seed=typed.seed)


def with_attached_source(request: Request) -> Request:
    """An image request with a picture attached works on that picture: an edit whose instruction
    is the prompt ("make this a watercolour", or ``/imagine`` with a reference image)."""
    work = request.studio or StudioWork()
    if work.source is not None:
        return request
    picture = next((item for item in request.attachments if isinstance(item, ImageAttachment)), None)
    if picture is None:
        return request
    edit = replace(work, operation=Operation.EDIT, source=picture.data, source_mime=picture.mime_type)
    return replace(request, studio=edit)


def new_seed() -> int:
    """A fresh seed for a generator that was given none."""
    return secrets.randbelow(MAX_SEED)


def aspect_size(aspect: str | None, width: int, height: int) -> tuple[int, int]:
    """The canvas for ``aspect`` with about the area of ``width`` × ``height``, in multiples of
    32 (what image APIs accept); the operator's size when no aspect was asked for."""
    if aspect is None:
        return width, height
    across, down = (int(side) for side in aspect.split(":"))
    area = width * height
    scale = (area / (across * down)) ** 0.5
    return max(256, round(across * scale / 32) * 32), max(256, round(down * scale / 32) * 32)


# --- prices -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class OperationPrices:
    """Micro-dollars reserved for each image operation (IMAGE_*_PRICE_USD); a reroll costs what
    a new image does."""

    vary: int = 0
    upscale: int = 0
    edit: int = 0

    def of(self, operation: Operation, base: int) -> int:
        return {Operation.VARY: self.vary, Operation.UPSCALE: self.upscale, Operation.EDIT: self.edit}.get(
            operation, base
        )


class PricedByOperation:
    """Base of the image generators: what they reserve depends on the operation (an upscale costs
    its own setting). Satisfies ``core.generator.RequestAware``."""

    _cost: int
    _prices: OperationPrices

    def estimate(self, prompt: str) -> int:
        return self._cost

    def estimate_for(self, prompt: str, request: Request) -> int:
        work = request.studio
        return self._cost if work is None else self._prices.of(work.operation, self._cost)

    def refusal(self, request: Request) -> str | None:
        return None


# --- the record of delivered media --------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """One delivered image or song, as a later button needs it."""

    job: str
    created_at: datetime
    scope: Scope
    user: str
    conversation: str | None
    intent: Intent
    prompt: str
    aspect: str | None
    seed: int | None
    provider: str
    mime_type: str
    data: bytes | None
    """The bot's own copy of the image; ``None`` for songs, and once expired or deleted."""
    deleted: bool = False


class StudioStore:
    """Delivered media in the bot's database, kept for ``keep_days`` (IMAGE_KEEP_DAYS)."""

    def __init__(self, database: Database, *, keep_days: int = DEFAULT_KEEP_DAYS) -> None:
        self._database = database
        self.keep = timedelta(days=keep_days)

    def now(self) -> datetime:
        return self._database.clock.utc()

    async def record(self, request: Request, media: Image | Audio, *, provider: str) -> None:
        """Remember ``media`` as delivered for ``request`` (its id is the job id)."""
        work = request.studio or StudioWork()
        image = isinstance(media, Image)
        await self._database.write(
            'INSERT INTO studio_media (job, created_at, scope, "user", conversation, intent, prompt, '
            "aspect, seed, provider, mime_type, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                request.id,
                self.now().isoformat(),
                str(request.scope),
                request.user,
                request.conversation,
                (Intent.IMAGE if image else Intent.SONG).value,
                media.prompt or request.text,
                work.aspect if image else None,
                media.seed if isinstance(media, Image) else None,
                provider,
                media.mime_type,
                media.data if image else None,
            ),
        )

    async def get(self, job: str) -> Delivery | None:
        row = await self._database.fetchone(f"SELECT {_COLUMNS} FROM studio_media WHERE job = ?", (job,))
        return _delivery(row) if row else None

    async def latest(self, conversation: str, intent: Intent) -> Delivery | None:
        """The newest undeleted ``intent`` media delivered in ``conversation``."""
        row = await self._database.fetchone(
            f"SELECT {_COLUMNS} FROM studio_media WHERE conversation = ? AND intent = ? AND deleted = 0 "
            "ORDER BY created_at DESC, job DESC LIMIT 1",
            (conversation, intent.value),
        )
        return _delivery(row) if row else None

    async def delete(self, job: str) -> None:
        """Forget the copy of a deleted image; the row stays so later presses are explained."""
        await self._database.write("UPDATE studio_media SET deleted = 1, data = NULL WHERE job = ?", (job,))

    async def purge(self, older_than: timedelta) -> int:
        """Drop the image copies older than the keep period, and whole records (with their
        prompts) older than ``older_than`` (HISTORY_DAYS); returns how many records went."""
        now = self.now()
        await self._database.write(
            "UPDATE studio_media SET data = NULL WHERE created_at < ? AND data IS NOT NULL",
            ((now - self.keep).isoformat(),),
        )
        written = await self._database.write(
            "DELETE FROM studio_media WHERE created_at < ?", ((now - older_than).isoformat(),)
        )
        return written.rowcount

    def expired(self, delivery: Delivery) -> bool:
        return delivery.data is None or self.now() - delivery.created_at > self.keep


_COLUMNS = (
    'job, created_at, scope, "user", conversation, intent, prompt, aspect, seed, provider, mime_type, '
    "data, deleted"
)


def _delivery(row: Row) -> Delivery:
    data = row[11]
    return Delivery(
        job=str(row[0]),
        created_at=datetime.fromisoformat(str(row[1])),
        scope=Scope.parse(str(row[2])),
        user=str(row[3]),
        conversation=None if row[4] is None else str(row[4]),
        intent=Intent(str(row[5])),
        prompt=str(row[6]),
        aspect=None if row[7] is None else str(row[7]),
        seed=None if row[8] is None else int(str(row[8])),
        provider=str(row[9]),
        mime_type=str(row[10]),
        data=None if data is None else bytes(data),
        deleted=bool(row[12]),
    )


def offered(media: Image | Audio, job: str) -> tuple[str, ...]:
    """The action ids a surface shows under ``media`` delivered by ``job``."""
    actions = IMAGE_ACTIONS if isinstance(media, Image) else SONG_ACTIONS
    return tuple(action_id(action, job) for action in actions)


def delivered(media: Image | Audio, job: str) -> Image | Audio:
    """``media`` labelled with its job, its actions and (for images) the seed in its title."""
    labelled = replace(media, job=job, actions=offered(media, job))
    if isinstance(labelled, Image) and labelled.seed is not None:
        title = f"{labelled.title or labelled.prompt} · seed {labelled.seed}"
        labelled = replace(labelled, title=title[:256])
    return labelled


# --- presses --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Removal:
    """A permitted delete: the adapter removes the message the media is in; the bot's copy is gone."""

    job: str
    text: str = "Deleted."


@dataclass(frozen=True, slots=True)
class Expired:
    """A press that can't go ahead for anyone: the bot's copy of the image has expired, or the
    media was deleted. The presser is told ``text`` privately (nothing charged), and the surface
    updates the message for everyone: the buttons in ``expired_actions`` stop working (Discord
    disables them, Slack drops them) and ``reason`` is shown beside them. ``actions`` is every
    button the message carries, in order."""

    job: str
    text: str
    actions: tuple[str, ...]
    expired_actions: tuple[str, ...]
    reason: str

    @property
    def usable(self) -> tuple[str, ...]:
        """The buttons that still work (e.g. Reroll and Delete once the copy has expired)."""
        return tuple(action for action in self.actions if action not in self.expired_actions)


NAMES = {
    Action.REROLL: "Reroll",
    Action.VARY: "Vary",
    Action.UPSCALE: "Upscale",
    Action.EDIT: "Edit",
    Action.ANOTHER: "Another take",
    Action.DELETE: "Delete",
}
"""How a reason shown to everyone names the buttons it is about."""


def _listed(actions: tuple[Action, ...]) -> str:
    names = [NAMES[action] for action in actions]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _expired(source: Delivery, ended: tuple[Action, ...], *, text: str, reason: str) -> Expired:
    offered_actions = IMAGE_ACTIONS if source.intent is Intent.IMAGE else SONG_ACTIONS
    return Expired(
        job=source.job,
        text=text,
        actions=tuple(action_id(action, source.job) for action in offered_actions),
        expired_actions=tuple(action_id(action, source.job) for action in offered_actions if action in ended),
        reason=reason,
    )


UNKNOWN = "That button isn't one I know any more. Nothing was charged."
GONE = "I don't have that image or song any more, so I can't work on it. Nothing was charged."
DELETED = "That {what} was deleted, so I can't work on it. Nothing was charged."
ELSEWHERE = "That button belongs to another server or workspace. Nothing was charged."
ONLY_REQUESTER = "Only the person who asked for it, or an admin, can delete it."
NO_INSTRUCTION = "Tell me what to change, e.g. “make it night”. Nothing was charged."


async def press(
    store: StudioStore,
    action_id_text: str,
    *,
    scope: Scope,
    user: str,
    access: Access,
    destination: Destination | None = None,
    conversation: str | None = None,
    instruction: str = "",
    strength: Strength = "subtle",
) -> Request | Reply | Expired | Removal:
    """Turn a press of ``action_id_text`` by ``user`` into the request to run (charged to the
    presser through ``Engine.handle``), a private ``Reply`` refusing it (nothing charged), an
    ``Expired`` when the media's source is gone for everyone (nothing charged), or a ``Removal``
    for a delete by the requester or an admin.

    A refusal that depends on the presser (someone else's Delete; their cap, the channel or a role,
    decided later by ``Engine.handle``) is never an ``Expired``: a surface shows one set of buttons
    to everyone, so only what is true for everyone changes them."""
    parsed = parse_action_id(action_id_text)
    if parsed is None:
        return Reply(UNKNOWN)
    action, job = parsed
    source = await store.get(job)
    if source is None:
        return Reply(GONE)
    if source.scope != scope:
        return Reply(ELSEWHERE)
    if action is Action.DELETE:
        if user != source.user and not access.admin:
            return Reply(ONLY_REQUESTER)
        await store.delete(job)
        return Removal(job)
    if (action is Action.ANOTHER) != (source.intent is Intent.SONG):
        return Reply(UNKNOWN)
    if source.deleted:
        what = "image" if source.intent is Intent.IMAGE else "song"
        ended: tuple[Action, ...] = tuple(item for item in Action if item is not Action.DELETE)
        return _expired(source, ended, text=DELETED.format(what=what), reason=f"This {what} was deleted")
    if action in NEEDS_SOURCE and store.expired(source):
        days = store.keep.days
        plural = "s" if days != 1 else ""
        ended = tuple(item for item in IMAGE_ACTIONS if item in NEEDS_SOURCE)  # in button order
        return _expired(
            source,
            ended,
            text=(
                f"I only keep images for {days} day{plural}, and this one has expired, "
                "so I can't work on it. Try `/imagine` again. Nothing was charged."
            ),
            reason=f"{_listed(ended)} expired after {days} day{plural}",
        )
    instruction = " ".join(instruction.split())
    if action is Action.EDIT and not instruction:
        return Reply(NO_INSTRUCTION)
    operation = Operation(action.value)
    work = StudioWork(
        operation=operation,
        aspect=source.aspect,
        seed=source.seed if action is Action.UPSCALE else None,
        strength=strength,
        source=source.data if action in NEEDS_SOURCE else None,
        source_mime=source.mime_type,
        source_job=source.job,
        source_prompt=source.prompt,
    )
    return Request(
        scope=scope,
        user=user,
        text=instruction if action is Action.EDIT else source.prompt,
        intent=source.intent,
        destination=destination,
        conversation=conversation,
        access=access,
        studio=work,
    )
