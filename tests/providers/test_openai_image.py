"""OpenAI images through the real SDK against a fake ``/v1/images/generations``."""

from __future__ import annotations

import base64

import httpx
import openai
import pytest

from core.ledger import Ledger
from core.parts import Image, Intent
from core.providers import OpenAIImageGenerator
from core.providers.openai_image import image_size
from tests.fakes.fake_openai import FakeOpenAI, error
from tests.fakes.provider_server import Reply
from tests.providers.conftest import POLICY, InstantClock, ask, engine_with

PNG = b"\x89PNG\r\n\x1a\n" + b"fake png body" * 8
COST = 40_000


def generator(
    client: openai.AsyncOpenAI, http: httpx.AsyncClient, clock: InstantClock, *, model: str = "gpt-image-1"
) -> OpenAIImageGenerator:
    return OpenAIImageGenerator(
        client=client,
        http=http,
        clock=clock,
        model=model,
        quality="medium",
        width=1024,
        height=768,
        timeout_s=120,
        cost=COST,
        policy=POLICY,
    )


async def test_a_base64_image_is_decoded_and_charged(
    ledger: Ledger,
    fake_openai: FakeOpenAI,
    openai_client: openai.AsyncOpenAI,
    http: httpx.AsyncClient,
    clock: InstantClock,
) -> None:
    fake_openai.images.append(
        Reply(body={"created": 1, "data": [{"b64_json": base64.b64encode(PNG).decode()}]})
    )

    outcome = await ask(engine_with(ledger, generator(openai_client, http, clock)), "a red fox", Intent.IMAGE)

    (image,) = [part for part in outcome.parts if isinstance(part, Image)]
    assert (image.data, image.mime_type, image.filename) == (PNG, "image/png", "a-red-fox.png")
    (body,) = fake_openai.bodies("/v1/images/generations")
    assert body == {
        "model": "gpt-image-1",
        "prompt": "a red fox",
        "n": 1,
        "size": "1536x1024",
        "quality": "medium",
    }
    assert outcome.row("image").charged == COST


async def test_a_dall_e_url_answer_is_downloaded(
    ledger: Ledger,
    fake_openai: FakeOpenAI,
    openai_client: openai.AsyncOpenAI,
    http: httpx.AsyncClient,
    clock: InstantClock,
) -> None:
    url = fake_openai.add_media("fox.png", PNG, "image/png")
    fake_openai.images.append(
        Reply(body={"created": 1, "data": [{"url": url, "revised_prompt": "A red fox."}]})
    )

    outcome = await ask(
        engine_with(ledger, generator(openai_client, http, clock, model="dall-e-3")),
        "a red fox",
        Intent.IMAGE,
    )

    (image,) = [part for part in outcome.parts if isinstance(part, Image)]
    assert image.data == PNG and image.title == "A red fox."
    assert fake_openai.bodies("/v1/images/generations")[0]["response_format"] == "b64_json"


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (
            error(400, "Your request was rejected by the safety system.", code="moderation_blocked"),
            "The image service declined this request on content grounds.",
        ),
        (
            error(500, "Internal error"),
            "The image service is having trouble (HTTP 500). Please try again in a few minutes.",
        ),
        (Reply(body={"created": 1, "data": []}), "The image service finished without an image."),
        (
            Reply(body={"created": 1, "data": [{"b64_json": base64.b64encode(b"<html>").decode()}]}),
            "The image service sent something that isn't an image.",
        ),
    ],
    ids=["moderated", "500", "no-image", "not-an-image"],
)
async def test_failures_are_refunded_and_never_retried(
    ledger: Ledger,
    fake_openai: FakeOpenAI,
    openai_client: openai.AsyncOpenAI,
    http: httpx.AsyncClient,
    clock: InstantClock,
    reply: Reply,
    message: str,
) -> None:
    fake_openai.images.append(reply)

    outcome = await ask(engine_with(ledger, generator(openai_client, http, clock)), "a red fox", Intent.IMAGE)

    assert outcome.failure == f"{message} Nothing was charged."
    assert outcome.row("image").status == "refunded"
    assert len(fake_openai.bodies("/v1/images/generations")) == 1


def test_sizes_follow_the_configured_shape() -> None:
    assert image_size("gpt-image-1", 1024, 768) == "1536x1024"
    assert image_size("gpt-image-1", 768, 1024) == "1024x1536"
    assert image_size("dall-e-3", 1024, 768) == "1792x1024"
    assert image_size("dall-e-3", 512, 512) == "1024x1024"
