"""Images from Black Forest Labs' Flux API: submit once, poll the returned URL, download at once.

The polling URL comes from BFL's answer, so it is checked like any provider-given URL: the ``x-key``
goes only to the configured ``BFL_API_URL`` origin or, as BFL's global endpoint answers with
regional polling hosts, to ``https`` hosts in its parent domain (``api.us1.bfl.ai`` for
``api.bfl.ai``) that resolve to public addresses.
"""

from __future__ import annotations

import base64
import logging
import math
from collections.abc import AsyncIterator, Mapping

import httpx

from core.clock import Clock
from core.errors import GenerationError, ModerationError
from core.filenames import slug
from core.parts import Checkpoint, GeneratorPart, Image, Intent, Operation, Request, Status, StudioWork
from core.providers.fetch import DEFAULT_MEDIA, MediaPolicy
from core.providers.http import RetryPolicy, download, extension, poll, read_json, submit_once
from core.studio import OperationPrices, PricedByOperation, aspect_size, new_seed

log = logging.getLogger(__name__)

SERVICE = "image service"
FIRST_POLL_S = 0.5
POLL_GROWTH = 1.5
MAX_POLL_S = 5.0
_MODERATED = {
    "Request Moderated": "The image service declined this prompt on content grounds.",
    "Content Moderated": "The image service's safety filter withheld the finished image.",
}


class BflImageGenerator(PricedByOperation):
    """``POST {api_url}/{model}`` with ``x-key``, then poll exactly the ``polling_url`` it returns."""

    intent = Intent.IMAGE
    demo = False

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        clock: Clock,
        api_url: str,
        api_key: str,
        model: str,
        width: int,
        height: int,
        timeout_s: float,
        cost: int,
        policy: RetryPolicy,
        media: MediaPolicy = DEFAULT_MEDIA,
        edit_model: str = "flux-kontext-pro",
        upscale_model: str = "flux-pro-1.1-ultra",
        prices: OperationPrices | None = None,
    ) -> None:
        self._http = http
        self._clock = clock
        self._api_url = api_url.rstrip("/")
        self._model, self._edit_model, self._upscale_model = model, edit_model, upscale_model
        self._headers = {"x-key": api_key, "accept": "application/json"}
        self._width, self._height = width, height
        self._prices = prices or OperationPrices(vary=cost, upscale=cost, edit=cost)
        self._timeout_s = timeout_s
        self._cost = cost
        self._policy = policy
        self._guard = media.guard(api_url, service=SERVICE, regional=True)

    async def generate(self, prompt: str, request: Request) -> AsyncIterator[GeneratorPart]:
        work = request.studio or StudioWork()
        seed = work.seed if work.seed is not None else new_seed()
        model, body = self.call(prompt, work, seed)
        yield Status("Sending to the image service…")
        polling_url = await self._submit(model, body)
        yield Checkpoint({"polling_url": polling_url, "seed": str(seed)})
        async for part in self._follow(polling_url, work.source_prompt or prompt, seed):
            yield part

    def resume(
        self, checkpoint: Mapping[str, str], prompt: str, request: Request
    ) -> AsyncIterator[GeneratorPart]:
        """Pick up a submitted image after a restart: poll its URL again, never resubmit."""
        seed = checkpoint.get("seed")
        return self._follow(checkpoint["polling_url"], prompt, int(seed) if seed else None)

    def call(self, prompt: str, work: StudioWork, seed: int) -> tuple[str, dict[str, object]]:
        """The model and body for ``work``: a new image at the aspect's size; Kontext with the
        image for edits and subtle variations; the image as an image prompt (Redux) for strong
        variations; Ultra with the image prompt, raw, for upscales."""
        operation = work.operation
        if operation in (Operation.IMAGINE, Operation.REROLL, Operation.ANOTHER):
            width, height = aspect_size(work.aspect, self._width, self._height)
            return self._model, {"prompt": prompt, "width": width, "height": height, "seed": seed}
        if work.source is None:
            raise GenerationError("I no longer have the image to work on.", detail="no source image")
        image = base64.b64encode(work.source).decode()
        source_prompt = work.source_prompt or prompt
        if operation is Operation.EDIT:
            return self._edit_model, {"prompt": prompt, "input_image": image, "seed": seed}
        if operation is Operation.VARY and work.strength == "subtle":
            instruction = f"A subtle variation of this image, same subject and composition: {source_prompt}"
            return self._edit_model, {"prompt": instruction, "input_image": image, "seed": seed}
        if operation is Operation.VARY:
            width, height = aspect_size(work.aspect, self._width, self._height)
            body: dict[str, object] = {"prompt": source_prompt, "image_prompt": image, "seed": seed}
            return self._model, body | {"width": width, "height": height}
        return self._upscale_model, {
            "prompt": source_prompt,
            "image_prompt": image,
            "image_prompt_strength": 1.0,
            "aspect_ratio": work.aspect or _ratio(self._width, self._height),
            "raw": True,
            "seed": seed,
        }

    async def _follow(self, polling_url: str, prompt: str, seed: int | None) -> AsyncIterator[GeneratorPart]:
        """Poll until the image is ready (or finally not), then download and deliver it."""
        started = self._clock.now()
        deadline = started + self._timeout_s
        delay = FIRST_POLL_S
        while True:
            await self._clock.sleep(min(delay, max(0.0, deadline - self._clock.now())))
            result = await self._poll(polling_url, deadline)
            status = str(result.get("status"))
            if status == "Ready":
                break
            if status in _MODERATED:
                raise ModerationError(_MODERATED[status], detail=f"BFL: {status}")
            if status == "Task not found":
                raise GenerationError("The image service lost track of this job.", detail=f"BFL: {status}")
            if status in ("Error", "Failed"):
                raise GenerationError(
                    "The image service couldn't draw this image.",
                    detail=f"BFL {status}: {result.get('details') or result.get('result')}",
                )
            elapsed = self._clock.now() - started
            if elapsed >= self._timeout_s:
                raise GenerationError(
                    f"The image still wasn't ready after {self._timeout_s:.0f} s, so I stopped waiting.",
                    detail=f"BFL job still {status!r} at the deadline",
                )
            yield Status(f"Drawing… {elapsed:.0f} s")
            delay = min(delay * POLL_GROWTH, MAX_POLL_S)
        sample = result.get("result")
        url = sample.get("sample") if isinstance(sample, dict) else None
        if not isinstance(url, str) or not url:
            raise GenerationError(
                "The image service finished without an image.", detail=f"BFL Ready: {result}"
            )
        yield Status("Downloading the image…")
        image = await download(
            self._http,
            url,
            clock=self._clock,
            policy=self._policy,
            service=SERVICE,
            what="image",
            guard=self._guard,
            kind="image",
        )
        yield Image(
            data=image.data,
            filename=f"{slug(prompt)}.{extension(image.mime_type, 'jpg')}",
            mime_type=image.mime_type,
            prompt=prompt,
            title=prompt[:200],
            seed=seed,
        )

    async def _submit(self, model: str, body: dict[str, object]) -> str:
        """Send the paid request exactly once; return its polling URL."""
        body = body | {"output_format": "jpeg"}
        response = await submit_once(
            self._http, f"{self._api_url}/{model}", body=body, headers=self._headers, service=SERVICE
        )
        polling_url = read_json(response, service=SERVICE, shape=dict).get("polling_url")
        if not isinstance(polling_url, str) or not polling_url:
            raise GenerationError(
                f"The {SERVICE} sent a reply I couldn't read.",
                detail=f"no polling_url: {response.text[:200]}",
            )
        return polling_url

    async def _poll(self, polling_url: str, deadline: float) -> dict[str, object]:
        response = await poll(
            self._http,
            polling_url,
            clock=self._clock,
            policy=self._policy,
            service=SERVICE,
            deadline=deadline,
            guard=self._guard,
            headers=self._headers,
        )
        return read_json(response, service=SERVICE, shape=dict)


def _ratio(width: int, height: int) -> str:
    """``1024`` × ``768`` as ``4:3``."""
    divisor = math.gcd(width, height)
    return f"{width // divisor}:{height // divisor}"
