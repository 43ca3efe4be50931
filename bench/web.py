"""The web API's time to first token: client request → first streamed content, ÷ the LLM's TTFT.

``python -m bot web`` runs as its own process with TEXT_PROVIDER=openai pointed at a paced fake LLM
that runs here, with the client, so both ends of every interval are read from one clock. 1.00
would be an API that costs nothing. Measured one at a time and 50 at once, over SSE
(``/v1/chat/completions``, ``stream: true``) and over a session WebSocket. With ``--litellm``
(the ``litellm`` command of a venv with ``litellm[proxy]``), a LiteLLM proxy in front of the
same fake is measured in the same run (its master key only: no database, no per-key budgets).

The SSE client is aiohttp. httpx's own connection pool (``--client httpx``) spends 150-200 ms
getting a burst of 50 requests out over kept-alive connections, even to a server that answers at
once, where aiohttp takes about 5 ms: with it the benchmark measured mostly itself at 50 at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx
from websockets.asyncio.client import connect

from bench.fakes import PacedOpenAI
from bench.process import ROOMY, bot_env, bot_process, log_tail

TTFT_S = 0.3
RATE = 20.0
TOKENS = 20
ONE_AT_A_TIME = 10
BURSTS = 3
CONCURRENCY = 50
LITELLM_KEY = "sk-litellm-bench-master-key-0123456789"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def wait_until_up(http: httpx.AsyncClient, url: str, headers: dict[str, str], directory: Path) -> None:
    for _ in range(600):
        try:
            if (await http.get(url, headers=headers)).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.05)
    raise RuntimeError(f"the server never came up:\n{log_tail(directory)}")


TO_LLM: list[float] = []
"""Seconds from each SSE request to the fake LLM receiving it: the server's overhead before the provider."""


class SseClient:
    """Streams chat completions and reports when the first content arrived: aiohttp by default,
    httpx's own pool with ``--client httpx`` (see the module docstring)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._aiohttp: aiohttp.ClientSession | None = None
        self._httpx: httpx.AsyncClient | None = None

    async def __aenter__(self) -> SseClient:
        if self.kind == "httpx":
            limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
            self._httpx = httpx.AsyncClient(timeout=60, limits=limits)
        else:
            connector = aiohttp.TCPConnector(limit=200)
            self._aiohttp = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(60))
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._httpx is not None:
            await self._httpx.aclose()
        if self._aiohttp is not None:
            await self._aiohttp.close()

    async def first_content(self, url: str, body: dict[str, object], key: str) -> float | None:
        """When the first non-empty content delta arrived (``time.monotonic``); reads to the end."""
        headers = {"Authorization": f"Bearer {key}"}
        first: float | None = None
        if self._httpx is not None:
            async with self._httpx.stream("POST", url, json=body, headers=headers) as response:
                response.raise_for_status()
                async for line in response.aiter_lines():
                    if first is None and _has_content(line):
                        first = time.monotonic()
            return first
        assert self._aiohttp is not None
        async with self._aiohttp.post(url, json=body, headers=headers) as reply:
            reply.raise_for_status()
            async for raw in reply.content:
                if first is None and _has_content(raw.decode()):
                    first = time.monotonic()
        return first


def _has_content(line: str) -> bool:
    if not line.startswith("data: {"):
        return False
    choices = json.loads(line[6:]).get("choices") or [{}]
    return bool((choices[0].get("delta") or {}).get("content"))


async def sse_first_token(
    http: SseClient, url: str, key: str, model: str, number: int, fake: PacedOpenAI | None = None
) -> float:
    """Seconds from sending the request to its first non-empty content delta; reads to the end."""
    question = f"question {number} {time.monotonic()}"
    body: dict[str, object] = {
        "model": model,
        "messages": [{"role": "user", "content": question}],
        "stream": True,
    }
    started = time.monotonic()
    first = await http.first_content(url, body, key)
    assert first is not None, "no content streamed"
    if fake is not None and question in fake.arrivals:
        TO_LLM.append(fake.arrivals[question] - started)
    return first - started


async def levels(measure: Callable[[int], Awaitable[float]]) -> dict[int, list[float]]:
    samples: dict[int, list[float]] = {1: [], CONCURRENCY: []}
    number = 0
    for _ in range(ONE_AT_A_TIME):
        number += 1
        samples[1].append(await measure(number))
    for _ in range(BURSTS):
        burst = [measure(number + index) for index in range(CONCURRENCY)]
        number += CONCURRENCY
        samples[CONCURRENCY] += await asyncio.gather(*burst)
        await asyncio.sleep(1.0)
    return samples


def row(label: str, level: int, values: list[float]) -> str:
    ordered = sorted(values)
    p50 = statistics.median(ordered)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (
        f"| {label} | {level} | {len(values)} | {p50 / TTFT_S:.3f} | {p95 / TTFT_S:.3f} | {p50 * 1000:.0f} |"
    )


async def bench_bot(fake: PacedOpenAI, directory: Path, client: str) -> list[str]:
    port = free_port()
    env = bot_env(
        directory,
        **ROOMY,
        TEXT_PROVIDER="openai",
        OPENAI_API_KEY="sk-bench",
        OPENAI_BASE_URL=fake.base_url,
        OPENAI_MAX_RETRIES="0",
        METRICS_PORT="0",
        LOG_FORMAT="text",
        LOG_LEVEL="WARNING",
    )
    created = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "bot", "api-key", "create", "--scope", "api:bench", "--name", "bench"],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    key = created.stdout.strip()
    base = f"http://127.0.0.1:{port}"
    lines: list[str] = []
    async with (
        bot_process(directory, env, ("bot", "web", "--port", str(port))),
        httpx.AsyncClient(timeout=60) as probe,
        SseClient(client) as http,
    ):
        await wait_until_up(probe, f"{base}/v1/models", {"Authorization": f"Bearer {key}"}, directory)
        await sse_first_token(http, f"{base}/v1/chat/completions", key, "studio-chat", 0)  # warm-up

        sse = await levels(
            lambda number: sse_first_token(
                http, f"{base}/v1/chat/completions", key, "studio-chat", number, fake
            )
        )
        lines += [row("bot: SSE", level, values) for level, values in sse.items()]
        alone, burst = TO_LLM[:ONE_AT_A_TIME], TO_LLM[ONE_AT_A_TIME:]
        lines.append(
            f"| (bot: SSE request → LLM request p50, 1 / {CONCURRENCY}) | | | | | "
            f"{statistics.median(alone) * 1000:.0f} / {statistics.median(burst) * 1000:.0f} |"
        )

        async with connect(f"ws://127.0.0.1:{port}/ws/session/bench") as websocket:
            await websocket.send(json.dumps({"type": "auth", "api_key": key}))
            await websocket.recv()
            waiting: dict[str, asyncio.Future[float]] = {}
            sent: dict[str, float] = {}

            async def reader() -> None:
                async for frame in websocket:
                    event = json.loads(frame)
                    tag = str(event.get("message_id"))
                    if event["type"] == "token" and tag in waiting and not waiting[tag].done():
                        waiting[tag].set_result(time.monotonic() - sent[tag])

            reading = asyncio.create_task(reader())

            async def ws_first_token(number: int) -> float:
                tag = f"m{number}"
                waiting[tag] = asyncio.get_running_loop().create_future()
                sent[tag] = time.monotonic()
                await websocket.send(
                    json.dumps({"type": "message", "text": f"/research topic {number}", "id": tag})
                )
                return await waiting[tag]

            ws = await levels(ws_first_token)
            reading.cancel()
        lines += [row("bot: WebSocket", level, values) for level, values in ws.items()]
    return lines


async def bench_litellm(fake: PacedOpenAI, directory: Path, executable: str, client: str) -> list[str]:
    port = free_port()
    config = directory / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: studio-chat\n"
        "    litellm_params:\n"
        "      model: openai/gpt-4o-mini\n"
        f"      api_base: {fake.base_url}\n"
        "      api_key: sk-bench\n"
    )
    log = (directory / "litellm.log").open("wb")
    # The local copy of LiteLLM's price table: no fetch from the internet at start-up.
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_MASTER_KEY": LITELLM_KEY}
    process = await asyncio.create_subprocess_exec(
        executable, "--config", str(config), "--port", str(port), stdout=log, stderr=log, env=env
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(timeout=60) as probe, SseClient(client) as http:
            await wait_until_up(
                probe, f"{base}/v1/models", {"Authorization": f"Bearer {LITELLM_KEY}"}, directory
            )
            await sse_first_token(http, f"{base}/v1/chat/completions", LITELLM_KEY, "studio-chat", 0)
            samples = await levels(
                lambda number: sse_first_token(
                    http, f"{base}/v1/chat/completions", LITELLM_KEY, "studio-chat", number
                )
            )
        return [row("LiteLLM proxy: SSE", level, values) for level, values in samples.items()]
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        await process.wait()
        log.close()


async def main(litellm_python: str | None, client: str, runs: int = 1) -> None:
    fake = PacedOpenAI(ttft_s=TTFT_S, rate=RATE, tokens=TOKENS)
    await fake.start()
    lines: list[str] = []
    try:
        for _ in range(runs):  # each run a fresh bot process and database
            with tempfile.TemporaryDirectory() as temporary:
                directory = Path(temporary)
                TO_LLM.clear()
                lines += await bench_bot(fake, directory, client)
                if litellm_python:
                    lines += await bench_litellm(fake, directory, litellm_python, client)
    finally:
        await fake.close()
    print(
        f"LLM time to first token {TTFT_S * 1000:.0f} ms; ratio = time to first streamed text ÷ that; "
        f"SSE client {client}.\n"
    )
    print("| server | concurrent | samples | p50 ratio | p95 ratio | p50 ms |")
    print("|---|---|---|---|---|---|")
    print("\n".join(lines))
    if runs > 1:
        sse_burst = f"| bot: SSE | {CONCURRENCY} |"
        burst = [line.split("|")[4].strip() for line in lines if line.startswith(sse_burst)]
        print(f"\nSSE {CONCURRENCY} at once, p50 ratio of each run: {' / '.join(burst)}")
    if not litellm_python:
        print("\n_LiteLLM proxy not measured: pass --litellm PATH/TO/litellm (a venv with litellm[proxy])._")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--litellm", metavar="COMMAND", help="the litellm command of litellm[proxy]")
    parser.add_argument(
        "--client", choices=("aiohttp", "httpx"), default="aiohttp", help="the SSE client (default aiohttp)"
    )
    parser.add_argument(
        "--runs", type=int, default=1, help="runs in a row, each with a fresh bot (machines' speed varies)"
    )
    arguments = parser.parse_args()
    asyncio.run(main(arguments.litellm, arguments.client, arguments.runs))
