"""The idempotent-call helper: which answers are retried, how long it waits, when it gives up."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from aiohttp import web

from core.providers.failures import retry_after
from core.providers.http import RetryPolicy, get
from tests.fakes.provider_server import ProviderServer, Reply, take
from tests.providers.conftest import InstantClock

POLICY = RetryPolicy(attempts=3, base_s=0.5, cap_s=8)


class Flaky(ProviderServer):
    def __init__(self) -> None:
        super().__init__()
        self.replies: deque[Reply] = deque()

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/thing", self._thing)

    async def _thing(self, request: web.Request) -> web.Response:
        reply: Reply = take(self.replies, Reply(body={"ok": True}))
        return reply.response()

    @property
    def url(self) -> str:
        return f"{self.origin}/thing"


@pytest.fixture
async def flaky() -> AsyncIterator[Flaky]:
    server = Flaky()
    await server.start()
    try:
        yield server
    finally:
        await server.close()


def answer(headers: dict[str, str]) -> httpx.Response:
    return httpx.Response(429, headers=headers)


def test_retry_after_reads_seconds_and_dates() -> None:
    assert retry_after(answer({"retry-after": "7"})) == 7
    assert retry_after(answer({"retry-after": "1.5"})) == 1.5
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 < (retry_after(answer({"retry-after": later})) or 0) <= 30
    assert retry_after(answer({"retry-after": "soon"})) is None
    assert retry_after(answer({})) is None


async def test_transient_statuses_are_retried_with_growing_jittered_backoff(
    flaky: Flaky, http: httpx.AsyncClient, clock: InstantClock
) -> None:
    flaky.replies.extend([Reply(503), Reply(502), Reply(200, {"ok": True})])

    response = await get(http, flaky.url, clock=clock, policy=POLICY)

    assert response.json() == {"ok": True} and len(flaky.requests("/thing")) == 3
    first, second = clock.sleeps
    assert 0.25 <= first <= 0.5 and 0.5 <= second <= 1.0


async def test_retry_after_is_honoured(flaky: Flaky, http: httpx.AsyncClient, clock: InstantClock) -> None:
    flaky.replies.extend([Reply(429, {}, {"retry-after": "4"}), Reply(200, {"ok": True})])

    response = await get(http, flaky.url, clock=clock, policy=POLICY)

    assert response.status_code == 200 and clock.sleeps == [4.0]


async def test_a_retry_after_beyond_patience_returns_at_once(
    flaky: Flaky, http: httpx.AsyncClient, clock: InstantClock
) -> None:
    flaky.replies.append(Reply(429, {}, {"retry-after": "3600"}))

    response = await get(http, flaky.url, clock=clock, policy=POLICY)

    assert response.status_code == 429 and clock.sleeps == []


async def test_the_last_answer_is_returned_when_retries_run_out(
    flaky: Flaky, http: httpx.AsyncClient, clock: InstantClock
) -> None:
    flaky.replies.append(Reply(500))

    response = await get(http, flaky.url, clock=clock, policy=POLICY)

    assert response.status_code == 500
    assert len(flaky.requests("/thing")) == POLICY.attempts and len(clock.sleeps) == POLICY.attempts - 1


async def test_client_errors_are_not_retried(
    flaky: Flaky, http: httpx.AsyncClient, clock: InstantClock
) -> None:
    flaky.replies.append(Reply(404))

    response = await get(http, flaky.url, clock=clock, policy=POLICY)

    assert response.status_code == 404 and len(flaky.requests("/thing")) == 1


async def test_no_sleep_runs_past_the_deadline(
    flaky: Flaky, http: httpx.AsyncClient, clock: InstantClock
) -> None:
    flaky.replies.append(Reply(503, {}, {"retry-after": "10"}))

    response = await get(http, flaky.url, clock=clock, policy=POLICY, deadline=clock.now() + 5)

    assert response.status_code == 503 and clock.sleeps == []


async def test_transport_errors_are_retried_then_raised(http: httpx.AsyncClient, clock: InstantClock) -> None:
    with pytest.raises(httpx.ConnectError):
        await get(http, "http://127.0.0.1:9/thing", clock=clock, policy=POLICY)
    assert len(clock.sleeps) == POLICY.attempts - 1
