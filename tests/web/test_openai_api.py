"""The official ``openai`` SDK, sync and async, against the running server with fake providers behind it."""

from __future__ import annotations

import asyncio
import base64

import httpx
import openai
import pytest

from core.money import usd_to_micros
from core.providers.pricing import parse_token_prices
from tests.fakes.fake_openai import Stream, error, route
from tests.fakes.provider_server import Reply
from tests.web.conftest import SCOPE, Web

PRICE = parse_token_prices("gpt-4o-mini=0.15/0.60")["gpt-4o-mini"]
ANSWER = "A lighthouse is a tower with a bright light that guides ships."
PNG = b"\x89PNG\r\n\x1a\n" + b"fake png body" * 8


def client(web: Web, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=key, base_url=f"{web.url}/v1", max_retries=0)


async def test_models_are_listed_and_an_unknown_one_is_not_found(web: Web) -> None:
    api = client(web, await web.key())
    models = [model.id async for model in api.models.list()]
    assert models == ["studio", "studio-chat", "studio-research"]
    assert (await api.models.retrieve("studio-research")).owned_by == "studio-bot"

    with pytest.raises(openai.NotFoundError) as raised:
        await api.models.retrieve("gpt-5")
    assert raised.value.code == "model_not_found"


async def test_a_streamed_answer_arrives_token_by_token_and_is_charged_once_to_the_keys_scope(
    web: Web,
) -> None:
    web.fake.chat.append(Stream(ANSWER, usage=(60, 25)))
    api = client(web, await web.key())

    stream = await api.chat.completions.create(
        model="studio-chat",
        messages=[{"role": "user", "content": "what is a lighthouse?"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]

    pieces = [chunk.choices[0].delta.content for chunk in chunks if chunk.choices]
    assert "".join(piece or "" for piece in pieces) == ANSWER
    assert len([piece for piece in pieces if piece]) == len(ANSWER.split())  # one chunk per token
    assert chunks[0].object == "chat.completion.chunk"
    assert [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices][-1] == "stop"
    usage = chunks[-1].usage
    assert usage is not None and not chunks[-1].choices
    assert usage.completion_tokens > 0 and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens

    rows = await web.rows()
    assert [(row.user, row.service, row.status) for row in rows] == [("api:alice", "chat", "charged")]
    assert rows[0].charged == PRICE.cost(60, 25)
    assert usage.model_extra == {"cost_usd": rows[0].charged / 1_000_000}
    sent = web.fake.bodies()[-1]["messages"]
    assert sent[-1] == {"role": "user", "content": "what is a lighthouse?"}


async def test_the_sync_client_gets_one_completion_with_the_conversation_passed_on(web: Web) -> None:
    web.fake.chat.append(Stream(ANSWER, usage=(80, 25)))
    key = await web.key()

    def ask() -> openai.types.chat.ChatCompletion:
        api = openai.OpenAI(api_key=key, base_url=f"{web.url}/v1", max_retries=0)
        return api.chat.completions.create(
            model="studio-chat",
            messages=[
                {"role": "system", "content": "Answer like a sailor."},
                {"role": "user", "content": "hello"},
                {"role": "assistant", "content": "Ahoy!"},
                {"role": "user", "content": "what is a lighthouse?"},
            ],
        )

    completion = await asyncio.to_thread(ask)

    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == ANSWER
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    sent = web.fake.bodies()[-1]["messages"]
    assert [message["role"] for message in sent[1:]] == ["user", "user", "assistant", "user"]
    assert "Answer like a sailor." in sent[1]["content"]
    assert sent[3] == {"role": "assistant", "content": "Ahoy!"}
    assert [row.status for row in await web.rows()] == ["charged"]


async def test_the_sync_client_streams_too(web: Web) -> None:
    web.fake.chat.append(Stream(ANSWER))
    key = await web.key()

    def ask() -> list[str]:
        api = openai.OpenAI(api_key=key, base_url=f"{web.url}/v1", max_retries=0)
        stream = api.chat.completions.create(
            model="studio-chat", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        return [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]

    assert "".join(await asyncio.to_thread(ask)) == ANSWER


async def test_a_wrong_or_revoked_key_is_refused_at_once(web: Web) -> None:
    key = await web.key()
    with pytest.raises(openai.AuthenticationError) as raised:
        await client(web, "sk-studio-not-a-key").models.list()
    assert raised.value.code == "invalid_api_key"

    await client(web, key).models.list()
    assert await web.keys.revoke("alice")
    with pytest.raises(openai.AuthenticationError):
        await client(web, key).models.list()
    with pytest.raises(openai.AuthenticationError):
        await client(web, key).chat.completions.create(
            model="studio-chat", messages=[{"role": "user", "content": "hi"}]
        )
    assert await web.rows() == []


async def test_a_spent_budget_is_insufficient_quota_and_nothing_is_charged(web: Web) -> None:
    await web.app.ledger.set_limit(SCOPE, usd_to_micros("0.001"), by="test")
    api = client(web, await web.key())

    with pytest.raises(openai.RateLimitError) as raised:
        await api.chat.completions.create(
            model="studio-chat", messages=[{"role": "user", "content": "hi"}], stream=True
        )

    assert raised.value.status_code == 429
    assert raised.value.code == "insufficient_quota"
    assert "api:team" in raised.value.message and "resets on 2026-02-01" in raised.value.message
    assert all(row.charged == 0 for row in await web.rows())
    assert web.fake.bodies() == []


async def test_the_per_user_rate_limit_is_429_with_retry_after(web: Web) -> None:
    admission = web.app.engine.admission
    assert admission is not None
    admission.user_requests_per_minute = 1
    web.fake.chat.append(Stream(ANSWER))
    api = client(web, await web.key())
    messages: list[openai.types.chat.ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
    await api.chat.completions.create(model="studio-chat", messages=messages)

    with pytest.raises(openai.RateLimitError) as raised:
        await api.chat.completions.create(model="studio-chat", messages=messages)

    assert raised.value.code == "rate_limit_exceeded"
    assert raised.value.response.headers["retry-after"] == "60"
    assert [row.status for row in await web.rows()] == ["charged"]


async def test_bad_bodies_are_invalid_request_errors(web: Web) -> None:
    key = await web.key()
    async with httpx.AsyncClient(base_url=web.url, headers={"Authorization": f"Bearer {key}"}) as http:
        missing = await http.post("/v1/chat/completions", json={"model": "studio"})
        assert missing.status_code == 400
        assert missing.json()["error"]["type"] == "invalid_request_error"
        assert missing.json()["error"]["param"] == "messages"
        garbled = await http.post(
            "/v1/chat/completions",
            content=b'{"model": "studio", "messages": [',
            headers={"content-type": "application/json"},
        )
        assert garbled.status_code == 400 and garbled.json()["error"]["type"] == "invalid_request_error"
        assert garbled.json()["error"]["message"].startswith("The body is not valid JSON (")
        assert garbled.json()["error"]["param"] is None
        no_model = await http.post(
            "/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]}
        )
        assert no_model.status_code == 400 and no_model.json()["error"]["param"] == "model"

    api = client(web, key)
    with pytest.raises(openai.BadRequestError) as raised:
        await api.chat.completions.create(
            model="studio-chat", messages=[{"role": "user", "content": "x" * 4001}]
        )
    assert raised.value.code == "invalid_request_error" and "4,001 characters" in raised.value.message
    with pytest.raises(openai.BadRequestError):
        await api.images.generate(prompt="", n=1)
    with pytest.raises(openai.BadRequestError):
        await api.images.generate(prompt="a fox", n=5)
    assert await web.rows() == []


async def test_a_provider_failure_is_502_and_refunded(web: Web) -> None:
    web.fake.chat.append(error(500, "upstream exploded"))
    api = client(web, await web.key())

    with pytest.raises(openai.InternalServerError) as raised:
        await api.chat.completions.create(model="studio-chat", messages=[{"role": "user", "content": "hi"}])

    assert raised.value.status_code == 502 and raised.value.code == "provider_error"
    assert [(row.status, row.charged) for row in await web.rows()] == [("refunded", 0)]


async def test_a_stream_broken_mid_way_ends_in_an_error_event(web: Web) -> None:
    web.fake.chat.append(Stream(ANSWER, cut_after=3))
    api = client(web, await web.key())
    stream = await api.chat.completions.create(
        model="studio-chat", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    received: list[str] = []

    async def read() -> None:
        async for chunk in stream:
            received.extend([chunk.choices[0].delta.content or ""] if chunk.choices else [])

    with pytest.raises(openai.APIError) as raised:
        await read()
    assert "".join(received) == "A lighthouse is "
    assert "broke off" in raised.value.message
    # The provider was paid for what it wrote: charged the estimate of it, once.
    assert [row.status for row in await web.rows()] == ["charged"]


async def test_a_client_leaving_mid_stream_is_charged_for_what_the_provider_produced(web: Web) -> None:
    web.fake.chat.append(Stream(ANSWER, usage=(60, 25)))
    key = await web.key()
    body = {"model": "studio-chat", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    async with (
        httpx.AsyncClient(base_url=web.url) as http,
        http.stream(
            "POST", "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
        ) as reply,
    ):
        assert reply.status_code == 200
        lines = reply.aiter_lines()
        assert (await anext(lines)).startswith("data: ")
    # The connection is gone; the answer ran on, was charged its usage and remembered nothing lost.
    rows = await web.rows()
    assert [(row.status, row.charged) for row in rows] == [("charged", PRICE.cost(60, 25))]


async def test_studio_routes_like_a_mention_and_links_the_image(web: Web) -> None:
    web.fake.images.append(Reply(body={"created": 1, "data": [{"b64_json": base64.b64encode(PNG).decode()}]}))
    api = client(web, await web.key())

    completion = await api.chat.completions.create(
        model="studio", messages=[{"role": "user", "content": "draw me a red fox please"}]
    )

    content = completion.choices[0].message.content or ""
    assert content.startswith(
        "_Drawing…_\n\n![a red fox please](http://127.0.0.1:"
    )  # progress, then the link
    url = content[content.index("(") + 1 : content.index(")")]
    assert "/v1/media/" in url
    async with httpx.AsyncClient() as http:
        media = await http.get(url)
        assert media.content == PNG and media.headers["content-type"] == "image/png"
        guessed = await http.get(url[: url.rindex("/") + 1] + "A" * 32 + ".png")
        assert guessed.status_code == 404
    assert [(row.service, row.status) for row in await web.rows()] == [("image", "charged")]


async def test_studio_asks_the_classifier_when_the_rules_cannot_tell(web: Web) -> None:
    web.fake.chat.extend([route("research", "lighthouses"), Stream("# Lighthouses\n\nThey guide ships.")])
    api = client(web, await web.key())

    completion = await api.chat.completions.create(
        model="studio", messages=[{"role": "user", "content": "lighthouses through history"}]
    )

    assert "# Lighthouses" in (completion.choices[0].message.content or "")
    services = sorted((row.service, row.status) for row in await web.rows())
    assert services == [("research", "charged"), ("router", "charged")]


async def test_images_are_generated_n_at_a_time_and_charged_per_image(web: Web) -> None:
    for _ in range(3):
        web.fake.images.append(
            Reply(body={"created": 1, "data": [{"b64_json": base64.b64encode(PNG).decode()}]})
        )
    api = client(web, await web.key())

    as_data = await api.images.generate(
        prompt="a lighthouse", n=2, response_format="b64_json", size="1024x1024"
    )
    assert [base64.b64decode(image.b64_json or "") for image in as_data.data] == [PNG, PNG]
    as_url = await api.images.generate(prompt="a lighthouse", n=1)
    assert as_url.data[0].url and "/v1/media/" in as_url.data[0].url

    rows = await web.rows()
    assert [(row.service, row.status) for row in rows] == [("image", "charged")] * 3
    assert len({row.request_id for row in rows}) == 3


async def test_the_docs_are_served(web: Web) -> None:
    async with httpx.AsyncClient(base_url=web.url) as http:
        assert (await http.get("/docs")).status_code == 200
        schema = (await http.get("/openapi.json")).json()
    assert {"/v1/chat/completions", "/v1/images/generations", "/v1/models"} <= set(schema["paths"])
