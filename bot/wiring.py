"""The composition root: open the database, the shared HTTP client and the providers; build the engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx

from bot.providers import Providers, build_providers, log_providers
from bot.settings import Settings
from core.admission import Admission
from core.breaker import CircuitBreaker
from core.clock import Clock, SystemClock
from core.engine import Engine
from core.ledger import Ledger
from core.parts import Intent


@dataclass(frozen=True, slots=True)
class App:
    """Everything an adapter needs, built once per process."""

    settings: Settings
    engine: Engine
    ledger: Ledger
    http: httpx.AsyncClient
    providers: Providers
    clock: Clock


def http_client(settings: Settings) -> httpx.AsyncClient:
    """The one client every non-SDK provider call shares (connection pool, timeouts)."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.http_timeout_s, connect=10.0),
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        follow_redirects=True,
    )


def build_engine(settings: Settings, *, providers: Providers, ledger: Ledger, clock: Clock) -> Engine:
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
    )


@asynccontextmanager
async def open_app(settings: Settings, *, clock: Clock | None = None) -> AsyncIterator[App]:
    clock = clock or SystemClock()
    ledger = await Ledger.open(
        settings.database_url,
        default_limit=settings.cost("default_budget"),
        platform_limits={"discord-dm": settings.cost("discord_dm_budget")},
    )
    try:
        await ledger.sweep_orphans()
        async with http_client(settings) as http:
            providers = build_providers(settings, http=http, clock=clock)
            log_providers(providers)
            engine = build_engine(settings, providers=providers, ledger=ledger, clock=clock)
            yield App(
                settings=settings, engine=engine, ledger=ledger, http=http, providers=providers, clock=clock
            )
    finally:
        await ledger.close()
