"""``python -m bench`` (``make bench``): every benchmark in turn, printed as markdown tables."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable

from bench import cadence, core, ledger, startup, ttft


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


SECTIONS: list[tuple[str, Callable[[], None]]] = [
    ("Time to first visible text (bot ÷ LLM time-to-first-token)", ttft.main),
    ("Edit cadence and 429s", cadence.main),
    ("Core throughput, event-loop lag and memory", core.main),
    ("Ledger reservations", ledger.main),
    ("Start-up", startup.main),
]


def main() -> None:
    started = time.monotonic()
    print(f"Machine: {machine()}\n")
    for title, section in SECTIONS:
        print(f"### {title}\n", flush=True)
        section()
        print(flush=True)
    print(f"_All benchmarks took {time.monotonic() - started:.0f} s._")


if __name__ == "__main__":
    main()
