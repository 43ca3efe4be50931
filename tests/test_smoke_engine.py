from __future__ import annotations

from core.engine import Engine
from core.parts import Image, Intent, Request, Scope


async def test_demo_image_is_a_png_and_charged(engine: Engine) -> None:
    scope = Scope("test", "1")
    parts = [part async for part in engine.handle(Request(scope=scope, user="u", text="a fox", intent=Intent.IMAGE))]
    images = [part for part in parts if isinstance(part, Image)]
    assert images and images[0].data.startswith(b"\x89PNG")
    report = await engine.ledger.report(scope)
    assert report.used == 40_000 and report.held == 0
