"""A fake Black Forest Labs API: submit answers ``{id, polling_url}``, polls follow a script."""

from __future__ import annotations

from collections import deque
from typing import Any

from aiohttp import web

from tests.fakes.provider_server import ProviderServer, Reply, take

KEY = "bfl-test-key"
JPEG = b"\xff\xd8\xff\xe0" + b"fake jpeg body" * 10


class FakeBfl(ProviderServer):
    """``POST /v1/{model}`` then ``GET /v1/get_result?id=…&token=…`` (the token proves the exact URL
    was polled). ``polls`` holds statuses (``"Pending"``, ``"Ready"``, …) or ``Reply`` objects; the
    last one repeats. A ``Ready`` poll points at ``sample`` under ``/media/``."""

    def __init__(self) -> None:
        super().__init__()
        self.submits: deque[Reply] = deque()
        self.polls: deque[str | Reply] = deque(["Pending", "Pending", "Ready"])
        self.sample = "sample.jpg"

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    async def start(self) -> None:
        await super().start()
        self.add_media("sample.jpg", JPEG, "image/jpeg")

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/{model}", self._submit)
        app.router.add_get("/v1/get_result", self._poll)

    def polling_url(self) -> str:
        return f"{self.origin}/v1/get_result?id=job-1&token=signed-123"

    async def _submit(self, request: web.Request) -> web.Response:
        if request.headers.get("x-key") != KEY:
            return web.json_response({"detail": "Not authenticated"}, status=403)
        reply: Reply = take(self.submits, Reply(body={"id": "job-1", "polling_url": self.polling_url()}))
        return reply.response()

    async def _poll(self, request: web.Request) -> web.Response:
        if request.headers.get("x-key") != KEY or request.query.get("token") != "signed-123":
            return web.json_response({"detail": "Not authenticated"}, status=403)
        answer = take(self.polls, "Pending")
        if isinstance(answer, Reply):
            return answer.response()
        body: dict[str, Any] = {"id": "job-1", "status": answer, "result": None, "progress": None}
        if answer == "Ready":
            body["result"] = {"sample": f"{self.origin}/media/{self.sample}", "prompt": "p"}
        if answer == "Error":
            body["details"] = {"reason": "GPU fell over"}
        return web.json_response(body)
