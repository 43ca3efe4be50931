"""The operations endpoint: ``/healthz`` (alive), ``/readyz`` (database and platforms up), ``/metrics``."""

from __future__ import annotations

import asyncio
import logging
import socket

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from core import metrics
from core.admission import Admission
from core.health import Readiness
from core.ledger import Ledger

log = logging.getLogger(__name__)


class OpsServer:
    """A small aiohttp server; ``port=0`` picks a free port (see ``port`` after ``start``)."""

    def __init__(
        self, *, ledger: Ledger, readiness: Readiness, admission: Admission | None, host: str, port: int
    ) -> None:
        self._ledger = ledger
        self._readiness = readiness
        self._host = host
        self._requested_port = port
        self._runner: web.AppRunner | None = None
        self.port = port
        if admission is not None:
            metrics.JOBS.labels("running").set_function(lambda: admission.running)
            metrics.JOBS.labels("queued").set_function(lambda: admission.waiting)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        # Binding the socket ourselves tells us the port when 0 asked for any free one.
        listener = socket.create_server((self._host, self._requested_port), reuse_port=False)
        self.port = listener.getsockname()[1]
        await web.SockSite(self._runner, listener).start()
        log.info("ops endpoint on http://%s:%d (/healthz, /readyz, /metrics)", self._host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, request: web.Request) -> web.Response:
        components = {"database": await self._database_ok(), **self._readiness.snapshot()}
        ready = all(components.values())
        body: dict[str, object] = {"status": "ready" if ready else "not ready", "components": components}
        details = self._readiness.details_snapshot()
        if details:
            body["details"] = details
        return web.json_response(body, status=200 if ready else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(metrics.REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def _database_ok(self) -> bool:
        try:
            async with asyncio.timeout(2):
                await self._ledger.ping()
        except Exception as error:
            log.warning("database check failed: %r", error)
            return False
        return True
