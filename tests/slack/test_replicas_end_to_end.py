"""Two ``python -m bot run`` processes as Slack HTTP replicas on one throwaway PostgreSQL, fed
alternately as a load balancer would, with Slack's retries of an event landing on the OTHER
replica (at once, racing the first delivery, or after it was answered): every mention answered
exactly once, every answer charged exactly once."""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from pathlib import Path
from typing import Any

import pytest

from core.demo.text import chat_answer
from core.ledger import Ledger
from core.money import usd_to_micros
from core.parts import Scope
from tests import pg
from tests.cli import clean_env
from tests.discord.test_run_end_to_end import start_bot_process, stop_bot_process
from tests.discord.test_shards_end_to_end import SONG_COST, free_port
from tests.fakes.fake_slack import BOT_TOKEN, SIGNING_SECRET, TEAM_ID, FakeSlack
from tests.fakes.fake_songs import KEY, MP3, FakeUdio

MENTIONS = 200
CHANNELS = 50
SONG_EVERY = 20
AT_ONCE = 20
"""Deliveries in flight together, as Slack sends a busy workspace's events."""


@pytest.mark.timeout(120)
async def test_two_slack_replicas_answer_every_mention_once_with_retries_sent_to_the_other(
    tmp_path: Path, postgres_server: pg.Server
) -> None:
    database_url = postgres_server.create()
    udio = FakeUdio()
    udio.feed = deque(["complete"])
    await udio.start()
    async with FakeSlack() as slack:
        ports = [free_port(), free_port()]
        urls = [f"http://127.0.0.1:{port}/slack/events" for port in ports]
        processes = []
        try:
            for number, port in enumerate(ports):
                env = clean_env(
                    tmp_path,
                    SLACK_BOT_TOKEN=BOT_TOKEN,
                    SLACK_SIGNING_SECRET=SIGNING_SECRET,
                    SLACK_PORT=str(port),
                    SLACK_API_URL=slack.api_url,
                    DATABASE_URL=database_url,
                    DEMO_PROVIDERS="true",
                    DEMO_DELAY_S="0",
                    SONG_API_KEY=KEY,
                    SONG_API_URL=udio.base_url,
                    SONG_POLL_S="0.05",
                    USER_REQUESTS_PER_MINUTE="0",  # one member asks all 200
                    METRICS_PORT="0",
                    LOG_FORMAT="text",
                    LOG_LEVEL="INFO",
                )
                processes.append(await start_bot_process(tmp_path, env, f"replica-{number}"))
            for url in urls:
                await _when_listening(slack, url)

            mentions: list[dict[str, Any]] = []
            for number in range(MENTIONS):
                song = number % SONG_EVERY == 0
                text = f"write a song about question {number}" if song else f"question {number}"
                mentions.append(slack.mention(text, channel=f"C{number % CHANNELS:04d}"))
            statuses = await _deliver(slack, urls, mentions)
            assert set(statuses) == {200}, Counter(statuses)

            def finished() -> set[str]:
                return {
                    m.thread_ts for m in list(slack.messages.values()) if m.thread_ts and not m.streaming
                } | {f.thread_ts for f in list(slack.files.values()) if f.thread_ts and f.data == MP3}

            threads = {payload["event"]["ts"] for payload in mentions}
            await slack.wait_for(lambda: finished() >= threads, within=90)
        finally:
            codes = [await stop_bot_process(process) for process in processes]
            await udio.close()
        assert codes == [0, 0], _logs(tmp_path)
        # Both replicas have stopped (running work finished first): a double answer would be here.
        for number, payload in enumerate(mentions):
            event = payload["event"]
            if number % SONG_EVERY == 0:
                songs = [f for f in slack.files.values() if f.thread_ts == event["ts"] and f.data == MP3]
                assert len(songs) == 1, event["text"]
            else:
                replies = slack.thread(event["channel"], event["ts"])
                assert [r.text for r in replies] == [chat_answer(f"question {number}").strip()]

    logs = [(tmp_path / f"replica-{n}.log").read_text() for n in range(2)]
    assert all("already handled; ignoring the repeat" in log for log in logs)  # both saw retries
    songs = MENTIONS // SONG_EVERY
    assert len(udio.requests("/api/generate")) == songs
    ledger = await Ledger.open(database_url, default_limit=usd_to_micros("20"))
    try:
        report = await ledger.report(Scope("slack", TEAM_ID), recent=MENTIONS + 10)
        assert (report.used, report.held) == (songs * SONG_COST, 0)
        assert [row.status for row in report.recent] == ["charged"] * MENTIONS
    finally:
        await ledger.close()


async def _deliver(slack: FakeSlack, urls: list[str], mentions: list[dict[str, Any]]) -> list[int]:
    """Event ``n`` goes to replica ``n % 2``; Slack's retry of it goes to the other one: for a
    third of them at the same moment (racing the first delivery), for another third once the
    first was acknowledged."""
    gate = asyncio.Semaphore(AT_ONCE)

    async def post(url: str, payload: dict[str, Any], retry_num: int | None = None) -> int:
        async with gate:
            status, _ = await slack.post_http(url, payload, retry_num=retry_num)
            return status

    async def deliver(number: int, payload: dict[str, Any]) -> list[int]:
        first, other = urls[number % 2], urls[1 - number % 2]
        if number % 3 == 0:
            return list(await asyncio.gather(post(first, payload), post(other, payload, retry_num=1)))
        statuses = [await post(first, payload)]
        if number % 3 == 1:
            statuses.append(await post(other, payload, retry_num=1))
        return statuses

    delivered = await asyncio.gather(*(deliver(number, payload) for number, payload in enumerate(mentions)))
    return [status for statuses in delivered for status in statuses]


async def _when_listening(slack: FakeSlack, url: str) -> None:
    async with asyncio.timeout(30):
        while True:
            try:
                status, _ = await slack.post_http(url, {"type": "url_verification", "challenge": "c"})
            except OSError:
                status = 0
            if status == 200:
                return
            await asyncio.sleep(0.05)


def _logs(tmp_path: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()}" for p in sorted(tmp_path.glob("replica-*.log")))
