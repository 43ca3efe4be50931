"""Fake song APIs: the hosted udioapi shape (``/generate``, ``/feed``) and self-hosted suno-api."""

from __future__ import annotations

from collections import deque
from typing import Any

from aiohttp import web

from tests.fakes.provider_server import ProviderServer, Reply, take

KEY = "song-test-key"
MP3 = b"ID3\x04\x00" + b"fake mp3 frames" * 20
COVER = b"\xff\xd8\xff\xe0" + b"cover art" * 10
LYRICS = "[Verse]\nHeave away, my bonny cats\n[Chorus]\nWhiskers to the wind"


class FakeUdio(ProviderServer):
    """``POST /api/generate`` → ``workId``; ``GET /api/feed?workId=`` walks through ``feed``
    (``new``, ``text``, ``first``, ``complete``, or a ``Reply``); the last entry repeats."""

    def __init__(self) -> None:
        super().__init__()
        self.submits: deque[Reply] = deque()
        self.feed: deque[str | Reply] = deque(["new", "text", "first", "complete"])
        self.fail_message = ""
        self.audio = "song.mp3"
        self.cover = "cover.jpg"

    @property
    def base_url(self) -> str:
        return f"{self.origin}/api"

    async def start(self) -> None:
        await super().start()
        self.add_media("song.mp3", MP3, "audio/mpeg")
        self.add_media("cover.jpg", COVER, "image/jpeg")

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/api/generate", self._generate)
        app.router.add_get("/api/feed", self._feed)

    async def _generate(self, request: web.Request) -> web.Response:
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return web.json_response({"code": 401, "message": "invalid api key"}, status=401)
        reply: Reply = take(self.submits, Reply(body={"code": 200, "message": "success", "workId": "work-7"}))
        return reply.response()

    async def _feed(self, request: web.Request) -> web.Response:
        if request.headers.get("authorization") != f"Bearer {KEY}" or request.query.get("workId") != "work-7":
            return web.json_response({"code": 404, "message": "no such work"}, status=404)
        answer = take(self.feed, "new")
        if isinstance(answer, Reply):
            return answer.response()
        done = answer == "complete"
        clip = {
            "id": "clip-1",
            "audio_url": f"{self.origin}/media/{self.audio}" if done else "",
            "image_url": f"{self.origin}/media/{self.cover}" if self.cover else "",
            "title": "Cats at Sea" if answer != "new" else "",
            "prompt": LYRICS if answer != "new" else "",
            "tags": "sea shanty",
            "duration": 146.08 if done else "",
            "model_name": "chirp-v3-5",
            "fail_message": self.fail_message,
            "error_message": "",
        }
        return web.json_response({"type": answer, "response_data": [clip, {**clip, "id": "clip-2"}]})


class FakeSunoApi(ProviderServer):
    """``POST /api/generate`` → clips; ``GET /api/get?ids=`` walks clip ``status`` through
    ``statuses`` (``submitted``, ``queued``, ``streaming``, ``complete``, ``error``)."""

    def __init__(self) -> None:
        super().__init__()
        self.statuses: deque[str | Reply] = deque(["submitted", "queued", "streaming", "complete"])

    async def start(self) -> None:
        await super().start()
        self.add_media("live-stream.mp3", b"partial stream", "audio/mpeg")
        self.add_media("final.mp3", MP3, "audio/mpeg")
        self.add_media("cover.jpg", COVER, "image/jpeg")

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/api/generate", self._generate)
        app.router.add_get("/api/get", self._get)

    def _clips(self, status: str) -> list[dict[str, Any]]:
        audio = {"streaming": "live-stream.mp3", "complete": "final.mp3"}.get(status)
        return [
            {
                "id": clip_id,
                "status": status,
                "title": "Cats at Sea",
                "lyric": LYRICS,
                "audio_url": f"{self.origin}/media/{audio}" if audio else "",
                "image_url": f"{self.origin}/media/cover.jpg",
                "duration": "146.1" if status == "complete" else None,
                "error_message": "Suno refused: the lyrics were flagged by moderation"
                if status == "error"
                else None,
            }
            for clip_id in ("a1", "b2")
        ]

    async def _generate(self, request: web.Request) -> web.Response:
        return web.json_response(self._clips("submitted"))

    async def _get(self, request: web.Request) -> web.Response:
        if request.query.get("ids") != "a1,b2":
            return web.json_response({"error": "unknown ids"}, status=404)
        answer = take(self.statuses, "submitted")
        if isinstance(answer, Reply):
            return answer.response()
        return web.json_response(self._clips(answer))
