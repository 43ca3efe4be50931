"""Browser tests: Debian's Chromium driven by Playwright against the bot's real web server.

One browser for the whole session (its own event loop); each test gets a fresh app on a temporary
database, a fresh browser context, and fails if the page asks any host but the bot for anything.
Without /usr/bin/chromium (``scripts/ensure-chromium.sh`` installs it as root) the tests skip and
say why, except under CI, where they must run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import discord
import pytest
import pytest_asyncio

from adapters.discord import DiscordConfig, StudioClient
from adapters.discord.runner import point_at
from adapters.web import WebServer
from bot.service import web_services
from bot.settings import load_settings
from bot.wiring import App, open_app
from tests.discord.conftest import AutoClock
from tests.fakes.fake_discord import EPHEMERAL, FakeDiscord

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "img"
START = datetime(2026, 1, 20, 15, 30, tzinfo=UTC)
MANAGE_GUILD = 1 << 5
ADMIN = FakeDiscord.user("900", "admin")
OPERATOR_TOKEN = "operator-token-for-tests"

try:
    from playwright.async_api import Browser, BrowserContext, Page, Request, Route, async_playwright
except ImportError:  # pragma: no cover - the dev extras install it
    async_playwright = None  # type: ignore[assignment]

# Without playwright (installed by the dev extras) the test modules can't even be imported.
collect_ignore_glob = ["test_*.py"] if async_playwright is None else []


def _unavailable() -> str | None:
    if async_playwright is None:
        return "playwright is not installed (pip install -e '.[dev]')"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing: run scripts/ensure-chromium.sh as root (make test does)"
    return None


class WallClock:
    """Real time for sleeping (the demo streams as it would), wall time starting at ``START`` and
    moved forward by ``advance`` (link expiry) or set back for seeding older transactions."""

    def __init__(self, start: datetime = START) -> None:
        self._start = start
        self._origin = time.monotonic()
        self._offset = timedelta()

    def now(self) -> float:
        return time.monotonic()

    def utc(self) -> datetime:
        return self._start + timedelta(seconds=time.monotonic() - self._origin) + self._offset

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def advance(self, delta: timedelta) -> None:
        self._offset += delta

    @contextlib.contextmanager
    def at(self, moment: datetime) -> Any:
        """Wall time is ``moment`` inside the block (seeding the ledger's history)."""
        saved = self._offset
        self._offset = moment - self.utc() + saved
        try:
            yield
        finally:
            self._offset = saved


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    reason = _unavailable()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests must run in CI: {reason}")
        pytest.skip(f"browser tests skipped: {reason}")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class Site:
    app: App
    server: WebServer
    clock: WallClock
    tmp: Path
    elsewhere: list[str] = field(default_factory=list)
    """Requests the pages made to any other host (the tests fail on any)."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    async def context(self, browser: Browser) -> BrowserContext:
        context = await browser.new_context(
            viewport={"width": 1100, "height": 900}, accept_downloads=True, base_url=self.url
        )
        origin = self.url

        async def guard(route: Route, request: Request) -> None:
            if request.url.startswith((origin + "/", "data:", "blob:")) or request.url == origin:
                await route.continue_()
            else:
                self.elsewhere.append(request.url)
                await route.abort()

        await context.route("**/*", guard)
        return context


@pytest_asyncio.fixture(loop_scope="session")
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    settings = load_settings(
        _env_file=None,
        database_url=f"sqlite:///{tmp_path}/bot.db",
        media_dir=str(tmp_path / "media"),
        text_provider="demo",
        image_provider="demo",
        song_provider="demo",
        demo_delay_s=0.01,
        user_requests_per_minute=0,
        web_admin_token=OPERATOR_TOKEN,
        metrics_port=0,
        log_format="text",
    )
    clock = WallClock()
    async with open_app(settings, role="service", clock=clock) as app:
        server = WebServer(web_services(app), host="127.0.0.1", port=0)
        await server.start()
        site = Site(app, server, clock, tmp_path)
        try:
            yield site
        finally:
            await app.engine.shutdown(1)
            await server.stop()
    assert not site.elsewhere, f"the pages asked other hosts for {site.elsewhere}"


@pytest_asyncio.fixture(loop_scope="session")
async def page(site: Site, browser: Browser) -> AsyncIterator[Page]:
    context = await site.context(browser)
    try:
        yield await context.new_page()
    finally:
        await context.close()


async def dashboard_link_from_discord(site: Site, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """Run the real Discord client against the fake Discord, as an admin type `/budget dashboard`,
    and return the guild's id and the link from the private reply."""
    monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)
    monkeypatch.setattr(
        discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    )
    virtual = AutoClock()
    async with FakeDiscord(clock=virtual.now) as fake:
        config = DiscordConfig(
            token=fake.token, api_url=fake.api_url, gateway_url=fake.gateway_url, guild_ready_timeout=0.01
        )
        point_at(config)
        client = StudioClient(config, engine=site.app.engine, ledger=site.app.ledger, clock=virtual)

        async def run() -> None:
            async with client:
                await client.start(config.token)

        task = asyncio.create_task(run())
        try:
            await asyncio.wait_for(client.wait_until_ready(), 10)
            interaction = await fake.slash(
                "budget",
                [{"name": "dashboard", "type": 1, "options": []}],
                user=ADMIN,
                permissions=MANAGE_GUILD,
            )
            await fake.wait_until(lambda: bool(interaction.callbacks))
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    [callback] = interaction.callbacks
    assert callback["data"]["flags"] & EPHEMERAL, "the link is sent privately"
    text = str(callback["data"]["embeds"][0]["description"])
    match = re.search(r"https?://\S+", text)
    assert match, text
    assert fake.guild_id is not None
    return fake.guild_id, match.group(0)


def save_screenshot(data: bytes, name: str, tmp: Path) -> Path:
    """Keep a screenshot with the test's files, and in docs/img when SAVE_SCREENSHOTS=1."""
    target = (SCREENSHOTS if os.environ.get("SAVE_SCREENSHOTS") == "1" else tmp) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return target


UNLABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button')]
    .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim())
    .map(e => e.outerHTML)"""


async def unlabelled_controls(page: Page) -> list[str]:
    """Controls a screen reader would announce without a name."""
    return list(await page.evaluate(UNLABELLED))
