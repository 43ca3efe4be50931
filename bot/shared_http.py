"""The HTTP client every provider call shares, and the openai SDK's ``http_client`` on top of it.

The SDK builds each request (base URL, auth, its headers, timeouts) and keeps its retries, status
errors and types; ``SdkHttp.send`` hands the request to aiohttp directly. Going through httpx's
client machinery and the httpx-aiohttp transport as well cost about 0.3 ms of CPU per request and
more per streamed token, which in a burst of 50 answers was most of the bot's time before a
provider heard of a request (docs/benchmarks.md).

Only requests the server refused are retried (the SDK's rules: 408, 409, 429, 5xx, or a
connection that never opened). A request that timed out or lost its connection after it left may
be running, and billed, so for those ``send`` raises the SDK's own errors, which it never retries.
"""

from __future__ import annotations

import urllib.request
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httpx
from httpx_aiohttp import HttpxAiohttpClient


class SharedHttp(HttpxAiohttpClient):
    """httpx's client over aiohttp's connection handling (``HttpxAiohttpClient``), for every
    provider; ``stream_session`` is the aiohttp session the openai SDK's requests go out on,
    opened on first use and closed with the client."""

    _session: aiohttp.ClientSession | None = None

    def stream_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=100,
                keepalive_timeout=5.0,  # httpx's keep-alive expiry, as for the other providers
                ssl=httpx.create_ssl_context(),  # the same certificate roots as httpx (certifi)
            )
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def aclose(self) -> None:
        try:
            await super().aclose()
        finally:
            await self._close_session()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        # httpx's own ``__aexit__`` closes its transports without calling ``aclose``.
        try:
            await super().__aexit__(exc_type, exc_value, traceback)
        finally:
            await self._close_session()

    async def _close_session(self) -> None:
        if self._session is not None:
            await self._session.close()


class SdkHttp(httpx.AsyncClient):
    """The SDK's ``http_client`` (see the module docstring). Proxies from the environment
    (``HTTPS_PROXY``, ``NO_PROXY``) apply as they do for the shared client, looked up once per host."""

    def __init__(self, shared: SharedHttp) -> None:
        super().__init__(timeout=shared.timeout, trust_env=False)
        self._shared = shared
        self._proxies: dict[tuple[str, str], str | None] = {}

    async def send(self, request: httpx.Request, *, stream: bool = False, **_: Any) -> httpx.Response:
        import openai  # only SDK clients use this client, so the SDK is loaded already

        timeout = request.extensions.get("timeout", {})
        try:
            reply = await self._shared.stream_session().request(
                request.method,
                str(request.url),
                headers=request.headers.multi_items(),
                data=await request.aread() or None,
                # Not redirected: a redirect would carry the key and a paid request to another host.
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=timeout.get("connect"), sock_read=timeout.get("read")
                ),
                proxy=self._proxy(request.url),
            )
        except aiohttp.ClientConnectorError as error:
            # No connection, so nothing was sent: an httpx.ConnectError the SDK may try again.
            raise httpx.ConnectError(f"{type(error).__name__}: {error}", request=request) from error
        except TimeoutError as error:
            raise openai.APITimeoutError(request) from error
        except aiohttp.ClientError as error:
            message = f"{type(error).__name__}: {error}"
            raise openai.APIConnectionError(message=message, request=request) from error
        # aiohttp has decoded the body already (gzip and the like): httpx must not again.
        headers = [(name, value) for name, value in reply.raw_headers if name.lower() != b"content-encoding"]
        response = httpx.Response(
            reply.status,
            headers=headers,
            stream=AiohttpBody(reply, request),
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )
        if not stream:
            await response.aread()
        return response

    def _proxy(self, url: httpx.URL) -> str | None:
        key = (url.scheme, url.host)
        if key not in self._proxies:
            self._proxies[key] = env_proxy(str(url))
        return self._proxies[key]


class AiohttpBody(httpx.AsyncByteStream):
    """An aiohttp body as httpx's response stream; ``lines`` reads it line by line without
    httpx's layers of decoders (``core.providers.openai_text`` uses it for the SSE stream)."""

    def __init__(self, reply: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._reply = reply
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for data in self._reply.content.iter_any():
                yield data
        except TimeoutError as error:
            raise httpx.ReadTimeout(str(error) or "read timed out", request=self._request) from error
        except aiohttp.ClientError as error:
            raise httpx.ReadError(f"{type(error).__name__}: {error}", request=self._request) from error

    async def lines(self) -> AsyncIterator[str]:
        """The body's lines without their ends, however the network cut them (a line of any
        length, a character split between reads), decoded as UTF-8."""
        pending = b""
        async for data in self:
            pending += data
            if b"\n" not in data:
                continue
            *complete, pending = pending.split(b"\n")
            for line in complete:
                yield line.rstrip(b"\r").decode(errors="replace")
        if pending:
            yield pending.rstrip(b"\r").decode(errors="replace")

    async def aclose(self) -> None:
        self._reply.release()


def sdk_http(shared: SharedHttp) -> SdkHttp:
    """An ``http_client`` for the openai SDK on top of ``shared``."""
    return SdkHttp(shared)


def env_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url`` (as httpx's ``trust_env`` would pick it)."""
    parts = urlsplit(url)
    if parts.hostname and urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)
