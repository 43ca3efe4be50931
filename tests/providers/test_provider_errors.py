"""A provider's error text reaches only the (redacting) logs: never the person, the ledger or the
job rows (issue 15, item 10)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from bot.logs import REDACTED, Redactor
from core.errors import GenerationError, ModerationError
from core.ledger import Ledger
from core.parts import Intent
from core.providers import BflImageGenerator, OpenAIClassifier, TextModel, chat_generator
from core.providers.pricing import TokenPrice
from tests.fakes.fake_bfl import KEY, FakeBfl
from tests.fakes.fake_openai import FakeOpenAI, error
from tests.fakes.provider_server import Reply
from tests.providers.conftest import POLICY, InstantClock, ask, engine_with

PRICE = TokenPrice(input=150_000, output=600_000)
LEAK = f"invalid request: x-key {KEY} may not ask for width 1000"


@pytest.fixture
def redacted_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """The captured logs passed through the bot's redactor, as the configured handler does."""
    redactor = Redactor([KEY, "sk-test-secret"])
    caplog.handler.addFilter(redactor)
    caplog.set_level(logging.INFO)
    try:
        yield caplog
    finally:
        caplog.handler.removeFilter(redactor)


def stored(tmp_path: Path) -> bytes:
    """Every byte the ledger's database files hold (rows, notes, the write-ahead log)."""
    return b"".join(path.read_bytes() for path in tmp_path.glob("ledger.db*"))


def bfl(fake: FakeBfl, http: httpx.AsyncClient, clock: InstantClock) -> BflImageGenerator:
    return BflImageGenerator(
        http=http,
        clock=clock,
        api_url=fake.base_url,
        api_key=KEY,
        model="flux-pro-1.1",
        width=1024,
        height=768,
        timeout_s=120,
        cost=40_000,
        policy=POLICY,
    )


@pytest.mark.parametrize("status", [400, 422, 500])
async def test_a_bfl_error_quoting_the_key_is_shown_to_no_one(
    ledger: Ledger,
    fake_bfl: FakeBfl,
    http: httpx.AsyncClient,
    clock: InstantClock,
    tmp_path: Path,
    redacted_logs: pytest.LogCaptureFixture,
    status: int,
) -> None:
    fake_bfl.submits.append(Reply(status, {"detail": LEAK}))

    outcome = await ask(engine_with(ledger, bfl(fake_bfl, http, clock)), "a fox", Intent.IMAGE)

    assert outcome.failure is not None and outcome.failure.startswith("The image service")
    assert KEY not in outcome.failure and "width 1000" not in outcome.failure
    assert outcome.row("image").status == "refunded"
    assert KEY.encode() not in stored(tmp_path) and b"width 1000" not in stored(tmp_path)
    # The operator still gets the provider's words, with the key redacted.
    logged = "\n".join(record.getMessage() for record in redacted_logs.records)
    assert "may not ask for width 1000" in logged and f"x-key {REDACTED}" in logged and KEY not in logged


async def test_a_text_error_quoting_the_key_is_shown_to_no_one(
    ledger: Ledger, fake_openai: FakeOpenAI, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    client = openai.AsyncOpenAI(
        api_key="sk-test-secret", base_url=fake_openai.base_url, http_client=http, max_retries=0
    )
    fake_openai.chat.append(error(400, "Bad request for key sk-test-secret: 'temperature' must be < 2"))
    model = TextModel(name="gpt-4o-mini", price=PRICE, allowance=10_000, max_output_tokens=2000)

    outcome = await ask(
        engine_with(ledger, chat_generator(client, model)), "hello, how are tides made", Intent.CHAT
    )

    assert outcome.failure is not None and outcome.failure.startswith("The text service refused the request")
    assert "sk-test-secret" not in outcome.failure and "temperature" not in outcome.failure
    assert b"sk-test-secret" not in stored(tmp_path)


async def test_a_failing_classifier_leaves_no_provider_text_in_its_refund_note(
    ledger: Ledger, fake_openai: FakeOpenAI, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    client = openai.AsyncOpenAI(
        api_key="sk-test-secret", base_url=fake_openai.base_url, http_client=http, max_retries=0
    )
    fake_openai.chat.append(error(401, "Incorrect API key provided: sk-test-secret"))
    model = TextModel(name="router-model", price=PRICE, allowance=10_000, max_output_tokens=1200)
    classifier = OpenAIClassifier(client=client, model=model)

    outcome = await ask(engine_with(ledger, classifier=classifier), "what should I name my cat?")

    assert outcome.row("router").status == "refunded"
    assert b"sk-test-secret" not in stored(tmp_path)


def test_an_errors_text_and_repr_are_its_user_message() -> None:
    failure = ModerationError("The image service declined this prompt.", detail=f"BFL said {KEY}")

    assert str(failure) == "The image service declined this prompt."
    assert KEY not in repr(failure) and KEY not in f"moderated: {failure}" and KEY not in str(failure.args)
    assert failure.detail == f"BFL said {KEY}"
    assert isinstance(failure, GenerationError)
