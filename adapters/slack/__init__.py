"""Slack adapter: mentions, thread follow-ups and slash commands in, streamed thread replies and file
uploads out; each thread is a conversation remembered by the engine's store."""

from __future__ import annotations

from collections.abc import Sequence

from adapters.slack.app import SlackBot, SlackStartupError
from adapters.slack.config import SlackConfig
from adapters.slack.manifest import app_manifest
from adapters.slack.surface import SlackSurface, StreamingSupport
from core.clock import Clock
from core.engine import Engine, Resumption
from core.health import Readiness
from core.ledger import Ledger


async def run_slack(
    config: SlackConfig,
    *,
    engine: Engine,
    ledger: Ledger,
    clock: Clock | None = None,
    readiness: Readiness | None = None,
    resumptions: Sequence[Resumption] = (),
) -> None:
    """Serve Slack until cancelled; safe to run beside other adapters in one event loop.

    ``readiness`` tracks the link to Slack under ``"slack"``. Once connected, the bot delivers
    each of ``resumptions`` (jobs from before a restart) into the Slack thread it was asked in.
    """
    bot = SlackBot(config, engine=engine, ledger=ledger, clock=clock, readiness=readiness)
    await bot.run(resumptions=resumptions)


__all__ = [
    "SlackBot",
    "SlackConfig",
    "SlackStartupError",
    "SlackSurface",
    "StreamingSupport",
    "app_manifest",
    "run_slack",
]
