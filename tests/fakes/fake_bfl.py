"""A fake Black Forest Labs API: submit answers ``{id, polling_url}``, polls follow a script."""

from __future__ import annotations

import base64
import binascii
from collections import deque
from typing import Any

import httpx
from aiohttp import web

from core.clock import Clock
from core.providers import BflImageGenerator, RetryPolicy
from core.studio import OperationPrices
from tests.fakes.provider_server import ProviderServer, Reply, take

KEY = "bfl-test-key"
ASPECTS = {"1:1", "4:3", "3:4", "16:9", "9:16", "21:9", "9:21", "3:2", "2:3"}
SIZED = {"flux-pro-1.1", "flux-dev", "flux-pro"}
"""Models that take ``width``/``height`` and an optional ``image_prompt`` (Redux)."""
JPEG = b"\xff\xd8\xff\xe0" + b"fake jpeg body" * 10


class FakeBfl(ProviderServer):
    """``POST /v1/{model}`` then ``GET /v1/get_result?id=…&token=…`` (the token proves the exact URL
    was polled). ``polls`` holds statuses (``"Pending"``, ``"Ready"``, …) or ``Reply`` objects; the
    last one repeats. A ``Ready`` poll points at ``sample`` under ``/media/``."""

    def __init__(self) -> None:
        super().__init__()
        self.submits: deque[Reply] = deque()
        self.polls: deque[str | Reply] = deque(["Pending", "Pending", "Ready"])
        self.sample = "sample.jpg"

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    async def start(self) -> None:
        await super().start()
        self.add_media("sample.jpg", JPEG, "image/jpeg")

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/{model}", self._submit)
        app.router.add_get("/v1/get_result", self._poll)

    def polling_url(self) -> str:
        return f"{self.origin}/v1/get_result?id=job-1&token=signed-123"

    async def _submit(self, request: web.Request) -> web.Response:
        if request.headers.get("x-key") != KEY:
            return web.json_response({"detail": "Not authenticated"}, status=403)
        model = request.match_info["model"]
        if model not in SIZED | {"flux-kontext-pro", "flux-pro-1.1-ultra"}:
            return web.json_response({"detail": "Not Found"}, status=404)
        problem = _invalid(model, await request.json())
        if problem:
            return web.json_response({"detail": [{"msg": problem}]}, status=422)
        reply: Reply = take(self.submits, Reply(body={"id": "job-1", "polling_url": self.polling_url()}))
        return reply.response()

    async def _poll(self, request: web.Request) -> web.Response:
        if request.headers.get("x-key") != KEY or request.query.get("token") != "signed-123":
            return web.json_response({"detail": "Not authenticated"}, status=403)
        answer = take(self.polls, "Pending")
        if isinstance(answer, Reply):
            return answer.response()
        body: dict[str, Any] = {"id": "job-1", "status": answer, "result": None, "progress": None}
        if answer == "Ready":
            body["result"] = {"sample": f"{self.origin}/media/{self.sample}", "prompt": "p"}
        if answer == "Error":
            body["details"] = {"reason": "GPU fell over"}
        return web.json_response(body)


def _invalid(model: str, body: dict[str, Any]) -> str | None:
    """What BFL's validation would reject in ``body`` for ``model`` (a 422), the way its API
    documents each endpoint's fields."""
    if not isinstance(body.get("prompt"), str):
        return "prompt is required"
    seed = body.get("seed")
    if seed is not None and not isinstance(seed, int):
        return "seed must be an integer"
    images = [body[name] for name in ("input_image", "image_prompt") if name in body]
    for image in images:
        try:
            base64.b64decode(image, validate=True)
        except (binascii.Error, TypeError):
            return "images must be base64"
    if model == "flux-kontext-pro":
        if "input_image" not in body or "width" in body or "image_prompt" in body:
            return "flux-kontext-pro takes prompt, input_image and aspect_ratio"
    elif model == "flux-pro-1.1-ultra":
        if "width" in body or "input_image" in body or body.get("aspect_ratio", "16:9") not in ASPECTS:
            return "flux-pro-1.1-ultra takes aspect_ratio, raw and image_prompt, not width/height"
        strength = body.get("image_prompt_strength", 0.1)
        if not isinstance(strength, int | float) or not 0 <= strength <= 1:
            return "image_prompt_strength must be between 0 and 1"
    elif "input_image" in body or "aspect_ratio" in body:
        return f"{model} takes width and height"
    else:
        for side in ("width", "height"):
            value = body.get(side, 1024)
            if not isinstance(value, int) or value % 32 or not 256 <= value <= 1440:
                return f"{side} must be a multiple of 32 from 256 to 1440"
    return None


def bfl_images(
    fake: FakeBfl,
    http: httpx.AsyncClient,
    *,
    cost: int,
    prices: OperationPrices,
    clock: Clock,
    attempts: int = 1,
) -> BflImageGenerator:
    """The real BFL generator pointed at ``fake``: flux-pro-1.1 at 1024×768, operations at ``prices``."""
    return BflImageGenerator(
        http=http,
        clock=clock,
        api_url=fake.base_url,
        api_key=KEY,
        model="flux-pro-1.1",
        width=1024,
        height=768,
        timeout_s=120,
        cost=cost,
        policy=RetryPolicy(attempts=attempts),
        prices=prices,
    )
