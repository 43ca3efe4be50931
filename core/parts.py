"""The values that cross the core boundary: who asks, what they ask, and what comes back."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal


class Intent(enum.StrEnum):
    """What a request is for; each intent has one generator and one ledger service name."""

    IMAGE = "image"
    SONG = "song"
    RESEARCH = "research"
    CHAT = "chat"
    SUMMARY = "summary"
    """A summary of the request's conversation (``/summary``); never picked by the classifier."""


@dataclass(frozen=True, slots=True)
class Scope:
    """Who pays: a Discord guild, a Slack team, a DM user, or the local console."""

    platform: str
    id: str

    def __str__(self) -> str:
        return f"{self.platform}:{self.id}"

    @classmethod
    def parse(cls, text: str) -> Scope:
        """Parse ``platform:id`` as printed by ``str(scope)``."""
        platform, sep, ident = text.partition(":")
        if not sep or not platform or not ident:
            raise ValueError(f"scope must look like 'platform:id', got {text!r}")
        return cls(platform, ident)


def new_request_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass(frozen=True, slots=True, kw_only=True)
class Destination:
    """Where a request's answer goes, in the platform's own ids, so a restarted bot can still
    deliver a long job (e.g. a song) to the right channel and thread."""

    platform: str
    channel: str
    thread: str | None = None
    message: str | None = None
    """The message being answered (a mention, or a slash command's anchor)."""
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Delivered:
    """Media the bot delivered in a conversation: what kind, and the prompt it was made from."""

    intent: Intent
    prompt: str

    def __str__(self) -> str:
        """How models read it: ``image: a red fox``, ``song: a sea shanty``."""
        return f"{self.intent.value}: {' '.join(self.prompt.split())}"


@dataclass(frozen=True, slots=True)
class Turn:
    """One earlier turn of a conversation, as the models see it.

    ``author`` is the platform user id for user turns and ``"bot"`` for the bot's own; ``media``
    is what generated media the turn delivered. ``intent`` is the command a user turn was asked
    with (``/song``), if any; ``text`` is then the prompt alone.
    """

    role: Literal["user", "assistant"]
    author: str
    text: str
    media: tuple[Delivered, ...] = ()
    intent: Intent | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Access:
    """What the surface knows about who asks, and where, for the scope's access policy: the
    channel (a thread's parent channel), the member's role ids, and whether they are an admin.
    Adapters compute these from platform data; the core decides what they allow."""

    channel: str | None = None
    roles: frozenset[str] = frozenset()
    admin: bool = False


class Operation(enum.StrEnum):
    """What a studio request does: draw anew, or work on media the bot delivered earlier."""

    IMAGINE = "imagine"
    REROLL = "reroll"
    """Same prompt and options, a new seed."""
    VARY = "vary"
    """An image close to the source (``strength`` subtle or strong)."""
    UPSCALE = "upscale"
    EDIT = "edit"
    """The source changed by an instruction (the request's text)."""
    ANOTHER = "another"
    """Another take of a song: same prompt, a new generation."""


ASPECTS = ("1:1", "4:3", "3:4", "16:9", "9:16", "21:9")
Strength = Literal["subtle", "strong"]


@dataclass(frozen=True, slots=True, kw_only=True)
class StudioWork:
    """How to make an image (or song) beyond its prompt: the options and, for work on delivered
    media, the operation and the bot's own copy of the source image."""

    operation: Operation = Operation.IMAGINE
    aspect: str | None = None
    """One of ``ASPECTS``; ``None``: the operator's IMAGE_WIDTH × IMAGE_HEIGHT."""
    seed: int | None = None
    """``None``: the generator draws one (and reports it on the ``Image``)."""
    strength: Strength = "subtle"
    source: bytes | None = None
    source_mime: str = ""
    source_job: str | None = None
    source_prompt: str = ""
    """The prompt the source was made from (an edit's request text is its instruction)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageAttachment:
    """An image attached to a message: its bytes, the type its magic bytes show, and its file name."""

    data: bytes = field(repr=False)
    mime_type: str
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TextAttachment:
    """A text file attached to a message (notes, Markdown, code), decoded."""

    name: str
    text: str = field(repr=False)


Attachment = ImageAttachment | TextAttachment


@dataclass(frozen=True, slots=True, kw_only=True)
class AnswerOptions:
    """What the asker set on a text answer; ``None`` leaves the operator's defaults."""

    max_tokens: int | None = None
    """At most this many tokens of answer (never more than the allowance buys)."""
    temperature: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """One thing a user asked for. Slash commands set ``intent``; mentions leave it to the router."""

    scope: Scope
    user: str
    text: str
    intent: Intent | None = None
    id: str = field(default_factory=new_request_id)
    destination: Destination | None = None
    conversation: str | None = None
    """A stable id the adapter chooses for the thread or reply chain this request continues,
    e.g. ``discord:thread:123`` or ``slack:C42:1700000000.000100``; ``None`` for one-off requests."""
    history: tuple[Turn, ...] = ()
    """The conversation's earlier turns, oldest first. Filled by the engine from its store;
    adapters leave it empty and never re-read platform history."""
    access: Access | None = None
    """Where and with which rights a person asked, for the access policy; ``None`` for work the
    bot starts itself (a resumed job, an idle summary), which only the service switches apply to."""
    attachments: tuple[Attachment, ...] = ()
    """Files attached to this message, already fetched and checked by the adapter (see
    ``core.attachments``). They belong to this turn only: the conversation remembers a text file's
    contents and an image's name, never an image's bytes."""
    answer: AnswerOptions | None = None
    """Limits the asker set on a text answer (the web API's ``max_tokens``, ``temperature``)."""
    studio: StudioWork | None = None
    """Image options and operations on delivered media (``core.studio``); ``None``: a plain request."""


# --- parts a generator yields and an adapter renders -------------------------------------------


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of streamed text, appended to what came before."""

    text: str


@dataclass(frozen=True, slots=True)
class Status:
    """A transient progress line ("generating, 12 s"); replaced by the next one, gone at the end."""

    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Image:
    """A finished image, already downloaded."""

    data: bytes
    filename: str
    mime_type: str
    prompt: str
    title: str = ""
    seed: int | None = None
    """The seed it was drawn with, when the provider takes one: shown so it can be reproduced."""
    job: str | None = field(default=None, compare=False)
    """The job that made it (set by the engine once recorded): what action ids name."""
    actions: tuple[str, ...] = field(default=(), compare=False)
    """Action ids (``core.studio.action_id``) a surface offers as buttons under it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Audio:
    """A finished audio track, already downloaded, with optional lyrics and cover art."""

    data: bytes
    filename: str
    mime_type: str
    title: str
    prompt: str = ""
    lyrics: str = ""
    duration_s: float | None = None
    cover: Image | None = None
    job: str | None = field(default=None, compare=False)
    """The job that made it (set by the engine once recorded): what action ids name."""
    actions: tuple[str, ...] = field(default=(), compare=False)
    """Action ids (``core.studio.action_id``) a surface offers as buttons under it."""


@dataclass(frozen=True, slots=True)
class Failure:
    """The request ended without a result. ``message`` is written for the person who asked."""

    message: str
    reason: str = field(default="", compare=False)
    """Why, as one word a surface can map to its own codes (an HTTP status): ``invalid``,
    ``rate_limited``, ``refused`` (budget), ``busy``, ``paused``, ``unavailable``, ``failed``,
    ``moderated``, ``suspended``. Set by ``core.outcomes.failure``."""
    retry_after_s: float | None = field(default=None, compare=False)
    """For ``rate_limited``: seconds until the request would be accepted."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What a generator needs to pick up a paid job after a restart (the provider's task id or
    polling URL), yielded right after the job is submitted. Consumed by the core."""

    data: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Usage:
    """A generator's report of what the work actually cost, in micro-dollars. Consumed by the core."""

    cost: int


Media = Image | Audio
Part = TextDelta | Status | Image | Audio | Failure
"""What ``handle`` yields to adapters (``Usage`` and ``Checkpoint`` never leave the core)."""
GeneratorPart = TextDelta | Status | Image | Audio | Usage | Checkpoint
"""What generators yield; they report failure by raising ``GenerationError``."""
