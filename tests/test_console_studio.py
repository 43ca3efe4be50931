"""Image work in ``python -m bot chat``: /imagine with flags, then /reroll, /vary, /upscale, /edit on
the last image and /another on the last song, on the offline demo providers."""

from __future__ import annotations

import re
from pathlib import Path

from PIL import Image as PILImage

from tests.cli import run_bot

SCRIPT = """\
/reroll
/imagine --ar 16:9 --seed 42 a lighthouse
/reroll
/vary strong
/vary wildly
/upscale
/edit make it night
/edit
/imagine a cat --ar 5:4
/song a sea shanty
/another
"""


def picture(path: Path) -> PILImage.Image:
    with PILImage.open(path) as opened:
        return opened.convert("RGB")


def test_the_console_works_on_the_last_image_and_song(tmp_path: Path) -> None:
    result = run_bot(tmp_path, "chat", "--out", "media", stdin=SCRIPT)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    media = tmp_path / "media"

    assert "There's no image here yet to work on. Nothing was charged." in out  # /reroll before any image
    saved = re.findall(r"Image saved: media/(\S+)", out)
    assert saved == [f"a-lighthouse{suffix}.png" for suffix in ("", "-2", "-3", "-4", "-5")]
    seeds = [int(seed) for seed in re.findall(r"^   seed (\d+)$", out, re.M)]
    assert seeds[0] == 42 and seeds[1] != 42  # the reroll drew with a new seed, and says which

    original, reroll, vary, upscale, edit = (picture(media / name) for name in saved)
    assert original.size[0] / original.size[1] > 1.7  # 16:9
    assert reroll.size == original.size and reroll.tobytes() != original.tobytes()
    assert vary.size == original.size and vary.tobytes() != original.tobytes()
    # /upscale and /edit act on the last image: the variation.
    assert upscale.size == (2 * vary.size[0], 2 * vary.size[1])
    assert edit.size == upscale.size and edit.tobytes() != upscale.tobytes()

    assert "Usage: `/vary [subtle|strong]`. Nothing was charged." in out
    assert "Tell me what to change" in out
    assert "`--ar 5:4` isn't an aspect I can draw" in out
    songs = re.findall(r"saved: media/(\S+\.wav)", out)
    assert songs == ["a-sea-shanty.wav", "a-sea-shanty-2.wav"]
    assert (media / songs[0]).read_bytes() != (media / songs[1]).read_bytes()
