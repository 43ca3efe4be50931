"""``python -m bench`` (``make bench``): every benchmark in turn, printed as markdown tables."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time


def machine() -> str:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {model}, Python {platform.python_version()}, {platform.system()}"


SECTIONS: list[tuple[str, str]] = [
    ("Time to first visible text (bot ÷ LLM time-to-first-token)", "ttft"),
    ("Final edit lag (provider's last token → platform has the final text)", "lag"),
    ("Edit cadence and 429s", "cadence"),
    ("Core throughput, event-loop lag and memory", "core"),
    ("Ledger reservations", "ledger"),
    ("Start-up", "startup"),
    ("Web API time to first token (SSE and WebSocket ÷ LLM time-to-first-token)", "web"),
]


def main() -> None:
    started = time.monotonic()
    print(f"Machine: {machine()}\n")
    for title, module in SECTIONS:
        print(f"### {title}\n", flush=True)
        # Each in a fresh interpreter, so no figure depends on what ran before it (the memory
        # per job came out at a third when earlier sections had left freed heap to reuse).
        subprocess.run([sys.executable, "-m", f"bench.{module}"], check=True)
        print(flush=True)
    print(f"_All benchmarks took {time.monotonic() - started:.0f} s._")


if __name__ == "__main__":
    main()
