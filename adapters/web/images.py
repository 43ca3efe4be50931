"""``/v1/images/generations`` through the configured image provider, and ``/v1/media/{id}`` serving
what the bot made."""

from __future__ import annotations

import asyncio
import base64

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from adapters.web.answers import Answer
from adapters.web.chat import ERRORS
from adapters.web.errors import ApiError, from_failure, not_found
from adapters.web.services import WebServices, authenticate, bearer_token
from adapters.web.wire import ImageData, ImageRequest, ImagesResponse
from core.api_keys import ApiKey
from core.parts import Failure, Image, Intent
from core.parts import Request as CoreRequest


def image_routes(services: WebServices) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"], responses=ERRORS)

    @router.post("/images/generations", response_model=ImagesResponse)
    async def generate_images(body: ImageRequest, request: Request) -> ImagesResponse:
        """``n`` images of ``prompt``, each a request of its own through the engine: each is
        reserved and charged separately. When some fail, the ones made are returned (and
        charged); when none is made, the first failure is the error."""
        key = await authenticate(services, bearer_token(request))
        outcomes = await asyncio.gather(*(_draw(services, key, body.prompt) for _ in range(body.n)))
        images = [outcome for outcome in outcomes if isinstance(outcome, Image)]
        if not images:
            failure = next(outcome for outcome in outcomes if isinstance(outcome, Failure))
            raise from_failure(failure, scope=str(key.scope))
        links = services.links(request)
        data = [
            ImageData(b64_json=base64.b64encode(image.data).decode(), revised_prompt=image.prompt)
            if body.response_format == "b64_json"
            else ImageData(url=await links.url(image.data, image.filename), revised_prompt=image.prompt)
            for image in images
        ]
        return ImagesResponse(created=int(services.clock.utc().timestamp()), data=data)

    @router.get("/media/{media_id}", tags=["media"], response_class=FileResponse)
    async def media(media_id: str) -> FileResponse:
        """An image or song the bot made. The id is the permission: no key is needed, so the
        links work in a browser and in markdown. Kept ``MEDIA_DAYS`` days."""
        stored = await services.media.find(media_id)
        if stored is None:
            raise not_found("No such media: the link is wrong, or the file has expired.")
        return FileResponse(stored.path, media_type=stored.mime_type)

    return router


async def _draw(services: WebServices, key: ApiKey, prompt: str) -> Image | Failure:
    request = CoreRequest(scope=key.scope, user=key.user, text=prompt, intent=Intent.IMAGE)
    answer = Answer(services.engine, request, inflight=services.inflight)
    image: Image | None = None
    failure: Failure | None = None
    async for part in answer.parts():
        if isinstance(part, Image):
            image = image or part
        elif isinstance(part, Failure):
            failure = part
    if image is not None:
        return image
    return failure or Failure("The image service returned no image. Nothing was charged.", "failed")


__all__ = ["ApiError", "image_routes"]
