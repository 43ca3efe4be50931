"""Slack adapter: mentions, thread follow-ups and slash commands in, streamed thread replies and file
uploads out; each thread is a conversation remembered by the engine's store.

The names below load on first use, so that reading the settings (``adapters.slack.config``) does
not import slack_bolt."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adapters.slack.app import SlackBot
    from adapters.slack.config import SlackConfig, SlackSettings
    from adapters.slack.manifest import app_manifest
    from adapters.slack.transport import SlackStartupError
    from core.attachments import AttachmentReader
    from core.clock import Clock
    from core.engine import Engine, Resumption
    from core.health import Readiness
    from core.ledger import Ledger

_MODULES = {
    "SlackBot": "app",
    "SlackStartupError": "transport",
    "SlackConfig": "config",
    "SlackSettings": "config",
    "app_manifest": "manifest",
}

__all__ = [
    "SlackBot",
    "SlackConfig",
    "SlackSettings",
    "SlackStartupError",
    "app_manifest",
    "run_slack",
]


async def run_slack(
    config: SlackConfig,
    *,
    engine: Engine,
    ledger: Ledger,
    clock: Clock | None = None,
    readiness: Readiness | None = None,
    resumptions: Sequence[Resumption] = (),
    attachments: AttachmentReader | None = None,
) -> None:
    """Serve Slack until cancelled; safe to run beside other adapters in one event loop.

    ``readiness`` tracks the link to Slack under ``"slack"``. Once connected, the bot delivers
    each of ``resumptions`` (jobs from before a restart) into the Slack thread it was asked in.
    """
    from adapters.slack.app import SlackBot

    bot = SlackBot(
        config, engine=engine, ledger=ledger, clock=clock, readiness=readiness, attachments=attachments
    )
    await bot.run(resumptions=resumptions)


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_MODULES[name]}"), name)
