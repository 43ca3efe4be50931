"""Socket Mode: the real SocketModeClient connects to the fake's WebSocket and acknowledges envelopes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.slack import SlackBot, SlackConfig, SlackStartupError
from core.engine import Engine
from core.ledger import Ledger
from tests.conftest import CHAT_COST, IMAGE_COST
from tests.fakes.fake_slack import APP_TOKEN, BOT_TOKEN, GENERAL, FakeSlack
from tests.slack.conftest import SCOPE


def socket_config(slack: FakeSlack, **overrides: str) -> SlackConfig:
    values = {"bot_token": BOT_TOKEN, "app_token": APP_TOKEN, "api_url": slack.api_url} | overrides
    return SlackConfig(**values)


@pytest.fixture
async def socket_bot(slack: FakeSlack, engine: Engine, ledger: Ledger) -> AsyncIterator[SlackBot]:
    bot = SlackBot(socket_config(slack), engine=engine, ledger=ledger)
    await bot.start()
    try:
        await slack.wait_connected()
        yield bot
    finally:
        await bot.stop()


async def test_a_mention_over_socket_mode_is_acknowledged_answered_and_deduplicated(
    socket_bot: SlackBot, ledger: Ledger, slack: FakeSlack
) -> None:
    payload = slack.mention("hello")
    assert await slack.send_envelope("events_api", payload) is None
    await socket_bot.drain()
    assert await slack.send_envelope("events_api", payload, retry_attempt=1) is None
    await socket_bot.drain()

    [reply] = slack.thread(GENERAL, payload["event"]["ts"])
    assert "You said: “hello”" in reply.text
    assert (await ledger.report(SCOPE)).used == CHAT_COST
    assert slack.calls_to("apps.connections.open") and slack.socket_connections == 1


async def test_a_slash_command_over_socket_mode(
    socket_bot: SlackBot, ledger: Ledger, slack: FakeSlack
) -> None:
    assert await slack.send_envelope("slash_commands", slack.command("imagine", "a lighthouse")) is None
    await socket_bot.drain()

    [anchor] = slack.top_level(GENERAL)
    [image] = slack.files.values()
    assert image.thread_ts == anchor.ts and image.data is not None
    assert (await ledger.report(SCOPE)).used == IMAGE_COST


async def test_bad_tokens_or_an_unreachable_slack_stop_start_up_with_a_clear_message(
    slack: FakeSlack, engine: Engine, ledger: Ledger
) -> None:
    with pytest.raises(SlackStartupError, match=r"SLACK_APP_TOKEN \(invalid_auth\)"):
        await SlackBot(socket_config(slack, app_token="xapp-wrong"), engine=engine, ledger=ledger).start()
    with pytest.raises(SlackStartupError, match=r"SLACK_BOT_TOKEN \(invalid_auth\)"):
        await SlackBot(socket_config(slack, bot_token="xoxb-wrong"), engine=engine, ledger=ledger).start()
    unreachable = socket_config(slack, api_url="http://127.0.0.1:9/api/")
    with pytest.raises(SlackStartupError, match=r"can't reach Slack at http://127\.0\.0\.1:9/api/"):
        await SlackBot(unreachable, engine=engine, ledger=ledger).start()
    assert slack.socket_connections == 0
