"""Images from the OpenAI images API, for operators without a Black Forest Labs account."""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator
from typing import Any, Literal

import httpx
import openai

from core.clock import Clock
from core.errors import GenerationError
from core.filenames import slug
from core.parts import GeneratorPart, Image, Intent, Operation, Request, Status, StudioWork
from core.providers.failures import openai_failure
from core.providers.fetch import DEFAULT_MEDIA, MediaPolicy, TooLarge, sniff
from core.providers.http import RetryPolicy, download, extension
from core.studio import OperationPrices, PricedByOperation, aspect_size

SERVICE = "image service"

ImageSize = Literal["1024x1024", "1536x1024", "1024x1536", "1792x1024", "1024x1792"]


def image_size(model: str, width: int, height: int) -> ImageSize:
    """The supported size closest in shape to ``width`` × ``height`` for this model family."""
    if width == height:
        return "1024x1024"
    if model.startswith("dall-e"):
        return "1792x1024" if width > height else "1024x1792"
    return "1536x1024" if width > height else "1024x1536"


class OpenAIImageGenerator(PricedByOperation):
    """``images.generate`` with one image, returned as base64 (or, from older models, a URL)."""

    intent = Intent.IMAGE
    demo = False

    def __init__(
        self,
        *,
        client: openai.AsyncOpenAI,
        http: httpx.AsyncClient,
        clock: Clock,
        model: str,
        quality: str,
        width: int,
        height: int,
        timeout_s: float,
        cost: int,
        policy: RetryPolicy,
        media: MediaPolicy = DEFAULT_MEDIA,
        prices: OperationPrices | None = None,
    ) -> None:
        self._client = client
        self._width, self._height = width, height
        self._prices = prices or OperationPrices(vary=cost, upscale=cost, edit=cost)
        self._http = http
        self._clock = clock
        self._model = model
        self._quality = quality
        self._size = image_size(model, width, height)
        self._timeout_s = timeout_s
        self._cost = cost
        self._policy = policy
        self._media = media
        self._guard = media.guard(str(client.base_url), service=SERVICE)

    async def generate(self, prompt: str, request: Request) -> AsyncIterator[GeneratorPart]:
        work = request.studio or StudioWork()
        yield Status("Drawing…")
        # gpt-image models always answer in base64 and reject response_format; DALL·E needs it
        # and has its own quality names.
        extra: dict[str, Any] = (
            {"response_format": "b64_json"}
            if self._model.startswith("dall-e")
            else {"quality": self._quality}
        )
        size = image_size(self._model, *aspect_size(work.aspect, self._width, self._height))
        shown = work.source_prompt or prompt
        try:
            if work.operation in (Operation.VARY, Operation.UPSCALE, Operation.EDIT):
                if work.source is None:
                    raise GenerationError("I no longer have the image to work on.", detail="no source image")
                if work.operation is Operation.UPSCALE and not self._model.startswith("dall-e"):
                    extra["quality"] = "high"  # the images API has no upscaler: redraw at its best
                response = await self._client.images.edit(
                    model=self._model,
                    image=(f"source.{extension(work.source_mime, 'png')}", work.source, work.source_mime),
                    prompt=edit_prompt(work, prompt),
                    n=1,
                    size=size,
                    timeout=self._timeout_s,
                    **extra,
                )
            else:
                response = await self._client.images.generate(
                    model=self._model, prompt=prompt, n=1, size=size, timeout=self._timeout_s, **extra
                )
        except openai.OpenAIError as error:
            raise openai_failure(SERVICE, error) from error
        picture = response.data[0] if response.data else None
        if picture is not None and picture.b64_json:
            if len(picture.b64_json) // 4 * 3 > self._media.max_bytes:
                raise TooLarge(
                    f"The {SERVICE}'s image was larger than the size limit, so I didn't keep it.",
                    detail=f"{len(picture.b64_json)} characters of base64",
                )
            try:
                data = base64.b64decode(picture.b64_json, validate=True)
            except binascii.Error as error:
                raise GenerationError(f"The {SERVICE} sent an image I couldn't read.") from error
            mime_type = sniff_image_type(data)
        elif picture is not None and picture.url:
            yield Status("Downloading the image…")
            image = await download(
                self._http,
                picture.url,
                clock=self._clock,
                policy=self._policy,
                service=SERVICE,
                what="image",
                guard=self._guard,
                kind="image",
            )
            data, mime_type = image.data, image.mime_type
        else:
            raise GenerationError(f"The {SERVICE} finished without an image.", detail=repr(response)[:300])
        yield Image(
            data=data,
            filename=f"{slug(shown)}.{extension(mime_type, 'png')}",
            mime_type=mime_type,
            prompt=shown,
            title=(picture.revised_prompt or shown)[:200],
        )


def edit_prompt(work: StudioWork, prompt: str) -> str:
    """What the edits endpoint is asked for each operation (it takes no seed or strength)."""
    source = work.source_prompt or prompt
    if work.operation is Operation.EDIT:
        return prompt
    if work.operation is Operation.UPSCALE:
        return f"The same image at a higher resolution with finer detail, nothing else changed: {source}"
    if work.strength == "strong":
        return f"A loose variation of this image, free to change composition and colours: {source}"
    return f"A subtle variation of this image, same subject and composition: {source}"


def sniff_image_type(data: bytes) -> str:
    """PNG, JPEG or WebP from the file's magic bytes; an image service may send any of them."""
    mime_type = sniff(data, "image")
    if mime_type is None:
        raise GenerationError(f"The {SERVICE} sent something that isn't an image.", detail=repr(data[:16]))
    return mime_type
