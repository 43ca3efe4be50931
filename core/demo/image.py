"""A demo image: a small landscape whose colours and shapes come from the prompt and seed, captioned
with the prompt; and every studio operation done for real on the PNG (vary shifts the palette,
upscale doubles the size, edit overlays the instruction)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import random
import textwrap
from collections.abc import AsyncIterator

from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont

from core.errors import GenerationError
from core.filenames import slug
from core.parts import GeneratorPart, Image, Intent, Operation, Request, Status, StudioWork
from core.studio import OperationPrices, PricedByOperation, aspect_size, new_seed

WIDTH, HEIGHT = 768, 512
VARY_MIX = {"subtle": 0.3, "strong": 0.8}
"""How far a variation moves towards the shifted palette."""


def seeded_random(prompt: str, seed: int | None = None) -> random.Random:
    salt = b"" if seed is None else f":{seed}".encode()
    return random.Random(hashlib.sha256(prompt.encode() + salt).digest())


def draw_png(prompt: str, seed: int | None = None, *, size: tuple[int, int] = (WIDTH, HEIGHT)) -> bytes:
    """Render the demo picture for ``prompt`` (and ``seed``) as PNG bytes (pure CPU, ~20 ms)."""
    width, height = size
    rng = seeded_random(prompt, seed)
    top = tuple(rng.randrange(20, 120) for _ in range(3))
    bottom = tuple(rng.randrange(120, 255) for _ in range(3))
    picture = PILImage.new("RGB", (width, height))
    draw = ImageDraw.Draw(picture)
    for y in range(height):
        mix = y / height
        colour = tuple(int(a + (b - a) * mix) for a, b in zip(top, bottom, strict=True))
        draw.line([(0, y), (width, y)], fill=colour)
    sun_x, sun_y, radius = rng.randrange(80, width - 80), rng.randrange(60, 200), rng.randrange(30, 70)
    draw.ellipse([sun_x - radius, sun_y - radius, sun_x + radius, sun_y + radius], fill=(255, 236, 170))
    for layer in range(3):
        shade = tuple(max(0, channel - 60 - layer * 35) for channel in bottom)
        base = height - 170 + layer * 55
        points = (
            [(0, height)]
            + [(x, base - rng.randrange(0, 90 - layer * 20)) for x in range(0, width + 96, 96)]
            + [(width, height)]
        )
        draw.polygon(points, fill=shade)
    caption = "\n".join(textwrap.wrap(prompt, 40)[:3])
    draw.rectangle([0, height - 110, width, height], fill=(0, 0, 0))
    draw.text((20, height - 100), caption, font=ImageFont.load_default(size=24), fill=(255, 255, 255))
    draw.text(
        (20, 16),
        "DEMO IMAGE · no image API key set",
        font=ImageFont.load_default(size=18),
        fill=(255, 255, 255),
    )
    return _png(picture)


def _png(picture: PILImage.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def _opened(data: bytes) -> PILImage.Image:
    try:
        with PILImage.open(io.BytesIO(data)) as source:
            return source.convert("RGB")
    except (OSError, ValueError) as error:
        raise GenerationError("I couldn't read the image to work on.", detail=repr(error)) from error


def vary_png(data: bytes, *, seed: int, strength: str) -> bytes:
    """The image with its palette rotated (which way and how far from ``seed``), mixed in by strength."""
    source = _opened(data)
    rng = random.Random(seed)
    red, green, blue = source.split()
    order = rng.choice([(green, blue, red), (blue, red, green)])
    shifted = PILImage.merge("RGB", order)
    return _png(PILImage.blend(source, shifted, VARY_MIX.get(strength, VARY_MIX["subtle"])))


def upscale_png(data: bytes) -> bytes:
    """The image at twice its width and height."""
    source = _opened(data)
    return _png(source.resize((source.width * 2, source.height * 2), PILImage.Resampling.LANCZOS))


def edit_png(data: bytes, instruction: str) -> bytes:
    """The image with the instruction written over a band across its middle."""
    picture = _opened(data)
    draw = ImageDraw.Draw(picture)
    middle = picture.height // 2
    draw.rectangle([0, middle - 40, picture.width, middle + 40], fill=(20, 20, 60))
    text = "\n".join(textwrap.wrap(f"edit: {instruction}", 48)[:2])
    draw.text((20, middle - 30), text, font=ImageFont.load_default(size=22), fill=(255, 255, 200))
    return _png(picture)


class DemoImageGenerator(PricedByOperation):
    """A placeholder picture, free: the bot builds it without a cost. ``cost`` lets a test stand
    it in for a paid provider."""

    intent = Intent.IMAGE
    demo = True

    def __init__(self, *, cost: int = 0, prices: OperationPrices | None = None) -> None:
        self._cost = cost
        self._prices = prices or OperationPrices(vary=cost, upscale=cost, edit=cost)

    async def generate(self, prompt: str, request: Request) -> AsyncIterator[GeneratorPart]:
        work = request.studio or StudioWork()
        seed = work.seed if work.seed is not None else new_seed()
        operation = work.operation
        if operation in (Operation.VARY, Operation.UPSCALE, Operation.EDIT):
            if work.source is None:
                raise GenerationError("I no longer have the image to work on.")
            yield Status(f"Working on the image (demo {operation.value})…")
            if operation is Operation.VARY:
                data = await asyncio.to_thread(vary_png, work.source, seed=seed, strength=work.strength)
            elif operation is Operation.UPSCALE:
                data = await asyncio.to_thread(upscale_png, work.source)
            else:
                data = await asyncio.to_thread(edit_png, work.source, prompt)
            shown = work.source_prompt or prompt
            title = f"Demo {operation.value}: {shown}" + (
                f" ({prompt})" if operation is Operation.EDIT else ""
            )
        else:
            yield Status("Drawing (demo)…")
            size = aspect_size(work.aspect, WIDTH, HEIGHT)
            data = await asyncio.to_thread(draw_png, prompt, seed, size=size)
            shown, title = prompt, f"Demo image: {prompt}"
        yield Image(
            data=data,
            filename=f"{slug(shown)}.png",
            mime_type="image/png",
            prompt=shown,
            title=title[:200],
            seed=seed,
        )
