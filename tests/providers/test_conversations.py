"""Conversations through the real openai SDK: prior turns in the request body, trimming, routing
follow-ups with the classifier, and summaries charged by tokens."""

from __future__ import annotations

from typing import Any

import openai

from core.conversations import ConversationStore
from core.engine import Engine
from core.generator import Generator
from core.ledger import Ledger
from core.parts import Audio, Intent, Part, Request, Status, TextDelta
from core.providers import OpenAIClassifier, OpenAISummaryGenerator, TextModel, chat_generator
from core.providers.openai_text import CHAT_INSTRUCTIONS
from core.providers.pricing import TokenPrice
from core.providers.summary import SUMMARY_INSTRUCTIONS
from tests.conftest import demo_engine
from tests.fakes.fake_openai import FakeOpenAI, Stream, route
from tests.providers.conftest import SCOPE

PRICE = TokenPrice(input=150_000, output=600_000)
ALLOWANCE = 10_000
THREAD = "test:thread:7"


def model(name: str = "gpt-4o-mini") -> TextModel:
    return TextModel(name=name, price=PRICE, allowance=ALLOWANCE, max_output_tokens=2000)


def remembering(ledger: Ledger, *generators: Generator, classifier: OpenAIClassifier | None = None) -> Engine:
    chosen = dict(demo_engine(ledger).generators)
    chosen.update({generator.intent: generator for generator in generators})
    return Engine(
        ledger=ledger,
        generators=chosen,
        classifier=classifier,
        conversations=ConversationStore(ledger.database),
    )


async def ask(engine: Engine, text: str, *, intent: Intent | None = None, user: str = "U1") -> list[Part]:
    request = Request(scope=SCOPE, user=user, text=text, intent=intent, conversation=THREAD)
    return [part async for part in engine.handle(request)]


def contents(body: Any) -> list[tuple[str, str]]:
    return [(message["role"], message["content"]) for message in body["messages"]]


async def test_the_chat_model_receives_the_prior_turns(
    ledger: Ledger, fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI
) -> None:
    fake_openai.chat.extend([Stream("Nice to meet you, Ann."), Stream("Your name is Ann.")])
    engine = remembering(ledger, chat_generator(openai_client, model()))

    await ask(engine, "hi, I'm Ann")
    await ask(engine, "what is my name?")

    first, second = fake_openai.bodies()
    assert contents(first) == [("system", CHAT_INSTRUCTIONS), ("user", "hi, I'm Ann")]
    assert contents(second) == [
        ("system", CHAT_INSTRUCTIONS),
        ("user", "hi, I'm Ann"),
        ("assistant", "Nice to meet you, Ann."),
        ("user", "what is my name?"),
    ]


async def test_several_people_are_told_apart_and_media_is_named(
    ledger: Ledger, fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI
) -> None:
    fake_openai.chat.append(Stream("It's a fox."))
    engine = remembering(ledger, chat_generator(openai_client, model()))

    await ask(engine, "a red fox", intent=Intent.IMAGE, user="U1")
    await ask(engine, "what did you draw?", user="U2")

    (body,) = fake_openai.bodies()
    assert contents(body)[1:] == [
        ("user", "<U1> /imagine a red fox"),
        ("assistant", "[delivered image: a red fox]"),
        ("user", "<U2> what did you draw?"),
    ]


async def test_old_turns_are_trimmed_first_and_the_model_and_person_are_told(
    ledger: Ledger, fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI
) -> None:
    fake_openai.chat.extend([Stream(f"answer {n}") for n in range(6)])
    generator = chat_generator(openai_client, model(), history_tokens=60)
    engine = remembering(ledger, generator)
    for n in range(5):
        await ask(engine, f"question {n} " + "padding " * 10)

    parts = await ask(engine, "the last question")

    body = fake_openai.bodies()[-1]
    sent = contents(body)
    assert sent[1][0] == "system" and "earlier turns of this conversation were left out" in sent[1][1]
    assert sent[-2:] == [("assistant", "answer 4"), ("user", "the last question")]
    assert ("assistant", "answer 0") not in sent  # the oldest went first
    assert any(isinstance(part, Status) and "older left out" in part.text for part in parts)


async def test_a_follow_up_routes_to_a_song_about_the_earlier_image(
    ledger: Ledger, fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI
) -> None:
    classifier = OpenAIClassifier(client=openai_client, model=model("router-model"))
    engine = remembering(ledger, classifier=classifier)
    await ask(engine, "a red fox", intent=Intent.IMAGE)
    fake_openai.chat.append(route("song", "a song about a red fox", usage=(300, 20)))

    parts = await ask(engine, "now a song about that")

    (body,) = fake_openai.bodies()
    assert body["messages"][-1] == {"role": "user", "content": "now a song about that"}
    context = body["messages"][1]["content"]
    assert "user U1: /imagine a red fox" in context and "bot: [delivered image: a red fox]" in context
    assert body["response_format"]["json_schema"]["schema"]["properties"]["intent"]["enum"] == [
        "image",
        "song",
        "research",
        "chat",
    ]
    [song] = [part for part in parts if isinstance(part, Audio)]
    assert song.prompt == "a song about a red fox"
    report = await ledger.report(SCOPE)
    assert report.by_service == {"image": 40_000, "router": PRICE.cost(300, 20), "song": 50_000}


async def test_a_summary_reads_the_transcript_and_is_charged_by_tokens(
    ledger: Ledger, fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI
) -> None:
    fake_openai.chat.append(Stream("• U1 asked for a red fox; the bot drew one.", usage=(120, 30)))
    engine = remembering(ledger, OpenAISummaryGenerator(client=openai_client, model=model()))
    await ask(engine, "a red fox", intent=Intent.IMAGE)

    parts = await ask(engine, "what was drawn", intent=Intent.SUMMARY)

    (body,) = fake_openai.bodies()
    assert body["messages"][0] == {"role": "system", "content": SUMMARY_INSTRUCTIONS}
    transcript = body["messages"][1]["content"]
    assert "user U1: /imagine a red fox\nbot: [delivered image: a red fox]" in transcript
    assert transcript.endswith("Focus the summary on: what was drawn")
    assert "".join(part.text for part in parts if isinstance(part, TextDelta)).startswith("• U1 asked")
    row = (await ledger.report(SCOPE)).recent[0]
    assert (row.service, row.reserved, row.charged) == ("summary", ALLOWANCE, PRICE.cost(120, 30))
