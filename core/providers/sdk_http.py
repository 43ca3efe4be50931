"""The openai SDK's HTTP: its retries kept for requests the server refused, never for a lost one.

The SDK retries a request that timed out or lost its connection, and by then the server may have
started (and billed) the generation. It also passes its own errors on without retrying, so this
transport raises those for any failure after the request may have left. A server's answer (408,
409, 429, 5xx: nothing was generated) and a connection that never opened are still retried.
"""

from __future__ import annotations

import httpx


class RefusedRetriesOnly(httpx.AsyncBaseTransport):
    """Sends through the shared client (its pool, proxies and timeouts); see the module docstring."""

    def __init__(self, shared: httpx.AsyncClient) -> None:
        self._shared = shared

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        import openai  # only SDK clients use this transport, so the SDK is loaded already

        try:
            # Not redirected: a redirect would carry the key and a paid request to another host.
            return await self._shared.send(request, stream=True, follow_redirects=False)
        except httpx.ConnectError:
            raise  # no connection, so nothing was sent: the SDK may try again
        except httpx.TimeoutException as error:
            raise openai.APITimeoutError(request) from error
        except httpx.TransportError as error:
            message = f"{type(error).__name__}: {error}"
            raise openai.APIConnectionError(message=message, request=request) from error

    async def aclose(self) -> None:
        """Nothing to close: the shared client belongs to whoever opened it."""


def sdk_http(shared: httpx.AsyncClient) -> httpx.AsyncClient:
    """An ``http_client`` for the openai SDK on top of ``shared``.

    ``trust_env`` is off because proxies from the environment are the shared client's business;
    here they would bypass the transport.
    """
    return httpx.AsyncClient(transport=RefusedRetriesOnly(shared), timeout=shared.timeout, trust_env=False)
