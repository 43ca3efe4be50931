"""The openai SDK's requests on the shared client's aiohttp session (``bot/shared_http.py``), at the
wire: lines however long and however cut, a compressed body decoded once, proxies from the
environment, and the session closed with the client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import openai
import pytest
from aiohttp import web

from bot.shared_http import SharedHttp, env_proxy, sdk_http
from tests.fakes.local_app import serving


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[web.Request]]]:
    """``/v1/chat/completions`` answering one 100 000-character SSE line; ``/v1/models`` gzipped."""
    seen: list[web.Request] = []
    chunk = {"choices": [{"index": 0, "delta": {"content": "é" * 100_000}, "finish_reason": None}]}

    async def chat(request: web.Request) -> web.StreamResponse:
        seen.append(request)
        await request.read()
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        data = f"data: {json.dumps(chunk, ensure_ascii=False)}\r\n\r\ndata: [DONE]\r\n\r\n".encode()
        for start in range(0, len(data), 999):  # cut anywhere, through characters too
            await response.write(data[start : start + 999])
        await response.write_eof()
        return response

    async def models(request: web.Request) -> web.Response:
        seen.append(request)
        response = web.json_response({"object": "list", "data": [{"id": "m", "object": "model"}]})
        response.enable_compression(web.ContentCoding.gzip)
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    async with serving(app) as port:
        yield f"http://127.0.0.1:{port}/v1", seen


async def test_a_stream_is_read_in_whole_lines_however_the_bytes_arrive(
    server: tuple[str, list[web.Request]],
) -> None:
    base_url, seen = server
    async with SharedHttp() as shared:
        client = openai.AsyncOpenAI(api_key="sk-test", base_url=base_url, http_client=sdk_http(shared))
        response = await client.post(
            "/chat/completions", cast_to=httpx.Response, body={"model": "m", "stream": True}, stream=True
        )
        lines = [line async for line in response.stream.lines()]  # type: ignore[attr-defined]
        await response.aclose()

    assert len(lines) == 4 and lines[1:] == ["", "data: [DONE]", ""]
    assert json.loads(lines[0].removeprefix("data: "))["choices"][0]["delta"]["content"] == "é" * 100_000
    assert seen[0].headers["Authorization"] == "Bearer sk-test"


async def test_a_compressed_answer_is_decoded_once(server: tuple[str, list[web.Request]]) -> None:
    base_url, _ = server
    async with SharedHttp() as shared:
        client = openai.AsyncOpenAI(api_key="sk-test", base_url=base_url, http_client=sdk_http(shared))
        models = await client.models.list()
        session = shared.stream_session()

    assert [model.id for model in models.data] == ["m"]
    assert session.closed  # closed with the shared client


def test_the_proxy_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")

    assert env_proxy("https://api.openai.com/v1") == "http://proxy.internal:3128"
    assert env_proxy("http://127.0.0.1:8080/v1") is None
