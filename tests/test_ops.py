"""The operations endpoint over real HTTP: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from bot.ops import OpsServer
from core.admission import Admission
from core.engine import Engine
from core.health import Readiness
from core.ledger import Ledger
from core.parts import Intent, Request, Scope

Ops = tuple[OpsServer, Readiness, httpx.AsyncClient]


@pytest.fixture
async def ops(ledger: Ledger) -> AsyncIterator[Ops]:
    readiness = Readiness()
    admission = Admission(max_jobs=2, max_jobs_per_scope=1, max_queue=5, user_requests_per_minute=0)
    server = OpsServer(ledger=ledger, readiness=readiness, admission=admission, host="127.0.0.1", port=0)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            yield server, readiness, client
    finally:
        await server.stop()


async def test_healthz_answers_while_the_process_lives(
    ops: Ops,
) -> None:
    _, _, client = ops
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_waits_for_every_platform_and_the_database(
    ops: Ops,
) -> None:
    _, readiness, client = ops
    readiness.expect("discord")
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["components"] == {"database": True, "discord": False}
    readiness.mark("discord", True)
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "ready"


async def test_readyz_fails_when_the_database_is_gone(ops: Ops, ledger: Ledger) -> None:
    _, _, client = ops
    await ledger.close()
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["components"]["database"] is False


async def test_metrics_expose_requests_spend_and_latency(ops: Ops, engine: Engine) -> None:
    _, _, client = ops
    request = Request(scope=Scope("discord", "ops-test"), user="u", text="the sea", intent=Intent.RESEARCH)
    async for _ in engine.handle(request):
        pass
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'bot_requests_total{intent="research",outcome="done"}' in text
    assert 'bot_spend_usd_total{scope="discord:ops-test",service="research"} 0.01' in text
    assert 'bot_time_to_first_text_seconds_count{intent="research"}' in text
    assert 'bot_jobs{state="running"} 0.0' in text


async def test_readyz_shows_what_a_platform_says_about_itself(ops: Ops) -> None:
    _, readiness, client = ops
    shards = {"0": {"connected": True, "latency_ms": 41.5}, "1": {"connected": False, "latency_ms": None}}
    readiness.expect("discord")
    readiness.describe("discord", lambda: {"shard_count": 4, "shards": shards})
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["details"] == {"discord": {"shard_count": 4, "shards": shards}}
    shards["1"]["connected"] = True  # read on every request, not once
    assert (await client.get("/readyz")).json()["details"]["discord"]["shards"]["1"]["connected"] is True
