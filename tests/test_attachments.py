"""Reading attached files: only from the platform's own hosts, size capped, checked by their bytes;
and where a message with attachments is routed."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from core.attachments import AttachmentReader, AttachmentRef, AttachmentRefused, attach, described, file_block
from core.engine import Engine
from core.parts import ImageAttachment, Intent, Request, Scope, TextAttachment
from core.providers.openai_text import sees_images
from core.router import ATTACHED_ALONE, Route, route_attached
from tests.fakes.fake_discord import FakeDiscord

PNG = b"\x89PNG\r\n\x1a\n" + b"pixels" * 20
JPEG = b"\xff\xd8\xff\xe0" + b"pixels" * 20
NOTES = "# Notes\n\nThe lighthouse was built in 1811.\n"
IMAGE = ImageAttachment(data=PNG, mime_type="image/png", name="cat.png")


@pytest.fixture
async def cdn() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(clock=time.monotonic) as server:
        yield server


def reader(http: httpx.AsyncClient, **limits: int) -> AttachmentReader:
    return AttachmentReader.of(http, hosts=["127.0.0.1"], service="Discord", **limits)


def ref(cdn: FakeDiscord, name: str, data: bytes, content_type: str, **fields: object) -> AttachmentRef:
    item = cdn.attachment(name, data, content_type=content_type)
    return AttachmentRef(
        url=str(fields.get("url", item["url"])),
        name=name,
        size=fields.get("size", item["size"]),  # type: ignore[arg-type]
        content_type=content_type,
    )


async def test_images_and_text_files_are_read_and_typed_by_their_bytes(
    cdn: FakeDiscord, http: httpx.AsyncClient
) -> None:
    refs = [
        ref(cdn, "cat.png", PNG, "image/png"),
        ref(cdn, "photo.jpeg", JPEG, "image/jpeg"),
        ref(cdn, "notes.md", NOTES.encode(), "text/markdown"),
    ]

    read = await reader(http).read_all(refs)

    assert read == (
        ImageAttachment(data=PNG, mime_type="image/png", name="cat.png"),
        ImageAttachment(data=JPEG, mime_type="image/jpeg", name="photo.jpeg"),
        TextAttachment(name="notes.md", text=NOTES),
    )
    assert cdn.cdn_requests == ["cat.png", "photo.jpeg", "notes.md"]


@pytest.mark.parametrize(
    ("name", "data", "content_type", "says"),
    [
        ("cat.png", b"<html>not a picture</html>", "image/png", "isn't a PNG, JPEG or WebP image"),
        ("notes.txt", PNG, "text/plain", "isn't a text file"),
        ("notes.txt", "café".encode("latin-1"), "text/plain", "isn't UTF-8 text"),
        ("movie.mp4", b"\x00\x00\x00\x18ftypmp42", "video/mp4", "is neither"),
    ],
)
async def test_a_file_that_isnt_what_it_claims_is_refused(
    cdn: FakeDiscord, http: httpx.AsyncClient, name: str, data: bytes, content_type: str, says: str
) -> None:
    with pytest.raises(AttachmentRefused, match=says):
        await reader(http).read(ref(cdn, name, data, content_type))


async def test_a_foreign_host_is_refused_without_fetching(cdn: FakeDiscord, http: httpx.AsyncClient) -> None:
    foreign = ref(cdn, "cat.png", PNG, "image/png", url=f"http://localhost:{cdn.port}/cdn/cat.png")

    with pytest.raises(AttachmentRefused, match="only read attachments stored on Discord"):
        await reader(http).read(foreign)
    assert cdn.cdn_requests == []


async def test_a_redirect_off_the_platforms_hosts_is_not_followed(
    cdn: FakeDiscord, http: httpx.AsyncClient
) -> None:
    moved = ref(cdn, "moved.png", PNG, "image/png")
    cdn.cdn_redirects["moved.png"] = f"http://localhost:{cdn.port}/cdn/cat.png"
    cdn.cdn["cat.png"] = (PNG, "image/png")

    with pytest.raises(AttachmentRefused, match="only read attachments stored on Discord"):
        await reader(http).read(moved)
    assert cdn.cdn_requests == ["moved.png"]


async def test_oversize_files_are_refused_by_declared_and_by_actual_size(
    cdn: FakeDiscord, http: httpx.AsyncClient
) -> None:
    big = "x" * 2048
    declared = ref(cdn, "big.txt", big.encode(), "text/plain")
    understated = ref(cdn, "sly.txt", big.encode(), "text/plain", size=10)

    with pytest.raises(AttachmentRefused, match="larger than the 1 KB"):
        await reader(http, max_text_kb=1).read(declared)
    assert cdn.cdn_requests == []  # refused from what Discord declared, before downloading
    with pytest.raises(AttachmentRefused, match="larger than the 1 KB"):
        await reader(http, max_text_kb=1).read(understated)
    with pytest.raises(AttachmentRefused, match="larger than the 100 KB"):
        await reader(http, max_image_bytes=100 * 1024).read(
            ref(cdn, "huge.png", PNG, "image/png", size=200_000)
        )


async def test_attach_turns_a_refusal_into_a_failure_that_charges_nothing(
    cdn: FakeDiscord, http: httpx.AsyncClient
) -> None:
    request = Request(scope=Scope("test", "g"), user="u", text="what is this?")
    foreign = AttachmentRef(url="https://evil.example/cat.png", name="cat.png", content_type="image/png")

    refused = await attach(reader(http), request, [foreign])
    switched_off = await attach(None, request, [foreign])
    read = await attach(reader(http), request, [ref(cdn, "cat.png", PNG, "image/png")])

    assert not isinstance(refused, Request) and refused.reason == "invalid"
    assert refused.message.endswith("Nothing was charged.")
    assert not isinstance(switched_off, Request) and "switched off" in switched_off.message
    assert isinstance(read, Request) and read.attachments == (IMAGE,)
    assert await attach(None, request, []) is request


def test_the_conversation_keeps_a_files_text_and_only_an_images_name() -> None:
    remembered = described([IMAGE, TextAttachment(name="notes.md", text=NOTES)])

    assert "[attached image: cat.png]" in remembered and "Attached file `notes.md`" in remembered
    assert NOTES in remembered and "PNG" not in remembered


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("what is in this picture?", Intent.CHAT),
        ("describe this", Intent.CHAT),
        ("who painted it?", Intent.CHAT),
        ("make this a watercolour", Intent.IMAGE),
        ("please turn it into pixel art", Intent.IMAGE),
        ("could you add a hat to the cat", Intent.IMAGE),
    ],
)
def test_an_attached_image_with_a_question_is_chat_and_with_an_instruction_an_edit(
    text: str, intent: Intent
) -> None:
    route = route_attached(text, [IMAGE])

    assert (route.intent, route.prompt, route.source) == (intent, text, "rule")


def test_an_image_alone_is_asked_about() -> None:
    assert route_attached("  ", [IMAGE]) == Route(Intent.CHAT, ATTACHED_ALONE, "rule")


def test_text_files_go_to_chat_unless_a_paper_is_asked_for() -> None:
    notes = [TextAttachment(name="notes.md", text=NOTES)]

    assert route_attached("make this shorter", notes).intent is Intent.CHAT
    assert route_attached("write a research paper on these notes", notes).intent is Intent.RESEARCH


async def test_a_conversation_remembers_a_files_text_and_an_images_name_but_never_its_bytes(
    engine: Engine,
) -> None:
    assert engine.conversations is not None
    notes = TextAttachment(name="notes.md", text=NOTES)
    request = Request(
        scope=Scope("test", "g"),
        user="u",
        text="what do these say?",
        conversation="test:thread:1",
        attachments=(IMAGE, notes),
    )

    _ = [part async for part in engine.handle(request)]

    (asked, *_answer) = await engine.conversations.events("test:thread:1")
    assert asked.text == f"what do these say?\n\n[attached image: cat.png]\n\n{file_block(notes)}"
    rows = await engine.ledger.database.fetchall("SELECT text FROM conversation_events")
    encoded = base64.b64encode(PNG).decode()
    assert rows and not any(encoded in str(row[0]) or "pixels" in str(row[0]) for row in rows)


@pytest.mark.parametrize(
    ("model", "setting", "sees"),
    [
        ("gpt-4o-mini", "auto", True),
        ("gpt-4.1", "auto", True),
        ("openai/gpt-5-mini", "auto", True),
        ("llama-3.2-11b-vision-instruct", "auto", True),
        ("qwen2.5-vl-7b", "auto", True),
        ("gpt-3.5-turbo", "auto", False),
        ("o1-mini", "auto", False),
        ("mistral-small", "auto", False),
        ("mistral-small", "on", True),
        ("gpt-4o", "off", False),
    ],
)
def test_chat_vision_decides_by_setting_then_by_model_name(model: str, setting: str, sees: bool) -> None:
    assert sees_images(model, setting) is sees  # type: ignore[arg-type]


async def test_the_settings_decide_whether_and_how_much_the_platforms_read(http: httpx.AsyncClient) -> None:
    from types import SimpleNamespace

    from bot.platforms import attachment_reader
    from bot.settings import Settings

    def app(**values: object) -> Any:
        return SimpleNamespace(settings=Settings(_env_file=None, **values), http=http)  # type: ignore[call-arg]

    slack = attachment_reader(
        app(max_attachment_kb=64, max_media_mb=5),
        hosts=["files.slack.com"],
        service="Slack",
        headers={"Authorization": "Bearer xoxb-1"},
    )
    discord = attachment_reader(
        app(), hosts=["cdn.discordapp.com", "media.discordapp.net"], service="Discord"
    )

    assert slack is not None and discord is not None
    assert (slack.max_text_bytes, slack.max_image_bytes) == (64 * 1024, 5 * 1024 * 1024)
    assert slack.guard.hosts == {"files.slack.com"} and slack.headers == {"Authorization": "Bearer xoxb-1"}
    assert "xoxb-1" not in repr(slack)
    assert (discord.max_text_bytes, discord.max_image_bytes) == (256 * 1024, 20 * 1024 * 1024)
    assert attachment_reader(app(attachments="off"), hosts=["files.slack.com"], service="Slack") is None
