"""Generated images and songs kept as files for a while, each behind an id nobody can guess.

The API answers with links (``/v1/media/{id}``) instead of uploads: the id is 192 random bits and
the file's extension, so holding a link is the permission to fetch it. Files older than
``MEDIA_DAYS`` are deleted by the periodic purge. File work runs in a thread: never on the loop.
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from core.clock import Clock

log = logging.getLogger(__name__)

MEDIA_ID = re.compile(r"[A-Za-z0-9_-]{32}\.[a-z0-9]{1,5}")
FALLBACK_SUFFIX = "bin"


@dataclass(frozen=True, slots=True)
class StoredMedia:
    path: Path
    mime_type: str


class MediaStore:
    """A folder of media files named by unguessable ids."""

    def __init__(self, folder: Path, *, clock: Clock) -> None:
        self._folder = folder
        self._clock = clock

    async def save(self, data: bytes, *, filename: str) -> str:
        """Store ``data``; returns its id (which keeps ``filename``'s extension)."""
        suffix = filename.rpartition(".")[2].lower() if "." in filename else FALLBACK_SUFFIX
        if not re.fullmatch(r"[a-z0-9]{1,5}", suffix):
            suffix = FALLBACK_SUFFIX
        media_id = f"{secrets.token_urlsafe(24)}.{suffix}"
        await asyncio.to_thread(self._write, media_id, data)
        return media_id

    def _write(self, media_id: str, data: bytes) -> None:
        self._folder.mkdir(parents=True, exist_ok=True)
        with (self._folder / media_id).open("xb") as file:
            file.write(data)

    async def find(self, media_id: str) -> StoredMedia | None:
        """The file behind ``media_id``, or ``None`` for an id that is malformed or gone."""
        if not MEDIA_ID.fullmatch(media_id):
            return None
        path = self._folder / media_id
        if not await asyncio.to_thread(path.is_file):
            return None
        mime_type = mimetypes.guess_type(media_id)[0] or "application/octet-stream"
        return StoredMedia(path, mime_type)

    async def purge(self, older_than: timedelta) -> int:
        """Delete files stored longer ago than ``older_than``; returns how many."""
        cutoff = (self._clock.utc() - older_than).timestamp()
        removed = await asyncio.to_thread(self._delete_before, cutoff)
        if removed:
            log.info("deleted %d media files older than %s", removed, older_than)
        return removed

    def _delete_before(self, cutoff: float) -> int:
        if not self._folder.is_dir():
            return 0
        removed = 0
        for path in self._folder.iterdir():
            if MEDIA_ID.fullmatch(path.name) and path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
                removed += 1
        return removed
