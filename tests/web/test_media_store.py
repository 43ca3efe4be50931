"""Media files behind unguessable ids, deleted after ``MEDIA_DAYS``."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from core.media_store import MediaStore
from tests.clock import FakeClock


async def test_media_is_found_by_its_id_only_and_purged_when_old(tmp_path: Path) -> None:
    clock = FakeClock()
    store = MediaStore(tmp_path / "media", clock=clock)
    old = await store.save(b"old", filename="fox.png")
    new = await store.save(b"new", filename="song.mp3")
    assert old != new and old.endswith(".png") and len(old.split(".")[0]) == 32

    found = await store.find(new)
    assert found is not None and found.path.read_bytes() == b"new" and found.mime_type == "audio/mpeg"
    assert await store.find("../media/" + new) is None
    assert await store.find(new.replace(new[0], "A" if new[0] != "A" else "B", 1)) is None

    eight_days_ago = (clock.utc() - timedelta(days=8)).timestamp()
    os.utime(tmp_path / "media" / old, (eight_days_ago, eight_days_ago))
    os.utime(tmp_path / "media" / new, (clock.utc().timestamp(),) * 2)
    assert await store.purge(timedelta(days=7)) == 1
    assert await store.find(old) is None and await store.find(new) is not None
