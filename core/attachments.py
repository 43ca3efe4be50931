"""Files attached to a mention: fetched only from the platform's own file hosts, size capped, and
checked by what they are (magic bytes, UTF-8) before a model sees them.

An attachment URL arrives in a platform event, so it is trusted no further than its host: only the
hosts the platform serves files from (Discord's CDN, Slack's ``files.slack.com``) are fetched, every
redirect hop is checked again, and credentials (Slack's bot token) go to those hosts only. A refusal
is a ``Failure`` for the person who asked, before any money is reserved.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

import httpx

from core.errors import GenerationError
from core.outcomes import failure
from core.parts import Attachment, Failure, ImageAttachment, Request, TextAttachment
from core.providers.fetch import MIB, RefusedUrl, TooLarge, fetch, sniff

log = logging.getLogger(__name__)

DEFAULT_MAX_TEXT_KB = 256
"""``MAX_ATTACHMENT_KB``'s default: a long document or a few thousand lines of code."""
MAX_IMAGE_BYTES = 20 * MIB
"""OpenAI's limit for one image in a chat request."""
MAX_FILES = 4
"""Attachments read from one message; more are refused rather than silently dropped."""
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp"})
TEXT_SUFFIXES = frozenset(
    {
        ".txt", ".md", ".markdown", ".rst", ".csv", ".tsv", ".log", ".json", ".yaml", ".yml", ".toml",
        ".ini", ".cfg", ".xml", ".html", ".css", ".sql", ".py", ".js", ".ts", ".tsx", ".jsx", ".java",
        ".kt", ".go", ".rs", ".c", ".h", ".cc", ".cpp", ".hpp", ".cs", ".rb", ".php", ".swift", ".sh",
        ".bash", ".ps1", ".lua", ".r", ".scala", ".hs", ".ex", ".exs", ".erl", ".clj", ".dart", ".vue",
    }
)  # fmt: skip
NOTHING_CHARGED = "Nothing was charged."


@dataclass(frozen=True, slots=True, kw_only=True)
class AttachmentRef:
    """An attachment as the platform announces it, before anything is downloaded."""

    url: str
    name: str
    size: int | None = None
    """The size the platform declares, checked before fetching (the download is capped anyway)."""
    content_type: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class PlatformHosts:
    """A fetch guard that allows the platform's own file hosts and nothing else."""

    hosts: frozenset[str]
    service: str
    """How people are told about it, e.g. "Discord"."""

    def allows(self, url: httpx.URL) -> bool:
        return url.scheme in ("https", "http") and url.host.lower() in self.hosts

    async def check(self, url: httpx.URL) -> None:
        if not self.allows(url):
            raise RefusedUrl(
                f"I only read attachments stored on {self.service} itself, and this one points elsewhere.",
                detail=f"attachment on host {url.host!r} refused",
            )

    def credentials(self, url: httpx.URL, headers: Mapping[str, str] | None) -> Mapping[str, str] | None:
        return headers if self.allows(url) else None


class AttachmentRefused(Exception):
    """An attachment that won't be read; ``str()`` is the message for the person who attached it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AttachmentReader:
    """Reads a message's attachments from one platform's file hosts."""

    http: httpx.AsyncClient
    guard: PlatformHosts
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    """Sent to the platform's hosts only (Slack: ``Authorization: Bearer`` with the bot token)."""
    max_text_bytes: int = DEFAULT_MAX_TEXT_KB * 1024
    max_image_bytes: int = MAX_IMAGE_BYTES

    @classmethod
    def of(
        cls,
        http: httpx.AsyncClient,
        *,
        hosts: Iterable[str],
        service: str,
        headers: Mapping[str, str] | None = None,
        max_text_kb: int = DEFAULT_MAX_TEXT_KB,
        max_image_bytes: int = MAX_IMAGE_BYTES,
    ) -> AttachmentReader:
        allowed = frozenset(host.strip().lower() for host in hosts if host.strip())
        return cls(
            http=http,
            guard=PlatformHosts(hosts=allowed, service=service),
            headers=dict(headers or {}),
            max_text_bytes=max_text_kb * 1024,
            max_image_bytes=max_image_bytes,
        )

    async def read_all(self, refs: Sequence[AttachmentRef]) -> tuple[Attachment, ...]:
        """Every attachment, or ``AttachmentRefused`` for the first that can't be read."""
        if len(refs) > MAX_FILES:
            raise AttachmentRefused(
                f"I read at most {MAX_FILES} attachments per message; this one has {len(refs)}."
            )
        return tuple([await self.read(ref) for ref in refs])

    async def read(self, ref: AttachmentRef) -> Attachment:
        kind = kind_of(ref)
        if kind is None:
            raise AttachmentRefused(
                f"I can read images (PNG, JPEG, WebP) and text files (.txt, .md, code), and "
                f"`{ref.name}` is neither."
            )
        cap = self.max_image_bytes if kind == "image" else self.max_text_bytes
        if ref.size is not None and ref.size > cap:
            raise AttachmentRefused(_too_large(ref.name, cap))
        try:
            response = await fetch(
                self.http, ref.url, guard=self.guard, max_bytes=cap, what="attachment", headers=self.headers
            )
        except TooLarge:
            raise AttachmentRefused(_too_large(ref.name, cap)) from None
        except GenerationError as error:
            raise AttachmentRefused(error.user_message) from None
        except httpx.HTTPError as error:
            log.warning("attachment download failed: %s", type(error).__name__)
            raise AttachmentRefused(f"I couldn't download `{ref.name}` ({type(error).__name__}).") from None
        if response.status_code != 200:
            raise AttachmentRefused(f"I couldn't download `{ref.name}` (HTTP {response.status_code}).")
        served = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if served == "text/html" and not ref.content_type.lower().startswith("text/html"):
            # What Slack serves instead of a private file when the token may not read it.
            raise AttachmentRefused(f"I wasn't allowed to download `{ref.name}`.")
        data = response.content
        if kind == "image":
            mime_type = sniff(data, "image")
            if mime_type is None:
                raise AttachmentRefused(f"`{ref.name}` isn't a PNG, JPEG or WebP image.")
            return ImageAttachment(data=data, mime_type=mime_type, name=ref.name)
        return TextAttachment(name=ref.name, text=_decoded(ref.name, data))


def kind_of(ref: AttachmentRef) -> str | None:
    """``"image"``, ``"text"``, or ``None`` for a file this bot doesn't read; by name and declared type
    (what it really is is checked once downloaded)."""
    suffix = PurePosixPath(ref.name.lower()).suffix
    declared = ref.content_type.split(";")[0].strip().lower()
    if suffix in IMAGE_SUFFIXES or declared in ("image/png", "image/jpeg", "image/webp"):
        return "image"
    if suffix in TEXT_SUFFIXES or declared.startswith("text/"):
        return "text"
    return None


async def attach(
    reader: AttachmentReader | None, request: Request, refs: Sequence[AttachmentRef]
) -> Request | Failure:
    """``request`` with its attachments read, or the ``Failure`` saying why they can't be (no
    money is reserved yet, so nothing is charged)."""
    if not refs:
        return request
    if reader is None:
        return failure(
            request.intent,
            "invalid",
            "Reading attachments is switched off on this bot, so I can't see the attached file. "
            + NOTHING_CHARGED,
        )
    try:
        attachments = await reader.read_all(refs)
    except AttachmentRefused as refused:
        return failure(request.intent, "invalid", f"{refused} {NOTHING_CHARGED}")
    return replace(request, attachments=attachments)


NOT_A_PICTURE = "the reference must be a PNG, JPEG or WebP image"


async def attach_reference(
    reader: AttachmentReader | None, request: Request, ref: AttachmentRef
) -> Request | Failure:
    """``request`` (an image request) starting from the picture ``ref`` points to, or the
    ``Failure`` saying why it can't (nothing is reserved yet, so nothing is charged)."""
    if reader is None:
        return failure(
            request.intent,
            "invalid",
            "Reading attachments is switched off on this bot, so I can't use the reference picture. "
            + NOTHING_CHARGED,
        )
    if kind_of(ref) != "image":
        refusal = f"`{ref.name}` isn't a picture: {NOT_A_PICTURE}. {NOTHING_CHARGED}"
        return failure(request.intent, "invalid", refusal)
    try:
        picture = await reader.read(ref)
    except AttachmentRefused as refused:
        return failure(request.intent, "invalid", f"{refused} {NOTHING_CHARGED}")
    return replace(request, attachments=(picture,))


def read_local_picture(typed: str, *, max_bytes: int = MAX_IMAGE_BYTES) -> ImageAttachment:
    """A picture from this machine's disk (the console's ``/imagine --ref PATH``): size capped
    before reading, and checked by its magic bytes. Blocking. Raises ``AttachmentRefused``."""
    path = Path(typed).expanduser()
    try:
        size = path.stat().st_size
    except OSError:
        raise AttachmentRefused(f"I can't find the file `{path}`.") from None
    if not path.is_file():
        raise AttachmentRefused(f"`{path}` isn't a file.")
    if size > max_bytes:
        raise AttachmentRefused(_too_large(path.name, max_bytes))
    try:
        with path.open("rb") as file:
            data = file.read(max_bytes + 1)
    except OSError as error:
        raise AttachmentRefused(f"I couldn't read `{path}` ({type(error).__name__}).") from None
    if len(data) > max_bytes:  # it grew since it was measured
        raise AttachmentRefused(_too_large(path.name, max_bytes))
    mime_type = sniff(data, "image")
    if mime_type is None:
        raise AttachmentRefused(f"`{path.name}` isn't a picture: {NOT_A_PICTURE}.")
    return ImageAttachment(data=data, mime_type=mime_type, name=path.name)


def described(attachments: Sequence[Attachment]) -> str:
    """How a turn's attachments are remembered in its conversation: a text file's name and
    contents, an image's name only (its bytes are never stored)."""
    pieces = []
    for attachment in attachments:
        if isinstance(attachment, TextAttachment):
            pieces.append(file_block(attachment))
        else:
            pieces.append(f"[attached image: {attachment.name}]")
    return "\n\n".join(pieces)


def file_block(attachment: TextAttachment) -> str:
    """A text file as the model reads it: its name, then its contents fenced."""
    fence = "````" if "```" in attachment.text else "```"
    return f"Attached file `{attachment.name}`:\n{fence}\n{attachment.text}\n{fence}"


def _decoded(name: str, data: bytes) -> str:
    if b"\x00" in data or sniff(data, "image") or sniff(data, "audio"):
        raise AttachmentRefused(f"`{name}` isn't a text file.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise AttachmentRefused(f"`{name}` isn't UTF-8 text, so I can't read it.") from None


def _too_large(name: str, cap: int) -> str:
    return f"`{name}` is larger than the {_size(cap)} I read for this kind of file."


def _size(size: int) -> str:
    if size >= MIB:
        return f"{size / MIB:g} MB"
    return f"{size / 1024:g} KB" if size >= 1024 else f"{size} bytes"
