"""Image parts, ``max_tokens`` and ``temperature`` through the official ``openai`` SDK to the fake model."""

from __future__ import annotations

import base64

import openai
import pytest

from core.providers.pricing import parse_token_prices
from tests.fakes.fake_openai import Stream
from tests.web.conftest import Web

PRICE = parse_token_prices("gpt-4o-mini=0.15/0.60")["gpt-4o-mini"]
CHAT_ALLOWANCE = 2_000  # CHAT_COST_USD's default, $0.002
PNG = b"\x89PNG\r\n\x1a\n" + b"a tiny picture" * 8
DATA_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()


def client(web: Web, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=key, base_url=f"{web.url}/v1", max_retries=0)


def question(*parts: dict[str, object]) -> list[dict[str, object]]:
    return [{"role": "user", "content": [{"type": "text", "text": "what is in this picture?"}, *parts]}]


@pytest.mark.parametrize("model", ["studio", "studio-chat"])
async def test_an_image_part_reaches_the_vision_model_as_an_image_url(web: Web, model: str) -> None:
    web.fake.chat.append(Stream("A tiny picture of a lighthouse.", usage=(900, 10)))
    api = client(web, await web.key())

    answer = await api.chat.completions.create(
        model=model,
        messages=question({"type": "image_url", "image_url": {"url": DATA_URL}}),  # type: ignore[list-item]
    )

    assert answer.choices[0].message.content == "A tiny picture of a lighthouse."
    sent = web.fake.bodies()[-1]
    assert sent["model"] == "gpt-4o-mini"
    assert sent["messages"][-1] == {
        "role": "user",
        "content": [
            {"type": "text", "text": "what is in this picture?"},
            {"type": "image_url", "image_url": {"url": DATA_URL}},
        ],
    }
    rows = await web.rows()
    assert [(row.service, row.status, row.charged) for row in rows] == [
        ("chat", "charged", PRICE.cost(900, 10))
    ]


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("https://example.com/cat.png", "does not download URLs"),
        ("data:image/png;base64," + base64.b64encode(b"not a picture at all").decode(), "PNG, JPEG or WebP"),
        ("data:image/png;base64,***", "malformed"),
    ],
)
async def test_an_image_the_api_wont_take_is_a_400_and_nothing_is_charged(
    web: Web, url: str, says: str
) -> None:
    api = client(web, await web.key())

    with pytest.raises(openai.BadRequestError) as raised:
        await api.chat.completions.create(
            model="studio-chat",
            messages=question({"type": "image_url", "image_url": {"url": url}}),  # type: ignore[arg-type]
        )

    assert raised.value.code == "invalid_request_error"
    assert says in raised.value.message
    assert raised.value.param == "messages[-1].content[1].image_url"
    assert web.fake.bodies() == [] and await web.rows() == []


async def test_max_tokens_caps_the_answer_and_the_reservation_and_temperature_is_passed_on(web: Web) -> None:
    web.fake.chat.append(Stream("Short.", usage=(20, 2)))
    api = client(web, await web.key())

    await api.chat.completions.create(
        model="studio-chat",
        messages=[{"role": "user", "content": "say something short"}],
        max_tokens=5,
        temperature=0.25,
    )

    sent = web.fake.bodies()[-1]
    assert sent["max_completion_tokens"] == 5 and sent["temperature"] == 0.25
    (row,) = await web.rows()
    assert 0 < row.reserved < CHAT_ALLOWANCE  # a five-token answer holds far less than the allowance
    assert row.reserved >= PRICE.cost(0, 5) and row.charged == PRICE.cost(20, 2)


async def test_without_max_tokens_the_allowance_is_reserved_and_no_temperature_is_sent(web: Web) -> None:
    web.fake.chat.append(Stream("Hello.", usage=(20, 2)))
    api = client(web, await web.key())

    await api.chat.completions.create(
        model="studio-chat", messages=[{"role": "user", "content": "hi"}], max_completion_tokens=None
    )

    sent = web.fake.bodies()[-1]
    assert "temperature" not in sent and sent["max_completion_tokens"] > 5
    (row,) = await web.rows()
    assert row.reserved == CHAT_ALLOWANCE


async def test_conflicting_max_tokens_are_refused(web: Web) -> None:
    api = client(web, await web.key())

    with pytest.raises(openai.BadRequestError) as raised:
        await api.chat.completions.create(
            model="studio-chat",
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=5,
            max_completion_tokens=50,
        )

    assert raised.value.param == "max_completion_tokens"
    assert web.fake.bodies() == [] and await web.rows() == []
