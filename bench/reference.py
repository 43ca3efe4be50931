"""The yardstick for time to first text: the smallest streaming bot a developer would write.

``python -m bench.reference discord|slack`` answers every mention with an OpenAI stream: the first
chunk is posted as a reply, then the message is edited at most once a second and once at the end.
No budgets, no database, no pacing: what it measures is what discord.py or slack-bolt plus the
openai SDK cost on their own, on the same fakes and the same machine as the real bot.

It reads the same variables as the bot (``DISCORD_TOKEN``, ``DISCORD_API_URL``,
``DISCORD_GATEWAY_URL``, ``SLACK_BOT_TOKEN``, ``SLACK_APP_TOKEN``, ``SLACK_API_URL``,
``OPENAI_API_KEY``, ``OPENAI_BASE_URL``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import openai

EDIT_EVERY_S = 1.0
MODEL = "gpt-4o-mini"


async def stream_answer(
    llm: openai.AsyncOpenAI,
    prompt: str,
    post: Callable[[str], Awaitable[None]],
    edit: Callable[[str], Awaitable[None]],
) -> None:
    stream = await llm.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": prompt}], stream=True
    )
    text = ""
    posted = False
    edited_at = 0.0
    async for piece in _pieces(stream):
        text += piece
        if not posted:
            await post(text)
            posted, edited_at = True, time.monotonic()
        elif time.monotonic() - edited_at >= EDIT_EVERY_S:
            await edit(text)
            edited_at = time.monotonic()
    if posted:
        await edit(text)


async def _pieces(stream: openai.AsyncStream[openai.types.chat.ChatCompletionChunk]) -> AsyncIterator[str]:
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            yield chunk.choices[0].delta.content


def run_discord() -> None:
    import discord
    import yarl

    discord.http.Route.BASE = os.environ["DISCORD_API_URL"].rstrip("/")
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(os.environ["DISCORD_GATEWAY_URL"])
    intents = discord.Intents.default()
    intents.message_content = True
    client = discord.Client(intents=intents)
    llm = openai.AsyncOpenAI()

    @client.event
    async def on_message(message: discord.Message) -> None:
        me = client.user
        if me is None or message.author.bot or me not in message.mentions:
            return
        prompt = message.content.replace(f"<@{me.id}>", "").strip()
        reply: discord.Message | None = None

        async def post(text: str) -> None:
            nonlocal reply
            reply = await message.reply(text)

        async def edit(text: str) -> None:
            assert reply is not None
            await reply.edit(content=text)

        await stream_answer(llm, prompt, post, edit)

    client.run(os.environ["DISCORD_TOKEN"], log_handler=None)


def run_slack() -> None:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
    from slack_bolt.async_app import AsyncApp
    from slack_bolt.context.say.async_say import AsyncSay
    from slack_sdk.web.async_client import AsyncWebClient

    web = AsyncWebClient(token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"])
    app = AsyncApp(client=web)
    llm = openai.AsyncOpenAI()

    @app.event("app_mention")
    async def mention(event: dict[str, str], say: AsyncSay) -> None:
        prompt = event["text"].split(">", 1)[-1].strip()
        reply_ts = ""

        async def post(text: str) -> None:
            nonlocal reply_ts
            reply_ts = (await say(text=text, thread_ts=event["ts"]))["ts"]

        async def edit(text: str) -> None:
            await web.chat_update(channel=event["channel"], ts=reply_ts, text=text)

        await stream_answer(llm, prompt, post, edit)

    async def serve() -> None:
        await AsyncSocketModeHandler(app, os.environ["SLACK_APP_TOKEN"]).start_async()  # type: ignore[no-untyped-call]

    asyncio.run(serve())


def main(argv: list[str] | None = None) -> None:
    platform = (argv or sys.argv[1:] or [""])[0]
    runners = {"discord": run_discord, "slack": run_slack}
    if platform not in runners:
        sys.exit("usage: python -m bench.reference discord|slack")
    with contextlib.suppress(KeyboardInterrupt):
        runners[platform]()


if __name__ == "__main__":
    main()
