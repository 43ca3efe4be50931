"""``python -m bot run``: the platform adapters, the web API, the ops endpoint, and a graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from bot.ops import OpsServer
from bot.platforms import PlatformStarter, deliverable
from bot.settings import Settings
from bot.wiring import App, housekeeping, open_app
from core.conversations import purge_periodically
from core.engine import Resumption

if TYPE_CHECKING:
    from adapters.web import WebServices

log = logging.getLogger(__name__)


async def serve(settings: Settings, starters: dict[str, PlatformStarter]) -> None:
    """Run until SIGTERM/SIGINT or until an adapter fails, then shut down in order: the engine
    refuses new work, lets running answers finish within ``SHUTDOWN_GRACE_S`` and then ends every
    stream itself (checkpointed jobs kept for the next start, the rest refunded, each saying so);
    the adapters post those last words and disconnect; the database closes last."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        reaches = deliverable(settings, starters)
        async with open_app(settings, role="service", reaches=reaches) as app, housekeeping(app):
            freeze_startup_heap()
            ops = await _start_ops(settings, app) if settings.metrics_port else None
            waiting = _by_platform(app.resumptions, known=set(starters))
            for name in starters:
                log.info("starting %s", name, extra={"resuming": len(waiting.get(name, []))})
            adapters = {
                asyncio.create_task(start(app, waiting.get(name, [])), name=name): name
                for name, start in starters.items()
            }
            if settings.web_port:
                adapters[asyncio.create_task(start_web(app), name="web")] = "web"
            stopped = asyncio.create_task(stop.wait())
            cancelled = False
            try:
                done, _ = await asyncio.wait([*adapters, stopped], return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                cancelled, done = True, set()
            failures = [task for task in done if task is not stopped and task.exception() is not None]
            log.info("shutting down: letting running work finish for up to %.0f s", settings.shutdown_grace_s)
            await app.engine.shutdown(settings.shutdown_grace_s)
            # Cancelled adapters stop taking events and give their answers up to FINAL_WRITES_S
            # (core/inflight.py) to post the last words of the streams the engine has ended.
            stopped.cancel()
            for task in adapters:
                task.cancel()
            await asyncio.gather(*adapters, stopped, return_exceptions=True)
            if ops is not None:
                await ops.stop()
            log.info("stopped")
            if cancelled:
                raise asyncio.CancelledError
            if failures:
                error = failures[0].exception()
                assert error is not None
                raise error
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(RuntimeError):
                loop.remove_signal_handler(signum)


def freeze_startup_heap() -> None:
    """Keep what start-up built (modules, the app, the providers' clients) out of the garbage
    collector's full passes, which otherwise walk all of it: in a burst of 50 web requests a full
    pass stalled the event loop for 110-120 ms (docs/benchmarks.md). Start-up's objects live as
    long as the process, so leaving them out loses nothing worth collecting."""
    gc.collect()
    gc.freeze()


def web_services(app: App) -> WebServices:
    """The web surface's share of the app: the engine, the key store, the media folder."""
    from adapters.web import WebServices
    from core.api_keys import KeyStore
    from core.media_store import MediaStore

    settings = app.settings
    return WebServices(
        engine=app.engine,
        keys=KeyStore(app.ledger.database),
        media=MediaStore(Path(settings.media_dir), clock=app.clock),
        clock=app.clock,
        summary_after_s=settings.session_summary_after_s,
        public_url=settings.web_public_url,
        demo_chat="live" not in app.providers.modes.values(),
    )


async def start_web(app: App) -> None:
    """Serve the web API (``WEB_PORT``) until cancelled, purging media older than ``MEDIA_DAYS``
    meanwhile; a port that can't be bound stops the bot like a platform that can't connect."""
    from adapters.web import WebServer

    settings = app.settings
    services = web_services(app)
    server = WebServer(services, host=settings.web_host, port=settings.web_port)
    freeze_startup_heap()  # the app's routes and models, built just now
    keep = timedelta(days=settings.media_days)
    purge = asyncio.create_task(
        purge_periodically(services.media, keep=keep, clock=app.clock), name="media purge"
    )
    try:
        await server.serve_until_cancelled()
    finally:
        purge.cancel()
        await asyncio.gather(purge, return_exceptions=True)


async def _start_ops(settings: Settings, app: App) -> OpsServer | None:
    ops = OpsServer(
        ledger=app.ledger,
        readiness=app.readiness,
        admission=app.engine.admission,
        host=settings.metrics_host,
        port=settings.metrics_port,
    )
    try:
        await ops.start()
    except OSError as error:
        # The bot itself can still serve; the missing endpoint shows up in the health checks.
        log.error(
            "ops endpoint not started on %s:%d: %s", settings.metrics_host, settings.metrics_port, error
        )
        return None
    return ops


def _by_platform(resumptions: list[Resumption], *, known: set[str]) -> dict[str, list[Resumption]]:
    grouped: dict[str, list[Resumption]] = defaultdict(list)
    for resumption in resumptions:
        destination = resumption.request.destination
        platform = destination.platform if destination else ""
        if platform in known:
            grouped[platform].append(resumption)
        else:
            log.warning(
                "job %s waits for a %s adapter to deliver it; start one to resume it",
                resumption.request.id,
                platform or "platform",
            )
    return grouped
