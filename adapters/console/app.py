"""The terminal chat: reads lines, turns them into core requests, renders the answers. The console
is a scope of its own (``console:local``) and its user is that scope's admin, so every budget and
access command can be tried offline."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from adapters.console.surface import ConsoleSurface
from core.attachments import MAX_IMAGE_BYTES, NOTHING_CHARGED, AttachmentRefused, read_local_picture
from core.commands.dispatcher import CommandContext, Dispatcher, Reply
from core.engine import Engine
from core.parts import Access, Request, Scope
from core.render import render
from core.studio import BadOption, without_reference

CONSOLE_SCOPE = Scope("console", "local")
CONSOLE_USER = "console"
CONSOLE_CONVERSATION = "console:local"
"""The terminal is one long conversation, remembered across runs until ``/forget``."""
CONSOLE_HELP = "• `/imagine PROMPT --ref PATH`: start from a picture on this computer\n• `/quit`: leave"
BANNER = "Studio bot: type a request, or /help for commands. Ctrl-D or /quit to leave."


class ConsoleChat:
    """One console user (an admin of scope ``console:local``) talking to the engine."""

    def __init__(
        self,
        engine: Engine,
        *,
        out: TextIO,
        media_dir: Path,
        echo: bool,
        max_reference_bytes: int = MAX_IMAGE_BYTES,
    ) -> None:
        self._engine = engine
        self._max_reference_bytes = max_reference_bytes
        self._out = out
        self._media_dir = media_dir
        self._echo = echo
        self._commands = Dispatcher(
            ledger=engine.ledger,
            conversations=engine.conversations,
            intents=engine.intents,
            policies=engine.policies,
            dashboard=engine.dashboard,
            studio=engine.studio,
            last_media=True,
        )
        self._conversation = CONSOLE_CONVERSATION if engine.conversations is not None else None

    async def handle_line(self, line: str) -> bool:
        """Answer one line; return False when the user asked to quit."""
        line = line.strip()
        if not line:
            return True
        if self._echo:
            self._print(f"> {line}")
        if not line.startswith("/"):
            await self._ask(Request(**self._where(), text=line, access=Access(admin=True)))
            return True
        name, _, args = line[1:].partition(" ")
        if name.lower() in ("quit", "exit"):
            return False
        reference: str | None = None
        if name.lower() == "imagine":
            try:
                args, reference = without_reference(args)
            except BadOption as bad:
                self._print(str(bad))
                return True
        context = CommandContext(**self._where(), admin=True)
        outcome = await self._commands.dispatch(name, args, context)
        if isinstance(outcome, Request) and reference is not None:
            try:
                picture = await asyncio.to_thread(
                    read_local_picture, reference, max_bytes=self._max_reference_bytes
                )
            except AttachmentRefused as refused:
                self._print(f"{refused} {NOTHING_CHARGED}")
                return True
            outcome = replace(outcome, attachments=(picture,))
        if isinstance(outcome, Reply):
            extra = f"\n{CONSOLE_HELP}" if name.lower() == "help" else ""
            self._print(outcome.text + extra)
        else:
            await self._ask(outcome)
        return True

    def _where(self) -> dict[str, Any]:
        return {"scope": CONSOLE_SCOPE, "user": CONSOLE_USER, "conversation": self._conversation}

    async def _ask(self, request: Request) -> None:
        surface = ConsoleSurface(self._out, self._media_dir)
        await render(self._engine.handle(request), surface)

    def _print(self, text: str) -> None:
        self._out.write(text.rstrip("\n") + "\n")
        self._out.flush()


async def run_console(
    engine: Engine, *, media_dir: Path, stdin: TextIO | None = None, out: TextIO | None = None
) -> None:
    """Read lines until end of input, answering each in turn; Ctrl-C cancels cleanly."""
    stdin = stdin or sys.stdin
    out = out or sys.stdout
    interactive = stdin.isatty()
    chat = ConsoleChat(engine, out=out, media_dir=media_dir, echo=not interactive)
    if interactive:
        out.write(BANNER + "\n")
    lines = _read_lines(stdin)
    while True:
        if interactive:
            out.write("> ")
            out.flush()
        line = await lines.get()
        if line is None or not await chat.handle_line(line):
            break


def _read_lines(stdin: TextIO) -> asyncio.Queue[str | None]:
    """Lines from ``stdin`` via a daemon thread, so a blocked read never holds up exit."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def pump() -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed under us at exit
            for line in stdin:
                loop.call_soon_threadsafe(queue.put_nowait, line)
            loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=pump, name="console-stdin", daemon=True).start()
    return queue
