"""Automatic summaries of conversations that went quiet (``SUMMARY_IDLE_MIN``), stored as events."""

from __future__ import annotations

import logging
from datetime import timedelta

from core.clock import Clock
from core.conversations import ConversationStore, EventKind
from core.engine import Engine
from core.parts import Failure, Intent, Request

log = logging.getLogger(__name__)

IDLE_SUMMARY_USER = "auto-summary"
"""The ``user`` of idle summaries in the budget ledger, so ``/budget`` shows what they cost."""


async def summarize_idle(
    engine: Engine, store: ConversationStore, *, idle_for: timedelta, within: timedelta
) -> int:
    """Summarize, once each, the conversations that went quiet ``idle_for`` ago (looking back no
    further than ``within`` more), charged to their scope like ``/summary``. Returns how many
    summaries were stored. A summary that fails (budget, provider) is not retried."""
    stored = 0
    for last in await store.fell_idle(idle_for=idle_for, within=within):
        if last.kind is EventKind.USER_MESSAGE and not await store.knows(last.conversation):
            continue  # only conversations the bot takes part in
        request = Request(
            scope=last.scope,
            user=IDLE_SUMMARY_USER,
            text="",
            intent=Intent.SUMMARY,
            conversation=last.conversation,
        )
        failed = False
        async for part in engine.handle(request):
            if isinstance(part, Failure):
                failed = True
                log.info("no idle summary for %s: %s", last.conversation, part.message)
        stored += not failed
    return stored


async def summarize_idle_periodically(
    engine: Engine, store: ConversationStore, *, idle_for: timedelta, clock: Clock, every_s: float = 60
) -> None:
    """Run ``summarize_idle`` every ``every_s`` seconds until cancelled; each run looks back over
    one interval, so every quiet conversation is considered once."""
    while True:
        await clock.sleep(every_s)
        try:
            await summarize_idle(engine, store, idle_for=idle_for, within=timedelta(seconds=every_s))
        except Exception:
            log.exception("idle summaries failed; trying again in %.0f s", every_s)
