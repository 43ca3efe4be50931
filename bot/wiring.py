"""The composition root: open the database, the shared HTTP client and the providers; build the engine."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import httpx

from adapters.console import CONSOLE_SCOPE
from bot.providers import Providers, build_providers, log_providers
from bot.settings import Settings
from bot.shared_http import SharedHttp
from core.admission import Admission
from core.breaker import CircuitBreaker
from core.clock import Clock, SystemClock
from core.conversations import DEFAULT_PURGE_EVERY_S, ConversationStore, Purgeable, purge_periodically
from core.dashboard import DashboardLinks, stored_secret
from core.engine import Engine, Resumption
from core.health import Readiness
from core.idle import summarize_idle_periodically
from core.jobs import JobStore
from core.ledger import Ledger
from core.parts import Destination, Intent
from core.studio import StudioStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class App:
    """Everything an adapter needs, built once per process."""

    settings: Settings
    engine: Engine
    ledger: Ledger
    http: httpx.AsyncClient
    providers: Providers
    clock: Clock
    readiness: Readiness
    resumptions: list[Resumption]
    """Jobs a previous run left unfinished, to be delivered by their platform's adapter."""


Role = Literal["service", "console", "tool"]
"""What the process is: the bot service (owns every unfinished job and hold), the terminal chat
(owns only console work), or a one-shot tool such as ``budget show`` (owns nothing)."""


def http_client(settings: Settings) -> SharedHttp:
    """The one client every provider call shares, the openai SDK's included (connection pool,
    timeouts): httpx's API over aiohttp's connection handling, which in a burst of answers costs a
    fifth less CPU per answer than httpx's own pool (see docs/benchmarks.md)."""
    return SharedHttp(
        timeout=httpx.Timeout(settings.http_timeout_s, connect=10.0),
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
        follow_redirects=True,
    )


async def dashboard_links(settings: Settings, ledger: Ledger, clock: Clock) -> DashboardLinks:
    """The signer of ``/budget dashboard`` links: ``WEB_SECRET``, or the database's own secret."""
    secret = settings.web_secret.get_secret_value() if settings.web_secret else None
    admin_token = settings.web_admin_token.get_secret_value() if settings.web_admin_token else None
    return DashboardLinks(
        secret or await stored_secret(ledger.database),
        clock=clock,
        base_url=settings.web_base_url,
        link_minutes=settings.dashboard_link_minutes,
        admin_token=admin_token,
    )


def build_engine(
    settings: Settings,
    *,
    providers: Providers,
    ledger: Ledger,
    clock: Clock,
    dashboard: DashboardLinks | None = None,
) -> Engine:
    admission = Admission(
        max_jobs=settings.max_jobs,
        max_jobs_per_scope=settings.max_jobs_per_scope,
        max_queue=settings.max_queue,
        user_requests_per_minute=settings.user_requests_per_minute,
        clock=clock,
    )
    breakers = {
        intent: CircuitBreaker(
            threshold=settings.breaker_threshold, cooldown_s=settings.breaker_cooldown_s, clock=clock
        )
        for intent in Intent
    }
    return Engine(
        ledger=ledger,
        generators=providers.generators,
        classifier=providers.classifier,
        admission=admission,
        breakers=breakers,
        jobs=JobStore(ledger.database),
        conversations=ConversationStore(ledger.database),
        dashboard=dashboard,
        studio=StudioStore(ledger.database, keep_days=settings.image_keep_days),
    )


def _expiring(app: App) -> list[Purgeable]:
    """The stores holding what people asked, kept ``HISTORY_DAYS``: conversations, finished jobs
    (each keeps its prompt) and the prompts in the budget's transactions."""
    stores: list[Purgeable | None] = [
        app.engine.conversations,
        app.engine.jobs,
        app.ledger,
        app.engine.studio,
    ]
    return [store for store in stores if store is not None]


async def purge_history(app: App) -> None:
    """Delete conversation events, finished jobs and transaction prompts older than
    ``HISTORY_DAYS`` hourly, until cancelled (the first purge is ``housekeeping``'s, before the
    bot answers anyone)."""
    await app.clock.sleep(DEFAULT_PURGE_EVERY_S)
    keep = _history_kept(app)
    await asyncio.gather(*(purge_periodically(store, keep=keep, clock=app.clock) for store in _expiring(app)))


def _history_kept(app: App) -> timedelta:
    return timedelta(days=app.settings.history_days)


async def summarize_idle_conversations(app: App) -> None:
    """Summarize conversations quiet for ``SUMMARY_IDLE_MIN`` minutes, until cancelled; returns at
    once when that is 0 (the default). Runs inside ``housekeeping``."""
    if app.settings.summary_idle_min and app.engine.conversations is not None:
        idle_for = timedelta(minutes=app.settings.summary_idle_min)
        await summarize_idle_periodically(
            app.engine, app.engine.conversations, idle_for=idle_for, clock=app.clock
        )


@asynccontextmanager
async def housekeeping(app: App) -> AsyncIterator[None]:
    """Purge expired history and finished jobs now, then renew this process's leases (taking
    over dead processes' jobs and releasing expired holds), run the hourly purge and idle
    summaries in the background while the block runs."""
    for store in _expiring(app):
        try:
            await store.purge(_history_kept(app))
        except Exception:
            log.exception("purge of %s failed; trying again in an hour", type(store).__name__)
    tasks = [
        asyncio.create_task(app.engine.maintain(), name="leases and take-overs"),
        asyncio.create_task(purge_history(app), name="history purge"),
        asyncio.create_task(summarize_idle_conversations(app), name="idle summaries"),
    ]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@asynccontextmanager
async def open_app(
    settings: Settings,
    *,
    role: Role,
    clock: Clock | None = None,
    reaches: Callable[[Destination | None], bool] | None = None,
) -> AsyncIterator[App]:
    """Open the database, HTTP client and providers. Only the owner of unfinished work releases
    its orphaned holds: a ``budget show`` next to a running bot must not touch the bot's holds.
    With ``reaches``, the service resumes only the unfinished jobs its adapters can deliver."""
    clock = clock or SystemClock()
    ledger = await Ledger.open(
        settings.database_url,
        default_limit=settings.cost("default_budget"),
        platform_limits={"discord-dm": settings.cost("discord_dm_budget")},
        member_cap=settings.member_cap(),
        clock=clock,
        lease_ttl_s=settings.lease_ttl_s,
        lease_renew_s=settings.lease_renew_s,
    )
    try:
        async with http_client(settings) as http:
            providers = build_providers(settings, http=http, clock=clock, demo_fallback=role != "service")
            if role != "tool":
                log_providers(providers)
            dashboard = await dashboard_links(settings, ledger, clock)
            engine = build_engine(
                settings, providers=providers, ledger=ledger, clock=clock, dashboard=dashboard
            )
            resumptions: list[Resumption] = []
            if role == "service":
                resumptions = await engine.resume_unfinished(reaches=reaches)
                await ledger.sweep_orphans(keep=[resumption.transaction_id for resumption in resumptions])
            elif role == "console":
                await ledger.sweep_orphans(platform=CONSOLE_SCOPE.platform)
            yield App(
                settings=settings,
                engine=engine,
                ledger=ledger,
                http=http,
                providers=providers,
                clock=clock,
                readiness=Readiness(),
                resumptions=resumptions,
            )
    finally:
        await ledger.close()
