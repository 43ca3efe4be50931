"""``python -m bot run`` as a child process pointed at local fakes, stopped cleanly afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from bot.cli import event_loop_factory

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[1]
ROOMY = {
    # Admission caps high enough that nothing queues: the benchmark measures the bot, not its limits.
    "MAX_JOBS": "2000",
    "MAX_JOBS_PER_SCOPE": "2000",
    "MAX_QUEUE": "2000",
    "USER_REQUESTS_PER_MINUTE": "0",
    "DEFAULT_BUDGET_USD": "100000",
}
BOT_RUN = ("bot", "run")


def bot_env(directory: Path, **variables: str) -> dict[str, str]:
    """A clean environment: no live credentials from the caller, a fresh database, the given variables."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(directory),
        "PYTHONPATH": str(REPO),
        "DATABASE_URL": f"sqlite:///{directory}/bot.db",
        "LOG_LEVEL": "INFO",
    }
    return env | variables


@contextlib.asynccontextmanager
async def bot_process(
    directory: Path, env: dict[str, str], module: Sequence[str] = BOT_RUN
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Start the bot (``python -m <module...>``); on exit stop it with SIGINT (killed after 10 s).
    Its log goes to ``bot.log``."""
    log_path = directory / "bot.log"
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", *module, cwd=directory, env=env, stdout=log, stderr=log
        )
        try:
            yield process
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGINT)
                try:
                    await asyncio.wait_for(process.wait(), timeout=10)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                    await process.wait()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far (Linux ``/proc``)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def log_tail(directory: Path, lines: int = 20) -> str:
    path = directory / "bot.log"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def run_like_the_bot(main: Coroutine[Any, Any, T]) -> T:
    """Run in-process benchmarks on the event loop ``python -m bot`` uses (uvloop where installed)."""
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        return runner.run(main)
