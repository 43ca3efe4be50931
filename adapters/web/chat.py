"""``/v1/models`` and ``/v1/chat/completions``: OpenAI's chat API in front of the engine.

``messages`` in → a core ``Request`` (the last user message is the question, the turns before it
its history); the engine's parts out → ``chat.completion.chunk`` events, or one ``chat.completion``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.types import Receive, Scope, Send

from adapters.web.answers import Answer, MediaLinks
from adapters.web.errors import ApiError, from_failure, invalid, model_not_found
from adapters.web.services import WebServices, authenticate, bearer_token
from adapters.web.wire import (
    ChatCompletion,
    ChatCompletionRequest,
    ErrorResponse,
    ImagePart,
    Message,
    Model,
    ModelList,
)
from core.api_keys import ApiKey
from core.attachments import MAX_FILES, MAX_IMAGE_BYTES
from core.history import BOT_AUTHOR
from core.money import MICROS_PER_USD
from core.parts import AnswerOptions, Audio, Failure, Image, ImageAttachment, Intent, Status, TextDelta, Turn
from core.parts import Request as CoreRequest
from core.providers.fetch import MIB, sniff
from core.providers.pricing import estimated_tokens

OWNER = "studio-bot"
CREATED = 1_767_225_600
"""When the models were first served (2026-01-01), as OpenAI lists a model's creation time."""
ERRORS: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorResponse} for status in (400, 401, 404, 429, 502, 503)
}


@dataclass(frozen=True, slots=True)
class ServedModel:
    id: str
    intent: Intent | None
    """``None``: routed like a mention (chat, research, image or song)."""
    description: str


MODELS = (
    ServedModel("studio", None, "the bot as in a mention: chat, research, an image or a song"),
    ServedModel("studio-chat", Intent.CHAT, "a chat answer"),
    ServedModel("studio-research", Intent.RESEARCH, "a short research paper"),
)


def served_models(services: WebServices) -> list[ServedModel]:
    """The models whose service is on: ``studio`` always, the others with their generator."""
    return [model for model in MODELS if model.intent is None or model.intent in services.engine.intents]


def find_model(services: WebServices, name: str) -> ServedModel:
    for model in served_models(services):
        if model.id == name:
            return model
    raise model_not_found(name)


def _model(model: ServedModel) -> Model:
    return Model(id=model.id, created=CREATED, owned_by=OWNER)


def chat_routes(services: WebServices) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"], responses=ERRORS)

    @router.get("/models", response_model=ModelList)
    async def list_models(request: Request) -> ModelList:
        """The models served: ``studio``, ``studio-chat``, ``studio-research``."""
        await authenticate(services, bearer_token(request))
        return ModelList(data=[_model(model) for model in served_models(services)])

    @router.get("/models/{model_id}", response_model=Model)
    async def get_model(model_id: str, request: Request) -> Model:
        await authenticate(services, bearer_token(request))
        return _model(find_model(services, model_id))

    @router.post("/chat/completions", response_model=ChatCompletion)
    async def chat_completions(
        body: ChatCompletionRequest, request: Request
    ) -> StreamingResponse | JSONResponse:
        """A chat completion, streamed (``stream: true``) or whole. ``studio`` answers image and
        song requests with markdown links to ``/v1/media/{id}``."""
        key = await authenticate(services, bearer_token(request))
        model = find_model(services, body.model)
        question, history = conversation(body.messages, user=key.user)
        core_request = CoreRequest(
            scope=key.scope,
            user=key.user,
            text=question,
            intent=model.intent,
            history=history,
            attachments=attached_images(body.messages[-1]),
            answer=answer_options(body),
        )
        answer = Answer(services.engine, core_request, inflight=services.inflight)
        first = await answer.first()
        if isinstance(first, Failure):
            raise from_failure(first, scope=str(key.scope))
        completion = Completion(
            services,
            key=key,
            answer=answer,
            model=body.model,
            links=services.links(request),
            progress=model.intent is None,
            prompt_tokens=estimated_tokens(*(_text(message) for message in body.messages)),
        )
        if body.stream:
            include_usage = body.stream_options is not None and body.stream_options.include_usage
            return EventStream(
                completion.events(include_usage=include_usage),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        return JSONResponse(await completion.whole())

    return router


def conversation(messages: list[Message], *, user: str) -> tuple[str, tuple[Turn, ...]]:
    """The question (the last message, which must be the user's) and the turns before it.
    System and developer messages become instructions in the user's turns: the core's history
    has only the user's and the bot's turns, and the bot keeps its own system prompt."""
    last = messages[-1]
    if last.role != "user":
        raise invalid("The last message must be the user's: it is the question answered.", param="messages")
    turns: list[Turn] = []
    for message in messages[:-1]:
        text = _text(message)
        if not text:
            continue
        if message.role == "assistant":
            turns.append(Turn("assistant", BOT_AUTHOR, text))
        elif message.role == "user":
            turns.append(Turn("user", user, text))
        else:
            turns.append(Turn("user", user, f"(Instructions for this conversation) {text}"))
    return _text(last, images=False), tuple(turns)


def answer_options(body: ChatCompletionRequest) -> AnswerOptions | None:
    """The asker's ``max_tokens`` (or ``max_completion_tokens``) and ``temperature``, passed on to
    the text model; the reservation shrinks to what such an answer can cost."""
    given = (body.max_tokens, body.max_completion_tokens)
    if None not in given and given[0] != given[1]:
        raise invalid(
            "Give max_tokens or max_completion_tokens, not both with different values.",
            param="max_completion_tokens",
        )
    max_tokens = body.max_completion_tokens or body.max_tokens
    if max_tokens is None and body.temperature is None:
        return None
    return AnswerOptions(max_tokens=max_tokens, temperature=body.temperature)


def attached_images(message: Message) -> tuple[ImageAttachment, ...]:
    """The question's ``image_url`` parts as images. Only inline ``data:`` URLs are taken: this API
    fetches no URLs a client names, so an http(s) URL is refused, as is anything that isn't a
    PNG, JPEG or WebP image or is larger than the limit."""
    if not isinstance(message.content, list):
        return ()
    images: list[ImageAttachment] = []
    for number, part in enumerate(message.content):
        if isinstance(part, ImagePart):
            images.append(_image(part, param=f"messages[-1].content[{number}].image_url"))
    if len(images) > MAX_FILES:
        raise invalid(f"At most {MAX_FILES} images per message.", param="messages")
    return tuple(images)


def _image(part: ImagePart, *, param: str) -> ImageAttachment:
    url = part.image_url.get("url")
    if not isinstance(url, str) or not url:
        raise invalid("An image_url part needs a url.", param=param)
    if not url.startswith("data:"):
        raise invalid(
            "Only inline images are accepted: send the image as a data: URL "
            "(data:image/png;base64,…); this API does not download URLs.",
            param=param,
        )
    header, comma, payload = url.partition(",")
    if not comma or not header.endswith(";base64"):
        raise invalid("An image data: URL must be base64 (data:image/png;base64,…).", param=param)
    if len(payload) * 3 // 4 > MAX_IMAGE_BYTES:
        raise invalid(f"The image is larger than {MAX_IMAGE_BYTES // MIB} MB.", param=param)
    try:
        data = base64.b64decode(payload, validate=True)
    except binascii.Error:
        raise invalid("The image's base64 data is malformed.", param=param) from None
    mime_type = sniff(data, "image")
    if mime_type is None:
        raise invalid("The image must be a PNG, JPEG or WebP image.", param=param)
    extension = mime_type.partition("/")[2].replace("jpeg", "jpg")
    return ImageAttachment(data=data, mime_type=mime_type, name=f"image.{extension}")


def _text(message: Message, *, images: bool = True) -> str:
    """The message's text; with ``images``, each image part noted where it was."""
    if message.content is None:
        return ""
    if isinstance(message.content, str):
        return message.content
    # Earlier turns' images are noted, not sent: the core's history is text (see docs/api.md);
    # the question's own images travel as its attachments.
    return "\n".join(
        part.text if part.type == "text" else "(an image was attached here)"
        for part in message.content
        if images or part.type == "text"
    )


class EventStream(StreamingResponse):
    """A server-sent event stream without Starlette's disconnect watcher (a task group and a
    second task per response). A client that leaves stops nothing anyway: the answer is read
    to its end by its own task (``Answer``), and the server drops writes to a closed connection."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.stream_response(send)


class Completion:
    """One answer as OpenAI chunks or one completion body."""

    def __init__(
        self,
        services: WebServices,
        *,
        key: ApiKey,
        answer: Answer,
        model: str,
        links: MediaLinks,
        progress: bool,
        prompt_tokens: int,
    ) -> None:
        self._services = services
        self._key = key
        self._answer = answer
        self._model = model
        self._links = links
        self._progress = progress
        self._prompt_tokens = prompt_tokens
        self._written: list[str] = []
        self.id = f"chatcmpl-{answer.request.id}"
        self.created = int(services.clock.utc().timestamp())
        head = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": model}
        # Every content chunk is this text around the delta: one json.dumps per token, no model.
        self._prefix = "data: " + json.dumps(head)[:-1] + ', "choices": [{"index": 0, "delta": {"content": '
        self._suffix = '}, "finish_reason": null}]}\n\n'

    async def _texts(self) -> AsyncIterator[str | Failure]:
        """The answer as text pieces (media as markdown, progress lines for ``studio``), or the
        failure that ended it."""
        async for part in self._answer.parts():
            if isinstance(part, TextDelta):
                yield part.text
            elif isinstance(part, Status):
                if self._progress:
                    yield f"_{part.text}_\n\n"
            elif isinstance(part, Image | Audio):
                yield await self._links.markdown(part)
            else:
                yield part

    def _chunk(self, delta: dict[str, object], finish: str | None = None, **extra: object) -> str:
        body = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self._model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        } | extra
        return f"data: {json.dumps(body)}\n\n"

    async def events(self, *, include_usage: bool) -> AsyncIterator[str]:
        """Server-sent ``chat.completion.chunk`` events, then ``data: [DONE]``; a failure after
        the stream started is an ``error`` event (the openai SDK raises it as ``APIError``).
        The role chunk goes out with the first piece: one write where the first text waits."""
        role = self._chunk({"role": "assistant", "content": ""})
        async for text in self._texts():
            if isinstance(text, Failure):
                yield role + from_failure(text, scope=str(self._key.scope)).sse()
                return
            self._written.append(text)
            yield role + self._prefix + json.dumps(text) + self._suffix
            role = ""
        yield role + self._chunk({}, "stop")
        if include_usage:
            usage = await self._usage()
            body = {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self._model,
                "choices": [],
                "usage": usage,
            }
            yield f"data: {json.dumps(body)}\n\n"
        yield "data: [DONE]\n\n"

    async def whole(self) -> dict[str, object]:
        async for text in self._texts():
            if isinstance(text, Failure):
                raise from_failure(text, scope=str(self._key.scope))
            self._written.append(text)
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self._model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(self._written), "refusal": None},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": await self._usage(),
        }

    async def _usage(self) -> dict[str, object]:
        """Estimated tokens (the providers' own counts stay in the ledger) and the actual charge."""
        await self._answer.task  # settled once the engine's stream has ended
        completion_tokens = estimated_tokens("".join(self._written))
        cost = await self._services.keys.request_cost(self._answer.request.id)
        return {
            "prompt_tokens": self._prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": self._prompt_tokens + completion_tokens,
            "cost_usd": cost / MICROS_PER_USD,
        }


__all__ = ["MODELS", "ApiError", "chat_routes"]
