"""The test fakes with the knobs benchmarks need: a paced LLM, timestamps, many channels, rate limits."""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.fake_discord import API_PREFIX, FakeDiscord, Json
from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.fake_slack import FakeSlack

MARK = "Lorem"
"""The first word of every streamed answer: a platform message containing it carries streamed text."""


class PacedOpenAI(FakeOpenAI):
    """Chat streams whose first token comes ``ttft_s`` after the request and the rest at ``rate``/s."""

    def __init__(self, *, ttft_s: float = 0.3, rate: float = 20.0, tokens: int = 40) -> None:
        super().__init__()
        self.ttft_s = ttft_s
        self.rate = rate
        self.tokens = tokens
        self.streams = 0
        self.arrivals: dict[str, float] = {}
        """When each prompt (the last message's content) reached the fake."""
        self.last_tokens: dict[str, float] = {}
        """When the last token of each prompt's answer was written."""

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        body = await request.json()
        self.streams += 1
        self.arrivals[str(body["messages"][-1]["content"])] = started
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        words = [MARK] + [f"ipsum{n}" for n in range(1, self.tokens)]
        for number, word in enumerate(words):
            # Paced against the start, so a busy fake does not slow the stream down cumulatively.
            due = started + self.ttft_s + number / self.rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            delta = {"content": word + " "}
            await response.write(_chunk(body, [{"index": 0, "delta": delta, "finish_reason": None}]))
        self.last_tokens[str(body["messages"][-1]["content"])] = time.monotonic()
        await response.write(_chunk(body, [{"index": 0, "delta": {}, "finish_reason": "stop"}]))
        usage = {"prompt_tokens": 50, "completion_tokens": self.tokens, "total_tokens": 50 + self.tokens}
        await response.write(_chunk(body, [], usage))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def _chunk(body: Json, choices: list[Any], usage: dict[str, int] | None = None) -> bytes:
    payload = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": body.get("model", "m"),
        "choices": choices,
        "usage": usage,
    }
    return f"data: {json.dumps(payload)}\n\n".encode()


@dataclass
class Bucket:
    """``limit`` requests per ``window_s``, refilled all at once when the window ends (as Discord does)."""

    limit: int
    window_s: float
    remaining: int = 0
    resets_at: float = 0.0

    def take(self, now: float) -> bool:
        if now >= self.resets_at:
            self.remaining = self.limit
            self.resets_at = now + self.window_s
        if self.remaining <= 0:
            return False
        self.remaining -= 1
        return True

    def reset_after(self, now: float) -> float:
        return max(0.0, self.resets_at - now)


class BenchDiscord(FakeDiscord):
    """A fake Discord with ``channels`` text channels and, optionally, Discord's rate limits:
    ``per_channel`` requests per ``window_s`` per route and channel (sends and edits counted
    apart), and ``global_per_s`` requests a second for the whole bot, answered with 429 beyond,
    and ``X-RateLimit-*`` headers on every answer so discord.py can pace itself."""

    def __init__(
        self,
        *,
        channels: int = 1,
        per_channel: int | None = None,
        window_s: float = 5.0,
        global_per_s: int | None = None,
    ) -> None:
        super().__init__()
        self.channel_ids = [self.channel_id] + [self.snowflake() for _ in range(channels - 1)]
        self._per_channel = per_channel
        self._window_s = window_s
        self._global = Bucket(global_per_s, 1.0) if global_per_s else None
        self._buckets: dict[tuple[str, str], Bucket] = {}
        self.limited: list[tuple[str, str, bool]] = []
        """Every 429 answered: method, path, and whether it was the global limit."""

    async def __aenter__(self) -> BenchDiscord:
        await super().__aenter__()
        return self

    def guild_payload(self, guild_id: str | None = None) -> Json:
        payload = super().guild_payload(guild_id)
        if guild_id not in (None, self.guild_id):
            return payload
        template = payload["channels"][0]
        payload["channels"] = [
            {**template, "id": channel, "name": f"bench-{number}", "position": number}
            for number, channel in enumerate(self.channel_ids)
        ]
        return payload

    async def _rest(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["tail"]
        now = time.monotonic()
        if self._global is not None and not self._global.take(now):
            return self._limited(request, path, self._global.reset_after(now), scope="global")
        bucket = self._bucket(request.method, path)
        if bucket is not None and not bucket.take(now):
            return self._limited(request, path, bucket.reset_after(now), scope="user")
        response = await super()._rest(request)
        if bucket is not None:
            response.headers.update(
                {
                    "X-RateLimit-Limit": str(bucket.limit),
                    "X-RateLimit-Remaining": str(bucket.remaining),
                    "X-RateLimit-Reset-After": f"{bucket.reset_after(now):.3f}",
                    "X-RateLimit-Reset": f"{time.time() + bucket.reset_after(now):.3f}",
                    "X-RateLimit-Bucket": f"{request.method}-{path.split('/')[2]}",
                }
            )
        return response

    def _bucket(self, method: str, path: str) -> Bucket | None:
        if self._per_channel is None or not path.startswith("/channels/"):
            return None
        key = (method, path.split("/")[2])
        if key not in self._buckets:
            self._buckets[key] = Bucket(self._per_channel, self._window_s)
        return self._buckets[key]

    def _limited(self, request: web.Request, path: str, retry_after: float, *, scope: str) -> web.Response:
        self.limited.append((request.method, path, scope == "global"))
        body = {
            "message": "You are being rate limited.",
            "retry_after": retry_after,
            "global": scope == "global",
        }
        headers = {"Content-Type": "application/json", "Via": "1.1 google", "X-RateLimit-Scope": scope}
        if scope == "global":
            headers["X-RateLimit-Global"] = "true"
        else:
            headers |= {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": f"{retry_after:.3f}"}
        return web.Response(body=json.dumps(body).encode(), status=429, headers=headers)


@dataclass
class Stamped:
    """One Web API call with the time it arrived."""

    at: float
    method: str
    args: dict[str, Any]
    thread_ts: str | None


@dataclass
class SlackLimits:
    """Per-channel ``chat.postMessage`` (about 1 a second, short bursts allowed) and per-message
    stream appends/updates, answered with HTTP 429 and ``Retry-After`` beyond."""

    post_per_s: float = 1.0
    post_burst: int = 3
    writes_per_message_per_s: float = 1.0
    writes_burst: int = 3
    buckets: dict[str, deque[float]] = field(default_factory=dict)


class BenchSlack(FakeSlack):
    """A fake Slack that timestamps every Web API call and can enforce ``SlackLimits``."""

    def __init__(self, *, limits: SlackLimits | None = None) -> None:
        super().__init__()
        self.stamped: list[Stamped] = []
        self.limits = limits
        self.limited: list[str] = []

    async def __aenter__(self) -> BenchSlack:
        await super().__aenter__()
        return self

    def _answer(self, method: str, args: dict[str, Any], token: str) -> dict[str, Any]:
        result = super()._answer(method, args, token)
        ts = str(args.get("ts") or result.get("ts") or "")
        message = self.messages.get(ts)
        thread = message.thread_ts if message is not None else args.get("thread_ts")
        self.stamped.append(Stamped(time.monotonic(), method, args, thread))
        return result

    async def _api(self, request: web.Request) -> web.Response:
        if self.limits is not None:
            method = request.match_info["method"]
            args: dict[str, Any] = dict(request.query)
            if request.content_type == "application/json":
                args.update(await request.json())
            else:
                args.update({key: str(value) for key, value in (await request.post()).items()})
            wait = self._over_limit(method, args)
            if wait is not None:
                self.limited.append(method)
                return web.json_response(
                    {"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": str(wait)}
                )
        return await super()._api(request)

    def _over_limit(self, method: str, args: dict[str, Any]) -> int | None:
        assert self.limits is not None
        if method == "chat.postMessage":
            key, rate, burst = f"post:{args.get('channel')}", self.limits.post_per_s, self.limits.post_burst
        elif method in ("chat.appendStream", "chat.update"):
            key = f"write:{args.get('ts')}"
            rate, burst = self.limits.writes_per_message_per_s, self.limits.writes_burst
        else:
            return None
        now = time.monotonic()
        window = self.limits.buckets.setdefault(key, deque())
        span = burst / rate
        while window and window[0] <= now - span:
            window.popleft()
        if len(window) >= burst:
            return max(1, round(window[0] + span - now))
        window.append(now)
        return None


__all__ = ["API_PREFIX", "MARK", "BenchDiscord", "BenchSlack", "PacedOpenAI", "SlackLimits", "Stamped"]
