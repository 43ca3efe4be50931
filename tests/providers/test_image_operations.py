"""Each button's provider call at the wire: BFL Kontext, Ultra and image prompts, OpenAI edits;
the endpoint, the model, the input image and the seed, charged to the presser at its own price."""

from __future__ import annotations

import base64

import httpx
import openai

from core.engine import Engine
from core.ledger import Ledger
from core.parts import Access, Image, Intent, Part, Request, StudioWork
from core.providers import BflImageGenerator, OpenAIImageGenerator
from core.studio import Action, OperationPrices, action_id, press
from tests.fakes.fake_bfl import JPEG, KEY, FakeBfl, bfl_images
from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.provider_server import Reply
from tests.providers.conftest import POLICY, SCOPE, InstantClock, engine_with

COST = 40_000
PRICES = OperationPrices(vary=41_000, upscale=60_000, edit=42_000)
PNG = b"\x89PNG\r\n\x1a\n" + b"fake png body" * 8


async def parts_of(engine: Engine, request: Request) -> list[Part]:
    return [part async for part in engine.handle(request)]


async def first_image(engine: Engine, **work: object) -> Image:
    request = Request(
        scope=SCOPE,
        user="u1",
        text="a lighthouse",
        intent=Intent.IMAGE,
        studio=StudioWork(**work),  # type: ignore[arg-type]
    )
    (image,) = [part for part in await parts_of(engine, request) if isinstance(part, Image)]
    return image


async def press_and_run(engine: Engine, action: Action, image: Image, **extra: object) -> Image:
    request = await press(
        engine.studio,
        action_id(action, str(image.job)),
        scope=SCOPE,
        user="u2",
        access=Access(),
        **extra,  # type: ignore[arg-type]
    )
    assert isinstance(request, Request)
    parts = await parts_of(engine, request)
    (result,) = [part for part in parts if isinstance(part, Image)]
    return result


def bfl(fake: FakeBfl, http: httpx.AsyncClient, clock: InstantClock) -> BflImageGenerator:
    return bfl_images(fake, http, cost=COST, prices=PRICES, clock=clock, attempts=3)


async def test_bfl_operations_call_kontext_ultra_and_image_prompts(
    ledger: Ledger, fake_bfl: FakeBfl, http: httpx.AsyncClient, clock: InstantClock
) -> None:
    engine = engine_with(ledger, bfl(fake_bfl, http, clock))
    source = await first_image(engine, aspect="16:9", seed=42)
    (submit,) = fake_bfl.requests("/v1/flux-pro-1.1")
    assert submit.body == {
        "prompt": "a lighthouse",
        "width": 1184,
        "height": 672,
        "seed": 42,
        "output_format": "jpeg",
    }
    assert source.seed == 42 and source.title == "a lighthouse · seed 42"
    encoded = base64.b64encode(JPEG).decode()  # the bot's own copy of the delivered image

    reroll = await press_and_run(engine, Action.REROLL, source)
    rerolled = fake_bfl.requests("/v1/flux-pro-1.1")[-1].body
    assert rerolled["seed"] == reroll.seed != 42 and (rerolled["width"], rerolled["height"]) == (1184, 672)

    edit = await press_and_run(engine, Action.EDIT, source, instruction="make it night")
    (kontext,) = fake_bfl.requests("/v1/flux-kontext-pro")
    assert kontext.body == {
        "prompt": "make it night",
        "input_image": encoded,
        "seed": edit.seed,
        "output_format": "jpeg",
    }

    await press_and_run(engine, Action.VARY, source, strength="subtle")
    subtle = fake_bfl.requests("/v1/flux-kontext-pro")[-1].body
    assert subtle["input_image"] == encoded and "a lighthouse" in subtle["prompt"]

    strong = await press_and_run(engine, Action.VARY, source, strength="strong")
    redux = fake_bfl.requests("/v1/flux-pro-1.1")[-1].body
    assert (
        redux["image_prompt"] == encoded
        and redux["seed"] == strong.seed
        and redux["prompt"] == "a lighthouse"
    )

    upscale = await press_and_run(engine, Action.UPSCALE, source)
    (ultra,) = fake_bfl.requests("/v1/flux-pro-1.1-ultra")
    assert ultra.body == {
        "prompt": "a lighthouse",
        "image_prompt": encoded,
        "image_prompt_strength": 1.0,
        "aspect_ratio": "16:9",
        "raw": True,
        "seed": 42,
        "output_format": "jpeg",
    }
    assert upscale.seed == 42

    presser = await ledger.member_report(SCOPE, "u2")
    assert presser.used == COST + PRICES.edit + 2 * PRICES.vary + PRICES.upscale
    assert (await ledger.member_report(SCOPE, "u1")).used == COST


async def test_the_fake_bfl_rejects_what_bfl_rejects(fake_bfl: FakeBfl, http: httpx.AsyncClient) -> None:
    """The fake's validation is what makes the call assertions above meaningful."""
    headers = {"x-key": KEY}
    for model, body in [
        ("flux-kontext-pro", {"prompt": "x"}),  # no input image
        ("flux-kontext-pro", {"prompt": "x", "input_image": "not base64!"}),
        ("flux-pro-1.1-ultra", {"prompt": "x", "width": 1024}),
        ("flux-pro-1.1", {"prompt": "x", "width": 1000}),
    ]:
        response = await http.post(f"{fake_bfl.base_url}/{model}", json=body, headers=headers)
        assert response.status_code == 422, (model, body)
    response = await http.post(f"{fake_bfl.base_url}/flux-nonsense", json={"prompt": "x"}, headers=headers)
    assert response.status_code == 404


async def test_openai_operations_use_the_edits_endpoint_with_the_image(
    ledger: Ledger,
    fake_openai: FakeOpenAI,
    openai_client: openai.AsyncOpenAI,
    http: httpx.AsyncClient,
    clock: InstantClock,
) -> None:
    generator = OpenAIImageGenerator(
        client=openai_client,
        http=http,
        clock=clock,
        model="gpt-image-1",
        quality="medium",
        width=1024,
        height=768,
        timeout_s=120,
        cost=COST,
        policy=POLICY,
        prices=PRICES,
    )
    answer = Reply(body={"created": 1, "data": [{"b64_json": base64.b64encode(PNG).decode()}]})
    fake_openai.images.extend([answer] * 4)
    engine = engine_with(ledger, generator)
    source = await first_image(engine, aspect="9:16")
    assert fake_openai.bodies("/v1/images/generations")[0]["size"] == "1024x1536"
    assert source.seed is None  # the images API takes no seed: none is claimed

    await press_and_run(engine, Action.EDIT, source, instruction="make it night")
    await press_and_run(engine, Action.VARY, source, strength="strong")
    await press_and_run(engine, Action.UPSCALE, source)
    edit, vary, upscale = fake_openai.edits
    for form in (edit, vary, upscale):
        filename, content_type, data = form["image"]
        assert (content_type, data) == ("image/png", PNG) and filename.endswith(".png")
        assert form["model"] == "gpt-image-1" and form["size"] == "1024x1536" and form["n"] == "1"
    assert edit["prompt"] == "make it night" and edit["quality"] == "medium"
    assert "loose variation" in vary["prompt"] and "a lighthouse" in vary["prompt"]
    assert upscale["quality"] == "high"
    presser = await ledger.member_report(SCOPE, "u2")
    assert presser.used == PRICES.edit + PRICES.vary + PRICES.upscale
