"""Terminal adapter: chat with the bot locally, media saved to a folder."""

from adapters.console.app import CONSOLE_SCOPE, ConsoleChat, run_console
from adapters.console.surface import ConsoleSurface

__all__ = ["CONSOLE_SCOPE", "ConsoleChat", "ConsoleSurface", "run_console"]
