"""Files attached to a Discord mention, read by the real discord.py client from the fake's CDN and
sent to a chat model behind a fake OpenAI server."""

from __future__ import annotations

import base64

import httpx
import openai
import pytest

from core.attachments import AttachmentReader
from core.demo import DemoImageGenerator
from core.engine import Engine
from core.ledger import Ledger
from core.parts import Intent, Scope
from core.providers import TextModel, chat_generator
from core.providers.openai_text import VisionSetting
from core.providers.pricing import TokenPrice
from tests.conftest import IMAGE_COST
from tests.discord.conftest import StartBot, settled_report
from tests.fakes.fake_discord import FakeDiscord, FakeMessage
from tests.fakes.fake_openai import FakeOpenAI, Stream

GREEN, RED = 0x1F8B4C, 0xE74C3C
PRICE = TokenPrice(input=150_000, output=600_000)
PNG = b"\x89PNG\r\n\x1a\n" + b"a lighthouse, drawn small" * 10
NOTES = "Lighthouse log\n\nThe lamp was lit at 18:40 and the fog horn sounded twice.\n"


def engine(ledger: Ledger, fake_openai: FakeOpenAI, http: httpx.AsyncClient, vision: VisionSetting) -> Engine:
    client = openai.AsyncOpenAI(
        api_key="sk-test", base_url=fake_openai.base_url, http_client=http, max_retries=0
    )
    model = TextModel(name="gpt-4o-mini", price=PRICE, allowance=10_000, max_output_tokens=1000)
    return Engine(
        ledger=ledger,
        generators={
            Intent.CHAT: chat_generator(client, model, vision=vision),
            Intent.IMAGE: DemoImageGenerator(cost=IMAGE_COST),
        },
    )


def reader(http: httpx.AsyncClient, **limits: int) -> AttachmentReader:
    """Discord's CDN is the fake here: its host is the only one allowed."""
    return AttachmentReader.of(http, hosts=["127.0.0.1"], service="Discord", **limits)


async def answered(fake: FakeDiscord) -> FakeMessage:
    def done() -> bool:
        return any(m.current.colour in (GREEN, RED) for m in fake.channel_messages(fake.channel_id))

    await fake.wait_until(done)
    [reply] = fake.channel_messages(fake.channel_id)
    return reply


async def test_an_attached_image_reaches_the_vision_model_as_an_image_url_part(
    fake: FakeDiscord, start_bot: StartBot, ledger: Ledger, fake_openai: FakeOpenAI, http: httpx.AsyncClient
) -> None:
    fake_openai.chat.append(Stream("A small drawing of a lighthouse.", usage=(900, 12)))
    await start_bot(engine(ledger, fake_openai, http, "auto"), attachments=reader(http))
    picture = fake.attachment("lighthouse.png", PNG, content_type="image/png")

    await fake.mention("what is in this picture?", author=fake.user("111", "alice"), attachments=[picture])

    reply = await answered(fake)
    assert reply.current.description == "A small drawing of a lighthouse."
    (body,) = fake_openai.bodies()
    assert body["messages"][-1] == {
        "role": "user",
        "content": [
            {"type": "text", "text": "what is in this picture?"},
            {
                "type": "image_url",
                "image_url": {"url": "data:image/png;base64," + base64.b64encode(PNG).decode()},
            },
        ],
    }
    report = await settled_report(ledger, Scope("discord", fake.guild_id))
    assert [(row.service, row.charged) for row in report.recent] == [("chat", PRICE.cost(900, 12))]


async def test_an_attached_text_file_is_read_into_the_prompt(
    fake: FakeDiscord, start_bot: StartBot, ledger: Ledger, fake_openai: FakeOpenAI, http: httpx.AsyncClient
) -> None:
    fake_openai.chat.append(Stream("The horn sounded twice.", usage=(120, 6)))
    await start_bot(engine(ledger, fake_openai, http, "auto"), attachments=reader(http))
    log = fake.attachment("log.txt", NOTES.encode(), content_type="text/plain; charset=utf-8")

    await fake.mention("how often did the horn sound?", author=fake.user("111", "alice"), attachments=[log])

    assert (await answered(fake)).current.description == "The horn sounded twice."
    (body,) = fake_openai.bodies()
    question = body["messages"][-1]["content"]
    assert question.startswith("how often did the horn sound?\n\nAttached file `log.txt`:")
    assert NOTES in question


@pytest.mark.parametrize("problem", ["foreign host", "over the cap"])
async def test_an_attachment_from_a_foreign_host_or_over_the_cap_is_refused_without_charge(
    problem: str,
    fake: FakeDiscord,
    start_bot: StartBot,
    ledger: Ledger,
    fake_openai: FakeOpenAI,
    http: httpx.AsyncClient,
) -> None:
    await start_bot(engine(ledger, fake_openai, http, "auto"), attachments=reader(http, max_image_bytes=100))
    if problem == "foreign host":
        picture = fake.attachment(
            "cat.png", PNG[:50], content_type="image/png", url=f"http://localhost:{fake.port}/cdn/cat.png"
        )
        says = "I only read attachments stored on Discord itself"
    else:
        picture = fake.attachment("cat.png", PNG, content_type="image/png")
        says = "`cat.png` is larger than the 100 bytes"

    await fake.mention("what is in this picture?", author=fake.user("111", "alice"), attachments=[picture])

    reply = await answered(fake)
    assert reply.current.colour == RED
    assert says in reply.current.description and "Nothing was charged." in reply.current.description
    assert fake.cdn_requests == [] and fake_openai.bodies() == []
    assert (await ledger.report(Scope("discord", fake.guild_id))).recent == []


async def test_with_chat_vision_off_an_image_is_refused_clearly_and_not_charged(
    fake: FakeDiscord, start_bot: StartBot, ledger: Ledger, fake_openai: FakeOpenAI, http: httpx.AsyncClient
) -> None:
    await start_bot(engine(ledger, fake_openai, http, "off"), attachments=reader(http))
    picture = fake.attachment("cat.png", PNG, content_type="image/png")

    await fake.mention("what is in this picture?", author=fake.user("111", "alice"), attachments=[picture])

    reply = await answered(fake)
    assert "can't look at the attached image" in reply.current.description
    assert (
        "CHAT_VISION=off" in reply.current.description and "Nothing was charged." in reply.current.description
    )
    assert fake_openai.bodies() == []
    assert (await ledger.report(Scope("discord", fake.guild_id))).recent == []


async def test_an_image_with_an_instruction_is_routed_to_the_image_service_with_the_picture(
    fake: FakeDiscord, start_bot: StartBot, ledger: Ledger, fake_openai: FakeOpenAI, http: httpx.AsyncClient
) -> None:
    await start_bot(engine(ledger, fake_openai, http, "auto"), attachments=reader(http))
    picture = fake.attachment("cat.png", PNG, content_type="image/png")

    await fake.mention("make this a watercolour", author=fake.user("111", "alice"), attachments=[picture])

    await answered(fake)
    report = await settled_report(ledger, Scope("discord", fake.guild_id))
    assert [(row.service, row.prompt) for row in report.recent] == [("image", "make this a watercolour")]
    assert fake_openai.bodies() == []
