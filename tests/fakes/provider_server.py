"""What the provider fakes share: a scripted aiohttp app on 127.0.0.1, a request log, media files
(and hostile ones: redirects elsewhere, bodies that never end)."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class Reply:
    """A scripted HTTP answer. ``body`` is sent as JSON unless it is ``str`` (sent verbatim)."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def response(self) -> web.Response:
        if isinstance(self.body, str):
            return web.Response(status=self.status, text=self.body, headers=self.headers)
        return web.json_response(
            self.body if self.body is not None else {}, status=self.status, headers=self.headers
        )


@dataclass(frozen=True)
class Seen:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


class ProviderServer:
    """Subclasses add routes in ``routes``; ``start`` binds port 0, ``close`` frees everything."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.media: dict[str, bytes] = {}
        self.media_types: dict[str, str] = {}
        self.redirects: dict[str, str] = {}
        self.endless: dict[str, tuple[bytes, str, int | None]] = {}
        self.streamed = 0
        """Bytes of endless bodies written so far."""
        self._runner: web.AppRunner | None = None
        self.origin = ""

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        app = web.Application(middlewares=[self._record])
        app.router.add_get("/media/{name}", self._media)
        self.routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.origin = f"http://{host}:{port}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def requests(self, path: str) -> list[Seen]:
        """Requests to ``path`` (media downloads included), oldest first."""
        return [seen for seen in self.seen if seen.path == path]

    def add_media(self, name: str, data: bytes, mime_type: str) -> str:
        self.media[name] = data
        self.media_types[name] = mime_type
        return f"{self.origin}/media/{name}"

    def add_redirect(self, name: str, location: str, *, status: int = 302) -> str:
        """``/media/{name}`` answers ``status`` pointing at ``location``."""
        self.redirects[name] = f"{status} {location}"
        return f"{self.origin}/media/{name}"

    def add_endless(self, name: str, prefix: bytes, mime_type: str, *, declared: int | None = None) -> str:
        """``/media/{name}`` streams ``prefix`` then zeros until the client hangs up, declaring
        ``declared`` as its Content-Length if given (else chunked)."""
        self.endless[name] = (prefix, mime_type, declared)
        return f"{self.origin}/media/{name}"

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        self.seen.append(Seen(request.method, request.path, dict(request.query), dict(request.headers), body))
        response: web.StreamResponse = await handler(request)
        return response

    async def _media(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name in self.redirects:
            status, location = self.redirects[name].split(" ", 1)
            return web.Response(status=int(status), headers={"location": location})
        if name in self.endless:
            return await self._endless(request, *self.endless[name])
        if name not in self.media:
            return web.json_response({"error": "NoSuchKey"}, status=404)
        return web.Response(body=self.media[name], content_type=self.media_types[name])

    async def _endless(
        self, request: web.Request, prefix: bytes, mime_type: str, declared: int | None
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": mime_type})
        if declared is not None:
            response.content_length = declared
        await response.prepare(request)
        chunk = prefix + bytes(64 * 1024 - len(prefix))
        try:
            while True:
                await response.write(chunk)
                self.streamed += len(chunk)
                chunk = bytes(64 * 1024)
                await asyncio.sleep(0)
        except ConnectionError:
            return response


def take(script: deque[Any], default: Any) -> Any:
    """The next scripted answer; the last one repeats once the script runs out."""
    if len(script) > 1:
        return script.popleft()
    return script[0] if script else default
