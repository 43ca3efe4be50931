"""``python -m bot run``: the platform adapters, the ops endpoint, and a graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections import defaultdict

from bot.ops import OpsServer
from bot.platforms import PlatformStarter
from bot.settings import Settings
from bot.wiring import App, housekeeping, open_app
from core.engine import Resumption

log = logging.getLogger(__name__)

# After the grace period, suspended jobs get this long to post their "restarting" notice.
NOTICE_GRACE_S = 5.0


async def serve(settings: Settings, starters: dict[str, PlatformStarter]) -> None:
    """Run until SIGTERM/SIGINT or until an adapter fails, then shut down in order:
    refuse new work, let running answers finish within ``SHUTDOWN_GRACE_S``, leave checkpointed
    jobs for the next start, cancel the rest (refunded), close clients and the database."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with open_app(settings, role="service") as app, housekeeping(app):
            ops = await _start_ops(settings, app) if settings.metrics_port else None
            waiting = _by_platform(app.resumptions, known=set(starters))
            for name in starters:
                log.info("starting %s", name, extra={"resuming": len(waiting.get(name, []))})
            adapters = {
                asyncio.create_task(start(app, waiting.get(name, [])), name=name): name
                for name, start in starters.items()
            }
            stopped = asyncio.create_task(stop.wait())
            cancelled = False
            try:
                done, _ = await asyncio.wait([*adapters, stopped], return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                cancelled, done = True, set()
            failures = [task for task in done if task is not stopped and task.exception() is not None]
            log.info("shutting down: letting running work finish for up to %.0f s", settings.shutdown_grace_s)
            if not await app.engine.drain(settings.shutdown_grace_s):
                app.engine.suspend()
                await app.engine.drain(NOTICE_GRACE_S)
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
