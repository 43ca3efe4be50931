"""How Slack's events reach the app: a Socket Mode connection, or an HTTP listener (Bolt's aiohttp
app on ``SLACK_PORT``)."""

from __future__ import annotations

import json
from collections.abc import Callable

from aiohttp import WSMessage, web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError

from adapters.slack.config import EVENTS_PATH, SlackConfig
from adapters.slack.surface import error_code


class SlackStartupError(RuntimeError):
    """Slack refused the configured credentials; the message says which one and why."""


class SlackTransport:
    """Opens and closes the way events come in; ``on_connection`` hears when a Socket Mode
    connection comes and goes (Slack reconnects by itself)."""

    def __init__(self, config: SlackConfig, *, on_connection: Callable[[bool], None]) -> None:
        self._config = config
        self._on_connection = on_connection
        self._socket: AsyncSocketModeHandler | None = None
        self._runner: web.AppRunner | None = None
        self._closing = False

    async def open(self, bolt: AsyncApp) -> None:
        self._closing = False
        if self._config.mode == "socket":
            await self._connect_socket(bolt)
        else:
            await self._listen_http(bolt)

    async def close(self) -> None:
        self._closing = True
        if self._socket is not None:
            socket, self._socket = self._socket, None
            await socket.close_async()  # type: ignore[no-untyped-call]
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    @property
    def http_port(self) -> int | None:
        """The port HTTP mode actually listens on (useful with port 0)."""
        if self._runner is None:
            return None
        for address in self._runner.addresses:
            if isinstance(address, tuple):
                return int(address[1])
        return None

    async def _connect_socket(self, bolt: AsyncApp) -> None:
        handler = self._socket = AsyncSocketModeHandler(bolt, app_token=self._config.app_token)
        try:
            # Ask for the WebSocket URL first: the client would retry a bad app token forever.
            handler.client.wss_uri = await handler.client.issue_new_wss_url()
        except SlackApiError as error:
            raise SlackStartupError(f"Slack rejected SLACK_APP_TOKEN ({error_code(error)})") from None
        handler.client.on_message_listeners.append(self._watch_socket)
        await handler.connect_async()  # type: ignore[no-untyped-call]

    async def _watch_socket(self, message: WSMessage) -> None:
        """Readiness follows the connection: Slack says ``disconnect`` before it drops one (the
        client then reconnects by itself) and ``hello`` on every new one."""
        try:
            kind = json.loads(message.data).get("type")
        except (TypeError, ValueError, AttributeError):
            return
        if kind in ("hello", "disconnect") and not self._closing:
            self._on_connection(kind == "hello")

    async def _listen_http(self, bolt: AsyncApp) -> None:
        # Bolt logs what matters about each request; an access log line per event is noise.
        runner = web.AppRunner(bolt.web_app(path=EVENTS_PATH, port=self._config.port), access_log=None)
        await runner.setup()
        self._runner = runner
        await web.TCPSite(runner, self._config.host, self._config.port).start()
