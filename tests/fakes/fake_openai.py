"""A fake OpenAI-compatible server: SSE chat streams with a usage chunk, JSON completions, images."""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import json
import re
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.provider_server import ProviderServer, Reply, take


@dataclass(frozen=True)
class Stream:
    """A streamed chat completion: ``text`` in word-sized chunks, then finish, usage and ``[DONE]``.

    ``cut_after`` drops the connection after that many content chunks; ``garbage_after`` sends a
    line that is not JSON after that many; ``error_after`` sends an SSE error event instead.
    ``finish_reason=None`` sends no finishing chunk and ``done=False`` no ``[DONE]``: a stream that
    just stops, cleanly closed.
    """

    text: str = "Hello there."
    usage: tuple[int, int] | None = (100, 200)
    finish_reason: str | None = "stop"
    done: bool = True
    cut_after: int | None = None
    garbage_after: int | None = None
    error_after: int | None = None


@dataclass(frozen=True)
class Hangup:
    """Read the whole request, then close the connection without a word, as a crashed proxy would."""


def completion(
    content: str | None, *, usage: tuple[int, int] | None = (50, 10), model: str = "m"
) -> dict[str, Any]:
    """A non-streamed ``chat.completion`` body whose message says ``content``."""
    body: dict[str, Any] = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
    }
    if usage is not None:
        body["usage"] = {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}
    return body


def route(intent: str, prompt: str, **kwargs: Any) -> Reply:
    """A classifier answer, as the structured-output JSON a model would write."""
    return Reply(body=completion(json.dumps({"intent": intent, "prompt": prompt}), **kwargs))


def error(
    status: int, message: str, *, code: str | None = None, headers: dict[str, str] | None = None
) -> Reply:
    """An OpenAI-style error body."""
    body = {"error": {"message": message, "type": "error", "param": None, "code": code}}
    return Reply(status, body, headers or {})


class FakeOpenAI(ProviderServer):
    """Serves ``/v1/chat/completions`` (from ``chat``) and ``/v1/images/generations`` (``images``)."""

    def __init__(self) -> None:
        super().__init__()
        self.chat: deque[Stream | Reply | Hangup] = deque()
        self.images: deque[Reply] = deque()
        """Answers to ``/v1/images/generations`` and ``/v1/images/edits``, in order."""
        self.edits: list[dict[str, Any]] = []
        """Each edit's form: text fields as strings, files as ``(filename, content type, bytes)``."""

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/images/generations", self._images)
        app.router.add_post("/v1/images/edits", self._edits)

    def bodies(self, path: str = "/v1/chat/completions") -> list[Any]:
        return [seen.body for seen in self.requests(path)]

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        answer = take(self.chat, error(500, "nothing scripted"))
        if isinstance(answer, Reply):
            return answer.response()
        body = await request.json()
        if isinstance(answer, Hangup):
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        return await self._stream(request, answer, model=body.get("model", "m"))

    async def _images(self, request: web.Request) -> web.Response:
        reply: Reply = take(self.images, error(500, "nothing scripted"))
        return reply.response()

    async def _edits(self, request: web.Request) -> web.Response:
        """The edits endpoint takes multipart form data with the image as a file part."""
        if not request.content_type.startswith("multipart/form-data"):
            return error(400, "expected multipart/form-data").response()
        form = parse_form(request.headers["content-type"], await request.read())
        self.edits.append(form)
        image = form.get("image") or form.get("image[]")
        if not isinstance(image, tuple) or not image[2] or "prompt" not in form:
            return error(400, "image and prompt are required").response()
        reply: Reply = take(self.images, error(500, "nothing scripted"))
        return reply.response()

    async def _stream(self, request: web.Request, stream: Stream, *, model: str) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)

        def chunk(choices: list[Any], usage: dict[str, int] | None = None) -> bytes:
            body = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 1_700_000_000,
                "model": model,
                "choices": choices,
                "usage": usage,
            }
            return f"data: {json.dumps(body)}\n\n".encode()

        pieces = re.findall(r"\S+\s*", stream.text)
        for number, piece in enumerate(pieces):
            if number == stream.cut_after:
                assert request.transport is not None
                request.transport.close()  # mid-body: the client sees an incomplete chunked read
                await asyncio.sleep(0)
                return response
            if number == stream.garbage_after:
                await response.write(b"data: {this is not json\n\n")
            if number == stream.error_after:
                await response.write(
                    b'event: error\ndata: {"error": {"message": "overloaded mid-stream"}}\n\n'
                )
            delta = {"content": piece} if number else {"role": "assistant", "content": piece}
            await response.write(chunk([{"index": 0, "delta": delta, "finish_reason": None}]))
        if stream.finish_reason is not None:
            await response.write(chunk([{"index": 0, "delta": {}, "finish_reason": stream.finish_reason}]))
        if stream.usage is not None:
            prompt, written = stream.usage
            usage = {"prompt_tokens": prompt, "completion_tokens": written, "total_tokens": prompt + written}
            await response.write(chunk([], usage))
        if stream.done:
            await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def parse_form(content_type: str, raw: bytes) -> dict[str, Any]:
    """A multipart/form-data body as ``{name: text}`` or ``{name: (filename, type, bytes)}``."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + raw
    )
    form: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is None:
            form[str(name)] = data.decode()
        else:
            form[str(name)] = (filename, part.get_content_type(), data)
    return form
