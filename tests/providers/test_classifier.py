"""Routing with the real classifier: rules first, structured output next, chat when it fails."""

from __future__ import annotations

import logging

import openai
import pytest

from core.ledger import Ledger
from core.parts import Image, Intent
from core.providers import OpenAIClassifier, TextModel
from core.providers.pricing import TokenPrice
from tests.fakes.fake_openai import FakeOpenAI, completion, error, route
from tests.fakes.provider_server import Reply
from tests.providers.conftest import ask, engine_with

PRICE = TokenPrice(input=150_000, output=600_000)
ROUTER_ALLOWANCE = 10_000


@pytest.fixture
def classifier(openai_client: openai.AsyncOpenAI) -> OpenAIClassifier:
    model = TextModel(name="router-model", price=PRICE, allowance=ROUTER_ALLOWANCE, max_output_tokens=1200)
    return OpenAIClassifier(client=openai_client, model=model)


@pytest.mark.parametrize(
    ("text", "intent"),
    [("draw a lighthouse at dusk", "image"), ("hi there!", "chat"), ("write a song about cats", "song")],
)
async def test_confident_rules_never_call_the_classifier(
    ledger: Ledger, fake_openai: FakeOpenAI, classifier: OpenAIClassifier, text: str, intent: str
) -> None:
    outcome = await ask(engine_with(ledger, classifier=classifier), text)

    assert fake_openai.bodies() == []
    assert [row.service for row in outcome.rows] == [intent]


async def test_a_question_goes_to_the_classifier_which_is_charged_by_tokens(
    ledger: Ledger, fake_openai: FakeOpenAI, classifier: OpenAIClassifier
) -> None:
    fake_openai.chat.append(route("chat", "what should I name my cat?", usage=(50, 10)))

    outcome = await ask(engine_with(ledger, classifier=classifier), "what should I name my cat?")

    (body,) = fake_openai.bodies()
    schema = body["response_format"]
    assert schema["type"] == "json_schema" and schema["json_schema"]["strict"] is True
    properties = schema["json_schema"]["schema"]["properties"]
    assert properties["intent"]["enum"] == ["image", "song", "research", "chat"]
    assert "Greetings" in body["messages"][0]["content"]
    router = outcome.row("router")
    assert (router.status, router.reserved, router.charged) == (
        "charged",
        ROUTER_ALLOWANCE,
        PRICE.cost(50, 10),
    )
    assert outcome.row("chat").status == "charged"


async def test_the_classifier_route_and_cleaned_prompt_are_used(
    ledger: Ledger, fake_openai: FakeOpenAI, classifier: OpenAIClassifier
) -> None:
    fake_openai.chat.append(route("image", "a fox in the snow"))

    outcome = await ask(engine_with(ledger, classifier=classifier), "could you make me a fox in the snow")

    images = [part for part in outcome.parts if isinstance(part, Image)]
    assert len(images) == 1 and images[0].prompt == "a fox in the snow"
    assert outcome.row("image").prompt == "a fox in the snow"


@pytest.mark.parametrize(
    "reply",
    [
        route("video", "a fox"),
        Reply(body=completion("this is not json")),
        Reply(body=completion('{"intent": "image"}')),
        Reply(body=completion("")),
        error(500, "boom"),
    ],
    ids=["unknown-intent", "not-json", "missing-prompt", "empty", "http-500"],
)
async def test_a_failed_or_invalid_classification_falls_back_to_chat(
    ledger: Ledger,
    fake_openai: FakeOpenAI,
    classifier: OpenAIClassifier,
    reply: Reply,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake_openai.chat.append(reply)

    with caplog.at_level(logging.WARNING, logger="core.engine"):
        outcome = await ask(
            engine_with(ledger, classifier=classifier), "a fox, but as a melody and a drawing"
        )

    assert outcome.failure is None
    assert outcome.row("router").status == "refunded"
    assert outcome.row("chat").prompt == "a fox, but as a melody and a drawing"
    assert "classifier failed" in caplog.text and "answering as chat" in caplog.text


async def test_classify_returns_the_intent_the_prompt_and_the_token_cost(
    classifier: OpenAIClassifier, fake_openai: FakeOpenAI
) -> None:
    fake_openai.chat.append(route("research", "tides"))
    answer = await classifier.classify("tell me about tides in a report-ish way")
    assert (answer.intent, answer.prompt) == (Intent.RESEARCH, "tides")
    assert answer.cost == PRICE.cost(50, 10)
