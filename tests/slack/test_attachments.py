"""Files shared with a Slack mention, fetched by the real Bolt app from the fake's ``url_private``
with the bot token, and sent to a chat model behind a fake OpenAI server."""

from __future__ import annotations

import base64

import httpx
import openai

from core.attachments import AttachmentReader
from core.engine import Engine
from core.ledger import Ledger
from core.parts import Intent
from core.providers import TextModel, chat_generator
from core.providers.pricing import TokenPrice
from tests.fakes.fake_openai import FakeOpenAI, Stream
from tests.fakes.fake_slack import BOT_TOKEN, GENERAL, FakeSlack
from tests.slack.conftest import SCOPE, StartHttp

PRICE = TokenPrice(input=150_000, output=600_000)
PNG = b"\x89PNG\r\n\x1a\n" + b"a lighthouse, drawn small" * 10


def vision_engine(ledger: Ledger, fake_openai: FakeOpenAI, http: httpx.AsyncClient) -> Engine:
    client = openai.AsyncOpenAI(
        api_key="sk-test", base_url=fake_openai.base_url, http_client=http, max_retries=0
    )
    model = TextModel(name="gpt-4o-mini", price=PRICE, allowance=10_000, max_output_tokens=1000)
    return Engine(ledger=ledger, generators={Intent.CHAT: chat_generator(client, model)})


def reader(http: httpx.AsyncClient, token: str = BOT_TOKEN) -> AttachmentReader:
    """What ``bot.platforms`` builds, with the fake standing in for files.slack.com."""
    return AttachmentReader.of(
        http, hosts=["127.0.0.1"], service="Slack", headers={"Authorization": f"Bearer {token}"}
    )


def replies(slack: FakeSlack, thread_ts: str) -> str:
    return "\n".join(message.text for message in slack.thread(GENERAL, thread_ts))


async def test_a_shared_image_is_fetched_with_the_bot_token_and_sent_as_an_image_url(
    start_http: StartHttp, slack: FakeSlack, ledger: Ledger, fake_openai: FakeOpenAI, http: httpx.AsyncClient
) -> None:
    fake_openai.chat.append(Stream("A small drawing of a lighthouse.", usage=(900, 12)))
    harness = await start_http(vision_engine(ledger, fake_openai, http), attachments=reader(http))
    picture = slack.shared_file("lighthouse.png", PNG, mimetype="image/png")

    payload = await harness.mention("what is in this picture?", files=[picture])

    assert "A small drawing of a lighthouse." in replies(slack, payload["event"]["ts"])
    assert slack.file_requests == [("lighthouse.png", f"Bearer {BOT_TOKEN}")]
    (body,) = fake_openai.bodies()
    assert body["messages"][-1]["content"] == [
        {"type": "text", "text": "what is in this picture?"},
        {
            "type": "image_url",
            "image_url": {"url": "data:image/png;base64," + base64.b64encode(PNG).decode()},
        },
    ]
    report = await ledger.report(SCOPE)
    assert [(row.service, row.status, row.charged) for row in report.recent] == [
        ("chat", "charged", PRICE.cost(900, 12))
    ]


async def test_a_file_slack_wont_hand_over_is_refused_without_charge(
    start_http: StartHttp, slack: FakeSlack, ledger: Ledger, fake_openai: FakeOpenAI, http: httpx.AsyncClient
) -> None:
    """Without a valid token (no ``files:read``) Slack serves its sign-in page, not the file."""
    harness = await start_http(
        vision_engine(ledger, fake_openai, http), attachments=reader(http, "xoxb-wrong")
    )
    picture = slack.shared_file("lighthouse.png", PNG, mimetype="image/png")

    payload = await harness.mention("what is in this picture?", files=[picture])

    said = replies(slack, payload["event"]["ts"])
    assert "I wasn't allowed to download `lighthouse.png`." in said and "Nothing was charged." in said
    assert fake_openai.bodies() == [] and (await ledger.report(SCOPE)).recent == []


async def test_a_file_on_a_foreign_host_is_refused_without_fetching_or_charge(
    start_http: StartHttp, slack: FakeSlack, ledger: Ledger, fake_openai: FakeOpenAI, http: httpx.AsyncClient
) -> None:
    harness = await start_http(vision_engine(ledger, fake_openai, http), attachments=reader(http))
    port = slack.url.rsplit(":", 1)[1]
    picture = slack.shared_file(
        "lighthouse.png", PNG, mimetype="image/png", url=f"http://localhost:{port}/files-pri/lighthouse.png"
    )

    payload = await harness.mention("what is in this picture?", files=[picture])

    said = replies(slack, payload["event"]["ts"])
    assert "I only read attachments stored on Slack itself" in said and "Nothing was charged." in said
    assert slack.file_requests == [] and fake_openai.bodies() == []
    assert (await ledger.report(SCOPE)).recent == []
