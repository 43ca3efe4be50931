"""A terminal as a Surface: streamed text is printed as it grows, media is saved to a folder."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import TextIO

from core.pacing import UNLIMITED
from core.parts import Audio, Image, Media
from core.render import MessageState, View


class ConsoleSurface:
    """Prints one conversation. Terminals have no edit, so each edit prints only what is new."""

    max_chars = 100_000
    pace = UNLIMITED

    def __init__(self, out: TextIO, media_dir: Path) -> None:
        self._out = out
        self._media_dir = media_dir
        self._printed = ""
        self._status: str | None = None
        self.saved: list[Path] = []

    async def post(self, view: View) -> None:
        self._end_line()
        self._printed = ""
        self._status = None
        self._show(view)

    async def edit(self, view: View) -> None:
        self._show(view)

    async def upload(self, media: Media, *, replaces_progress: bool) -> None:
        self._end_line()
        path = self._save(media)
        if isinstance(media, Image):
            self._write(f"🖼  Image saved: {path}\n")
            if media.seed is not None:
                self._write(f"   seed {media.seed}\n")
            if media.actions:
                self._write(f"   {_ACTIONS_HINT}\n")
        elif isinstance(media, Audio):
            self._write(f"🎵 “{media.title}” saved: {path}\n")
            if media.cover is not None:
                self._write(f"   cover art: {self._save(media.cover)}\n")
            if media.actions:
                self._write("   `/another` makes another take\n")
            if media.lyrics:
                self._write("\n" + media.lyrics.rstrip() + "\n")
        self._printed = ""
        self._status = None

    def _show(self, view: View) -> None:
        if view.status and view.status != self._status:
            self._end_line()
            self._write(f"⏳ {view.status}\n")
        self._status = view.status
        text = view.text
        if text.startswith(self._printed):
            self._write(text[len(self._printed) :])
        else:
            self._end_line()
            self._write(text)
        self._printed = text
        if view.state is not MessageState.STREAMING:
            self._end_line()

    def _end_line(self) -> None:
        if self._printed and not self._printed.endswith("\n"):
            self._write("\n")
            self._printed += "\n"

    def _save(self, media: Media) -> Path:
        self._media_dir.mkdir(parents=True, exist_ok=True)
        stem, dot, suffix = media.filename.rpartition(".")
        if not dot:
            stem, suffix = media.filename, "bin"
        for number in itertools.count(1):
            name = f"{stem}.{suffix}" if number == 1 else f"{stem}-{number}.{suffix}"
            path = self._media_dir / name
            try:
                with path.open("xb") as file:
                    file.write(media.data)
            except FileExistsError:
                continue
            self.saved.append(path)
            return path
        raise AssertionError("unreachable")

    def _write(self, text: str) -> None:
        if text:
            self._out.write(text)
            self._out.flush()


_ACTIONS_HINT = "`/reroll`, `/vary [subtle|strong]`, `/upscale` or `/edit INSTRUCTION` work on it"
