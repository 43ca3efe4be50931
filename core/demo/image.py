"""A demo image: a small landscape whose colours and shapes come from the prompt, captioned with it."""

from __future__ import annotations

import asyncio
import hashlib
import io
import random
import textwrap
from collections.abc import AsyncIterator

from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont

from core.filenames import slug
from core.parts import GeneratorPart, Image, Intent, Request, Status

WIDTH, HEIGHT = 768, 512


def seeded_random(prompt: str) -> random.Random:
    return random.Random(hashlib.sha256(prompt.encode()).digest())


def draw_png(prompt: str) -> bytes:
    """Render the demo picture for ``prompt`` as PNG bytes (pure CPU, ~20 ms)."""
    rng = seeded_random(prompt)
    top = tuple(rng.randrange(20, 120) for _ in range(3))
    bottom = tuple(rng.randrange(120, 255) for _ in range(3))
    picture = PILImage.new("RGB", (WIDTH, HEIGHT))
    draw = ImageDraw.Draw(picture)
    for y in range(HEIGHT):
        mix = y / HEIGHT
        colour = tuple(int(a + (b - a) * mix) for a, b in zip(top, bottom, strict=True))
        draw.line([(0, y), (WIDTH, y)], fill=colour)
    sun_x, sun_y, radius = rng.randrange(80, WIDTH - 80), rng.randrange(60, 200), rng.randrange(30, 70)
    draw.ellipse([sun_x - radius, sun_y - radius, sun_x + radius, sun_y + radius], fill=(255, 236, 170))
    for layer in range(3):
        shade = tuple(max(0, channel - 60 - layer * 35) for channel in bottom)
        base = HEIGHT - 170 + layer * 55
        points = (
            [(0, HEIGHT)]
            + [(x, base - rng.randrange(0, 90 - layer * 20)) for x in range(0, WIDTH + 96, 96)]
            + [(WIDTH, HEIGHT)]
        )
        draw.polygon(points, fill=shade)
    caption = "\n".join(textwrap.wrap(prompt, 40)[:3])
    draw.rectangle([0, HEIGHT - 110, WIDTH, HEIGHT], fill=(0, 0, 0))
    draw.text((20, HEIGHT - 100), caption, font=ImageFont.load_default(size=24), fill=(255, 255, 255))
    draw.text(
        (20, 16),
        "DEMO IMAGE · no image API key set",
        font=ImageFont.load_default(size=18),
        fill=(255, 255, 255),
    )
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


class DemoImageGenerator:
    """A placeholder picture, free: the bot builds it without a cost. ``cost`` lets a test stand
    it in for a paid provider."""

    intent = Intent.IMAGE
    demo = True

    def __init__(self, *, cost: int = 0) -> None:
        self._cost = cost

    def estimate(self, prompt: str) -> int:
        return self._cost

    async def generate(self, prompt: str, request: Request) -> AsyncIterator[GeneratorPart]:
        yield Status("Drawing (demo)…")
        data = await asyncio.to_thread(draw_png, prompt)
        yield Image(
            data=data,
            filename=f"{slug(prompt)}.png",
            mime_type="image/png",
            prompt=prompt,
            title=f"Demo image: {prompt}"[:200],
        )
