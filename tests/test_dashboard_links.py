"""Dashboard links and sessions (core/dashboard.py), `/budget dashboard` in the dispatcher and the
console, and `python -m bot budget dashboard`."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from adapters.console import ConsoleChat
from core.commands.dispatcher import CommandContext, Dispatcher, Reply
from core.dashboard import DashboardLinks, LinkRefused, stored_secret
from core.db import Database
from core.engine import Engine
from core.ledger import Ledger
from core.parts import Scope
from tests.cli import run_bot
from tests.clock import FakeClock

SCOPE = Scope("discord", "42")
BASE = "https://bot.example.com"


def links(clock: FakeClock, secret: str = "s3cret", **options: object) -> DashboardLinks:
    return DashboardLinks(secret, clock=clock, base_url=BASE, **options)  # type: ignore[arg-type]


def token_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["t"][0]


async def test_a_link_opens_a_session_for_its_scope_only_until_it_expires() -> None:
    clock = FakeClock()
    signer = links(clock, link_minutes=60)
    link = signer.link(SCOPE, user="900")
    assert link.url.startswith(f"{BASE}/dashboard/open?t=")
    assert link.expires_at == clock.utc() + timedelta(minutes=60)

    await clock.advance(59 * 60)
    access = signer.open(token_of(link.url))
    assert (access.scope, access.user, access.operator) == (SCOPE, "900", False)
    assert access.allows(SCOPE) and not access.allows(Scope("discord", "43"))
    session = signer.session(signer.cookie(access))
    assert session == access
    await clock.advance(61 * 60)
    assert signer.session(signer.cookie(access)) is None, "the session ends in its turn"
    with pytest.raises(LinkRefused, match="expired"):
        signer.open(token_of(link.url))


def test_tampered_links_and_cookies_and_other_secrets_are_refused() -> None:
    clock = FakeClock()
    signer = links(clock)
    token = token_of(signer.link(SCOPE, user="900").url)
    payload, _, signature = token.partition(".")
    forged = payload.replace(payload[2], "A" if payload[2] != "A" else "B") + "." + signature
    for bad in (
        forged,
        token[:-2],
        "",
        "garbage",
        token_of(links(clock, "other").link(SCOPE, user="900").url),
    ):
        with pytest.raises(LinkRefused, match="not valid"):
            signer.open(bad)
    assert signer.session(token) is None, "a link is not a session cookie"
    assert signer.session(signer.cookie(signer.open(token))[:-1] + "x") is None


def test_the_operator_token_opens_every_scope() -> None:
    clock = FakeClock()
    assert not links(clock).operator_enabled
    with pytest.raises(LinkRefused):
        links(clock).operator("anything")
    signer = links(clock, admin_token="op")
    with pytest.raises(LinkRefused):
        signer.operator("wrong")
    access = signer.operator("op")
    assert access.operator and access.allows(SCOPE) and access.allows(Scope("slack", "T1"))


def test_no_link_without_an_address() -> None:
    signer = DashboardLinks("s", clock=FakeClock())
    with pytest.raises(LinkRefused, match="WEB_PUBLIC_URL"):
        signer.link(SCOPE, user="1")
    signer.serve_at("http://127.0.0.1:8000/")
    assert signer.link(SCOPE, user="1").url.startswith("http://127.0.0.1:8000/dashboard/open?t=")
    signer.serve_at("http://elsewhere")
    assert signer.base_url == "http://127.0.0.1:8000", "a configured address is kept"


async def test_the_stored_secret_is_made_once_and_shared(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/bot.db"
    first = await Database.open(url)
    second = await Database.open(url)
    try:
        made = await stored_secret(first)
        assert len(made) >= 40
        assert await stored_secret(second) == made == await stored_secret(first)
    finally:
        await first.close()
        await second.close()


async def dashboard_reply(ledger: Ledger, signer: DashboardLinks | None, **context: object) -> Reply:
    commands = Dispatcher(ledger=ledger, conversations=None, intents=(), dashboard=signer)
    outcome = await commands.dispatch(
        "budget",
        " Dashboard ",
        CommandContext(scope=SCOPE, user="900", **context),  # type: ignore[arg-type]
    )
    assert isinstance(outcome, Reply)
    assert outcome.private, "the link is only for the one who asked"
    return outcome


async def test_budget_dashboard_gives_admins_a_private_link(ledger: Ledger) -> None:
    clock = FakeClock()
    signer = links(clock)
    answer = await dashboard_reply(ledger, signer, admin=True)
    url = re.search(r"https://\S+", answer.text)
    assert url is not None
    assert signer.open(token_of(url.group(0))).scope == SCOPE
    assert "2026-01-15 13:00 UTC" in answer.text

    refused = await dashboard_reply(ledger, signer, admin=False)
    assert refused.text == "Only admins can open this budget's dashboard."
    direct = await dashboard_reply(ledger, signer, admin=True, direct=True)
    assert "server's or workspace's budget" in direct.text
    missing = await dashboard_reply(ledger, None, admin=True)
    assert "WEB_PORT or WEB_PUBLIC_URL" in missing.text
    unaddressed = await dashboard_reply(ledger, DashboardLinks("s", clock=clock), admin=True)
    assert unaddressed.text.startswith("The web dashboard isn't available")


async def test_the_console_answers_budget_dashboard(ledger: Ledger, engine: Engine, tmp_path: Path) -> None:
    engine.dashboard = links(FakeClock())
    out = io.StringIO()
    chat = ConsoleChat(engine, out=out, media_dir=tmp_path, echo=False)
    await chat.handle_line("/budget dashboard")
    assert f"{BASE}/dashboard/open?t=" in out.getvalue()


class RealTime:
    """The CLI signs with the real clock; this reads it, ``ahead`` into the future."""

    def __init__(self, ahead: timedelta = timedelta()) -> None:
        self._ahead = ahead

    def utc(self) -> datetime:
        return datetime.now(UTC) + self._ahead


def test_cli_prints_a_link_for_a_scope(tmp_path: Path) -> None:
    printed = run_bot(tmp_path, "budget", "dashboard", "slack:T0123", WEB_PUBLIC_URL=BASE, WEB_SECRET="fixed")
    assert printed.returncode == 0, printed.stderr
    token = token_of(printed.stdout.strip())
    assert "slack:T0123: the link works until" in printed.stderr
    now = DashboardLinks("fixed", clock=RealTime(), base_url=BASE)  # type: ignore[arg-type]
    assert now.open(token).scope == Scope("slack", "T0123"), "signed with WEB_SECRET"
    later = DashboardLinks("fixed", clock=RealTime(timedelta(minutes=61)), base_url=BASE)  # type: ignore[arg-type]
    with pytest.raises(LinkRefused, match="expired"):
        later.open(token)

    missing = run_bot(tmp_path, "budget", "dashboard", "slack:T0123")
    assert missing.returncode == 2
    assert "WEB_PUBLIC_URL" in missing.stderr
