"""The terminal chat: reads lines, turns them into core requests, renders the answers."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from pathlib import Path
from typing import TextIO

from adapters.console.surface import ConsoleSurface
from core.budget import budget_command
from core.commands import ALL_COMMANDS, BY_NAME, help_text
from core.conversations import forget_command
from core.engine import Engine
from core.parts import Intent, Request, Scope
from core.render import render

CONSOLE_SCOPE = Scope("console", "local")
CONSOLE_USER = "console"
CONSOLE_CONVERSATION = "console:local"
"""The terminal is one long conversation, remembered across runs until ``/forget``."""
BANNER = "Studio bot: type a request, or /help for commands. Ctrl-D or /quit to leave."


class ConsoleChat:
    """One console user (an admin of scope ``console:local``) talking to the engine."""

    def __init__(self, engine: Engine, *, out: TextIO, media_dir: Path, echo: bool) -> None:
        self._engine = engine
        self._out = out
        self._media_dir = media_dir
        self._echo = echo

    async def handle_line(self, line: str) -> bool:
        """Answer one line; return False when the user asked to quit."""
        line = line.strip()
        if not line:
            return True
        if self._echo:
            self._print(f"> {line}")
        if not line.startswith("/"):
            await self._ask(line)
            return True
        name, _, args = line[1:].partition(" ")
        name = name.lower()
        if name in ("quit", "exit"):
            return False
        if name == "help":
            self._print(help_text(ALL_COMMANDS))
        elif name == "budget":
            self._print(
                await budget_command(
                    self._engine.ledger,
                    CONSOLE_SCOPE,
                    args,
                    user=CONSOLE_USER,
                    can_view=True,
                    can_change=True,
                )
            )
        elif name == "forget":
            self._print(await self._forget(args))
        elif name in BY_NAME and BY_NAME[name].intent is not None:
            await self._ask(args, BY_NAME[name].intent)
        else:
            self._print(f"Unknown command /{name}.\n{help_text(ALL_COMMANDS)}\n• `/help`, `/quit`")
        return True

    async def _ask(self, text: str, intent: Intent | None = None) -> None:
        request = Request(
            scope=CONSOLE_SCOPE,
            user=CONSOLE_USER,
            text=text,
            intent=intent,
            conversation=CONSOLE_CONVERSATION,
        )
        surface = ConsoleSurface(self._out, self._media_dir)
        await render(self._engine.handle(request), surface)

    async def _forget(self, args: str) -> str:
        store = self._engine.conversations
        if store is None:
            return "I don't remember conversations here, so there's nothing to forget."
        return await forget_command(store, CONSOLE_CONVERSATION, CONSOLE_SCOPE, args, can_forget_scope=True)

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
