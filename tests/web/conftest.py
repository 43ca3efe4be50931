"""The web API running for real: uvicorn on 127.0.0.1 port 0 inside the test, the app wired as in
production, the text and image providers pointed at a fake OpenAI server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters.web import WebServer
from bot.service import web_services
from bot.settings import load_settings
from bot.wiring import App, open_app
from core.api_keys import KeyStore
from core.ledger import Transaction
from core.parts import Scope
from tests.clock import FakeClock
from tests.fakes.fake_openai import FakeOpenAI

SCOPE = Scope("api", "team")


@dataclass
class Web:
    app: App
    server: WebServer
    fake: FakeOpenAI
    clock: FakeClock

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.server.port}"

    @property
    def keys(self) -> KeyStore:
        return self.server.services.keys

    async def key(self, name: str = "alice", scope: Scope = SCOPE) -> str:
        _, secret = await self.keys.create(name, scope)
        return secret

    async def rows(self, scope: Scope = SCOPE) -> list[Transaction]:
        """The scope's transactions, oldest first, once every answer in flight has ended."""
        await self.server.services.inflight.join()
        return list(reversed((await self.app.ledger.report(scope, recent=100)).recent))


@pytest.fixture
async def web(tmp_path: Path, fake_openai: FakeOpenAI) -> AsyncIterator[Web]:
    settings = load_settings(
        _env_file=None,
        database_url=f"sqlite:///{tmp_path}/bot.db",
        openai_api_key="sk-upstream",
        openai_base_url=fake_openai.base_url,
        openai_max_retries=0,
        image_provider="openai",
        song_provider="demo",
        demo_providers=True,
        media_dir=str(tmp_path / "media"),
        user_requests_per_minute=0,
        log_format="text",
    )
    clock = FakeClock()
    async with open_app(settings, role="service", clock=clock) as app:
        server = WebServer(web_services(app), host="127.0.0.1", port=0)
        await server.start()
        try:
            yield Web(app, server, fake_openai, clock)
        finally:
            await app.engine.shutdown(1)
            await server.stop()
