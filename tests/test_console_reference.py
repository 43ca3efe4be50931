"""The console's ``/imagine --ref PATH``: a picture from this computer is the source of an edit;
a missing file, one over the size cap or one that isn't a picture is refused and costs nothing.
Flags typed in a plain request ("draw a lighthouse --ar 16:9 --seed 7") work as /imagine's."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from PIL import Image as PILImage

from adapters.console.app import CONSOLE_SCOPE, ConsoleChat
from core.demo import DemoImageGenerator
from core.engine import Engine
from core.ledger import Ledger
from core.parts import Intent
from core.studio import StudioStore
from tests.conftest import IMAGE_COST


def console(
    ledger: Ledger, media: Path, *, max_reference_bytes: int = 1_000_000
) -> tuple[ConsoleChat, io.StringIO]:
    engine = Engine(
        ledger=ledger,
        generators={Intent.IMAGE: DemoImageGenerator(cost=IMAGE_COST)},
        studio=StudioStore(ledger.database),
    )
    out = io.StringIO()
    return ConsoleChat(
        engine, out=out, media_dir=media, echo=False, max_reference_bytes=max_reference_bytes
    ), out


def reference(path: Path, size: tuple[int, int]) -> Path:
    PILImage.new("RGB", size, (10, 120, 200)).save(path, "PNG")
    return path


def saved(out: io.StringIO) -> list[Path]:
    return [Path(found) for found in re.findall(r"Image saved: (\S+)", out.getvalue())]


async def test_imagine_with_a_local_reference_edits_that_picture(tmp_path: Path, ledger: Ledger) -> None:
    chat, out = console(ledger, tmp_path / "media")
    harbour = reference(tmp_path / "my harbour.png", (300, 200))

    await chat.handle_line(f'/imagine --ref "{harbour}" the harbour at night')

    [result] = saved(out)
    with PILImage.open(result) as image:
        assert image.size == (300, 200), "drawn over the reference, not a new 1024×768 picture"
        assert image.convert("RGB").getpixel((5, 5)) == (10, 120, 200)
    assert "(demo edit)" in out.getvalue()
    [row] = (await ledger.report(CONSOLE_SCOPE)).recent
    assert (row.service, row.prompt) == ("image", "the harbour at night")


@pytest.mark.parametrize("problem", ["missing", "over the cap", "not a picture"])
async def test_a_reference_that_cannot_be_used_is_refused_without_charge(
    problem: str, tmp_path: Path, ledger: Ledger
) -> None:
    chat, out = console(ledger, tmp_path / "media", max_reference_bytes=2048)
    if problem == "missing":
        path, says = tmp_path / "nowhere.png", "I can't find the file"
    elif problem == "over the cap":
        path = reference(tmp_path / "big.png", (400, 400))
        path.write_bytes(path.read_bytes() + bytes(3_000))
        says = "`big.png` is larger than the 2 KB"
    else:
        path = tmp_path / "notes.png"
        path.write_text("just words")
        says = "`notes.png` isn't a picture"

    await chat.handle_line(f"/imagine --ref {path} the harbour at night")

    assert says in out.getvalue() and "Nothing was charged." in out.getvalue()
    assert saved(out) == []
    assert (await ledger.report(CONSOLE_SCOPE)).recent == []


async def test_flags_typed_in_a_plain_request_are_read_like_imagines(tmp_path: Path, ledger: Ledger) -> None:
    chat, out = console(ledger, tmp_path / "media")

    await chat.handle_line("draw a lighthouse --ar 16:9 --seed 7")
    await chat.handle_line("draw a lighthouse --seed 7")
    await chat.handle_line("draw a lighthouse --ar 5:4")

    wide, plain = saved(out)
    with PILImage.open(wide) as image:
        assert image.width / image.height > 1.7
    with PILImage.open(plain) as image:
        assert image.size == (768, 512), "no --ar: the demo's own size"
    assert re.findall(r"^   seed (\d+)$", out.getvalue(), re.M) == ["7", "7"]
    assert "`--ar 5:4` isn't an aspect I can draw" in out.getvalue()
    prompts = [row.prompt for row in (await ledger.report(CONSOLE_SCOPE)).recent]
    assert sorted(prompts) == ["a lighthouse", "a lighthouse"], "the flags are not part of the prompt"
