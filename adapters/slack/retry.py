"""When a failed Slack Web API call is sent again: rate limits always, server errors only for
calls that are safe to repeat, with every wait on the injected clock."""

from __future__ import annotations

import logging

from aiohttp import ClientConnectorError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from core.clock import Clock

log = logging.getLogger(__name__)

MAX_RETRY_AFTER_S = 30.0
"""A longer ``Retry-After`` is not waited out: the call fails and the reply says so."""
SERVER_ERRORS = frozenset({500, 502, 503, 504})
IDEMPOTENT_METHODS = frozenset(
    {
        "auth.test",
        "apps.connections.open",
        "users.info",
        "chat.update",
        "chat.delete",
        "files.getUploadURLExternal",
    }
)
"""Calls that leave Slack in the same state however often they land. Posting, streaming and
``files.completeUploadExternal`` (which shares the file) are not: a server error may come after
Slack acted, and sending them again could post twice."""


class RateLimitRetry(AsyncRetryHandler):
    """Retries a ``429``: Slack did not act on the call, so any method may be sent again once
    ``Retry-After`` has passed."""

    def __init__(self, clock: Clock, *, max_retry_count: int = 2) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self._clock = clock

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or response.status_code != 429:
            return False
        wait = _retry_after(response)
        if wait > MAX_RETRY_AFTER_S:
            log.warning("Slack rate-limited %s for %.0f s; not waiting", _method(request), wait)
            return False
        return True

    async def prepare_for_next_attempt_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        wait = _retry_after(response) if response is not None else 1.0
        log.info("Slack rate-limited %s; retrying in %.0f s", _method(request), wait)
        state.next_attempt_requested = True
        await self._clock.sleep(wait)
        state.increment_current_attempt()


class ServerErrorRetry(AsyncRetryHandler):
    """Retries, with backoff, a call that never reached Slack (any method), and a 5xx or a
    connection lost mid-call for ``IDEMPOTENT_METHODS`` only."""

    def __init__(self, clock: Clock, *, max_retry_count: int = 2, first_wait_s: float = 0.5) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self._clock = clock
        self._first_wait_s = first_wait_s

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if isinstance(error, ClientConnectorError):
            return True
        failed = error is not None or (response is not None and response.status_code in SERVER_ERRORS)
        return failed and _method(request) in IDEMPOTENT_METHODS

    async def prepare_for_next_attempt_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        wait = self._first_wait_s * 2**state.current_attempt
        log.info("Slack %s failed (%s); retrying in %.0f s", _method(request), _why(response, error), wait)
        state.next_attempt_requested = True
        await self._clock.sleep(wait)
        state.increment_current_attempt()


def _retry_after(response: HttpResponse) -> float:
    for name, values in response.headers.items():
        if name.lower() == "retry-after" and values:
            try:
                return max(0.0, float(values[0]))
            except ValueError:
                break
    return 1.0


def _method(request: HttpRequest) -> str:
    return request.url.rstrip("/").rsplit("/", 1)[-1]


def _why(response: HttpResponse | None, error: Exception | None) -> str:
    if response is not None:
        return f"HTTP {response.status_code}"
    return type(error).__name__
