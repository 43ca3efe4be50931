"""Start-up: seconds from process start until the bot is ready (the console's provider line)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

RUNS = 5


def time_to_ready(directory: str) -> float:
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("OPENAI_", "BFL_", "SONG_"))
    }
    env["DATABASE_URL"] = f"sqlite:///{directory}/startup.db"
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "chat"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        cwd=directory,
        env=env,
    )
    assert process.stderr is not None and process.stdin is not None
    line = process.stderr.readline()  # "[providers: ...]" is printed once the app is open
    ready = time.perf_counter() - started
    process.stdin.close()
    process.wait(timeout=30)
    if not line.startswith("[providers:"):
        raise RuntimeError(f"unexpected start-up output: {line!r}")
    return ready


def run() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as directory:
        time_to_ready(directory)  # warm the bytecode cache
        samples = [time_to_ready(directory) for _ in range(RUNS)]
    return {"startup_median_s": statistics.median(samples), "startup_max_s": max(samples)}


def main() -> None:
    figures = run()
    print("| figure | value |")
    print("|---|---:|")
    print(f"| start-up to ready, console (median of {RUNS}) | {figures['startup_median_s']:.2f} s |")
    print(f"| start-up to ready, console (worst of {RUNS}) | {figures['startup_max_s']:.2f} s |")


if __name__ == "__main__":
    main()
