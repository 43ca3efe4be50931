"""Images from Black Forest Labs' Flux API: submit once, poll the returned URL, download at once.

The polling URL comes from BFL's answer, so it is checked like any provider-given URL: the ``x-key``
goes only to the configured ``BFL_API_URL`` origin or, as BFL's global endpoint answers with
regional polling hosts, to ``https`` hosts in its parent domain (``api.us1.bfl.ai`` for
``api.bfl.ai``) that resolve to public addresses.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping

import httpx

from core.clock import Clock
from core.errors import GenerationError, ModerationError
from core.filenames import slug
from core.parts import Checkpoint, GeneratorPart, Image, Intent, Request, Status
from core.providers.fetch import DEFAULT_MEDIA, MediaPolicy
from core.providers.http import RetryPolicy, download, extension, poll, read_json, submit_once

log = logging.getLogger(__name__)

SERVICE = "image service"
FIRST_POLL_S = 0.5
POLL_GROWTH = 1.5
MAX_POLL_S = 5.0
_MODERATED = {
    "Request Moderated": "The image service declined this prompt on content grounds.",
    "Content Moderated": "The image service's safety filter withheld the finished image.",
}


class BflImageGenerator:
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
    ) -> None:
        self._http = http
        self._clock = clock
        self._submit_url = f"{api_url.rstrip('/')}/{model}"
        self._headers = {"x-key": api_key, "accept": "application/json"}
        self._size = {"width": width, "height": height}
        self._timeout_s = timeout_s
        self._cost = cost
        self._policy = policy
        self._guard = media.guard(api_url, service=SERVICE, regional=True)

    def estimate(self, prompt: str) -> int:
        return self._cost

    async def generate(self, prompt: str, request: Request) -> AsyncIterator[GeneratorPart]:
        yield Status("Sending to the image service…")
        polling_url = await self._submit(prompt)
        yield Checkpoint({"polling_url": polling_url})
        async for part in self._follow(polling_url, prompt):
            yield part

    def resume(
        self, checkpoint: Mapping[str, str], prompt: str, request: Request
    ) -> AsyncIterator[GeneratorPart]:
        """Pick up a submitted image after a restart: poll its URL again, never resubmit."""
        return self._follow(checkpoint["polling_url"], prompt)

    async def _follow(self, polling_url: str, prompt: str) -> AsyncIterator[GeneratorPart]:
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
        )

    async def _submit(self, prompt: str) -> str:
        """Send the paid request exactly once; return its polling URL."""
        body = {"prompt": prompt, **self._size, "output_format": "jpeg"}
        response = await submit_once(
            self._http, self._submit_url, body=body, headers=self._headers, service=SERVICE
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
