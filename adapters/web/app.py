"""The FastAPI app (routes, OpenAI-shaped errors, docs at ``/docs``) and its uvicorn server, run on
the bot's own event loop next to the platform adapters."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from adapters.web.browser_chat import chat_page_routes
from adapters.web.chat import chat_routes
from adapters.web.dashboard import dashboard_routes
from adapters.web.errors import SERVER, ApiError, Kind, invalid
from adapters.web.images import image_routes
from adapters.web.pages import STATIC_PATH, static_files
from adapters.web.services import WebServices
from adapters.web.sessions import Sessions, session_routes
from core.inflight import FINAL_WRITES_S

log = logging.getLogger(__name__)

DESCRIPTION = """\
OpenAI's chat and image APIs, and live sessions over a WebSocket, in front of the bot's routing,
generators, conversation memory and budgets. Authenticate with `Authorization: Bearer sk-studio-…`
(keys: `python -m bot api-key create --scope SCOPE --name NAME`). See docs/api.md."""


def create_app(services: WebServices, sessions: Sessions | None = None) -> FastAPI:
    """The web surface as an ASGI app."""
    app = FastAPI(title="Studio bot API", version="1", description=DESCRIPTION)
    app.include_router(chat_routes(services))
    app.include_router(image_routes(services))
    app.include_router(session_routes(services, sessions or Sessions(services)))
    app.include_router(dashboard_routes(services))
    app.include_router(chat_page_routes(services))
    app.mount(STATIC_PATH, static_files(), name="static")

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ApiError)
        return JSONResponse(error.body(), status_code=error.kind.status, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def bad_body(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        problems = error.errors()
        first = problems[0] if problems else {}
        if first.get("type") == "json_invalid":  # its location is a character, not a field
            position = next((part for part in first.get("loc", ()) if isinstance(part, int)), None)
            reason = (first.get("ctx") or {}).get("error") or "malformed"
            at = f" at character {position}" if position is not None else ""
            not_json = invalid(f"The body is not valid JSON ({reason}{at}).")
            return JSONResponse(not_json.body(), status_code=400)
        where = [str(part) for part in first.get("loc", ()) if part != "body"]
        message = f"{'.'.join(where) or 'body'}: {first.get('msg', 'invalid request body')}"
        rejected = invalid(message, param=".".join(where) or None)
        return JSONResponse(rejected.body(), status_code=400)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, HTTPException)
        kind = Kind(error.status_code, "invalid_request_error", None) if error.status_code < 500 else SERVER
        return JSONResponse(
            ApiError(kind, str(error.detail)).body(), status_code=error.status_code, headers=error.headers
        )

    return app


class _QuietServer(uvicorn.Server):
    """uvicorn's server without its own signal handlers: the bot's one shutdown path owns them."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class WebServer:
    """The API served by uvicorn on the running event loop: ``start`` binds, ``stop`` ends it."""

    def __init__(self, services: WebServices, *, host: str, port: int) -> None:
        self.services = services
        self.sessions = Sessions(services)
        config = uvicorn.Config(
            create_app(services, self.sessions),
            log_config=None,
            access_log=False,
            lifespan="off",
            http="httptools",
            ws="websockets-sansio",
            timeout_graceful_shutdown=int(FINAL_WRITES_S),
        )
        self._server = _QuietServer(config)
        self._host, self._port = host, port
        self._socket: socket.socket | None = None
        self._serving: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The port bound (useful with port 0)."""
        if self._socket is None:
            raise RuntimeError("the web server is not started")
        return int(self._socket.getsockname()[1])

    async def start(self) -> None:
        """Bind and start serving; raises ``OSError`` when the address is taken. (The socket is
        bound here: uvicorn's own binding would end the whole process with ``sys.exit``.)"""
        self._socket = socket.create_server((self._host, self._port))
        self._serving = asyncio.create_task(self._server.serve([self._socket]), name="web server")
        if self.services.dashboard is not None:
            host = "127.0.0.1" if self._host in ("", "0.0.0.0", "::") else self._host
            self.services.dashboard.serve_at(f"http://{host}:{self.port}")
        while not self._server.started:
            if self._serving.done():
                self._serving.result()
                raise OSError("the web server stopped while starting")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop taking connections, give answers in flight ``FINAL_WRITES_S`` to end, then close.
        Call after ``Engine.shutdown``, which has ended every answer's stream."""
        self._server.should_exit = True  # stop listening; open connections end with their answers
        await self.services.inflight.finish()
        await self.sessions.close()
        if self._serving is not None:
            await asyncio.gather(self._serving, return_exceptions=True)
        if self._socket is not None:
            self._socket.close()
        log.info("web server stopped")

    async def serve_until_cancelled(self) -> None:
        """For the service: run until cancelled, then ``stop``."""
        await self.start()
        log.info("web API listening", extra={"port": self.port})
        assert self._serving is not None
        try:
            await asyncio.shield(self._serving)
        finally:
            await self.stop()
