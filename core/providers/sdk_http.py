"""The openai SDK's HTTP: its retries kept for requests the server refused, never for a lost one.

The SDK retries a request that timed out or lost its connection, and by then the server may have
started (and billed) the generation. It also passes its own errors on without retrying, so this
client raises those for any failure after the request may have left. A server's answer (408,
409, 429, 5xx: nothing was generated) and a connection that never opened are still retried.
"""

from __future__ import annotations

from typing import Any

import httpx


class RefusedRetriesOnly(httpx.AsyncClient):
    """The SDK's ``http_client``: it builds each request (the SDK's timeouts and headers) and
    ``send`` hands it to the shared client (its pool, proxies and timeouts), mapping failures as
    the module docstring says.

    Sending through the shared client's ``send`` rather than from a transport of this client
    keeps one layer of httpx's send machinery (auth, redirects, cookies) per request instead
    of two: in a burst of answers that layer was a tenth of the bot's CPU before each provider
    call (docs/benchmarks.md).
    """

    def __init__(self, shared: httpx.AsyncClient) -> None:
        # ``trust_env`` is off: proxies from the environment are the shared client's business.
        super().__init__(timeout=shared.timeout, trust_env=False)
        self._shared = shared

    async def send(self, request: httpx.Request, *, stream: bool = False, **_: Any) -> httpx.Response:
        import openai  # only SDK clients use this client, so the SDK is loaded already

        try:
            # Not redirected: a redirect would carry the key and a paid request to another host.
            return await self._shared.send(request, stream=stream, follow_redirects=False)
        except httpx.ConnectError:
            raise  # no connection, so nothing was sent: the SDK may try again
        except httpx.TimeoutException as error:
            raise openai.APITimeoutError(request) from error
        except httpx.TransportError as error:
            message = f"{type(error).__name__}: {error}"
            raise openai.APIConnectionError(message=message, request=request) from error


def sdk_http(shared: httpx.AsyncClient) -> httpx.AsyncClient:
    """An ``http_client`` for the openai SDK on top of ``shared`` (see ``RefusedRetriesOnly``)."""
    return RefusedRetriesOnly(shared)
