"""Slack adapter: mentions and slash commands in, streamed thread replies and file uploads out."""

from __future__ import annotations

from adapters.slack.app import SlackBot, SlackStartupError
from adapters.slack.config import SlackConfig
from adapters.slack.manifest import app_manifest
from adapters.slack.surface import SlackSurface, StreamingSupport
from core.clock import Clock
from core.engine import Engine
from core.ledger import Ledger


async def run_slack(
    config: SlackConfig, *, engine: Engine, ledger: Ledger, clock: Clock | None = None
) -> None:
    """Serve Slack until cancelled; safe to run beside other adapters in one event loop."""
    await SlackBot(config, engine=engine, ledger=ledger, clock=clock).run()


__all__ = [
    "SlackBot",
    "SlackConfig",
    "SlackStartupError",
    "SlackSurface",
    "StreamingSupport",
    "app_manifest",
    "run_slack",
]
