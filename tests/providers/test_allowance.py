"""Pricier chat models within a small per-answer allowance: the history is trimmed to fit, oldest
first, the question always kept, and start-up says when an allowance is too small (issue 15, item 6)."""

from __future__ import annotations

from typing import Any

import openai

from core.conversations import ConversationStore
from core.engine import Engine
from core.ledger import Ledger
from core.parts import Failure, Intent, Part, Request, TextDelta
from core.providers import TextModel, chat_generator, research_generator
from core.providers.openai_text import allowance_warning
from core.providers.pricing import TokenPrice, estimated_tokens
from core.providers.summary import OpenAISummaryGenerator
from tests.conftest import demo_engine
from tests.fakes.fake_openai import FakeOpenAI, Stream
from tests.providers.conftest import SCOPE

GPT_4O = TokenPrice(input=2_500_000, output=10_000_000)  # $2.50 / $10 per million tokens
GPT_4O_MINI = TokenPrice(input=150_000, output=600_000)
CHAT_COST = 2_000  # CHAT_COST_USD's default, $0.002
THREAD = "test:thread:allowance"


def gpt_4o(allowance: int = CHAT_COST) -> TextModel:
    return TextModel(name="gpt-4o", price=GPT_4O, allowance=allowance, max_output_tokens=2000)


def remembering(ledger: Ledger, generator: Any) -> Engine:
    generators = dict(demo_engine(ledger).generators)
    generators[generator.intent] = generator
    return Engine(ledger=ledger, generators=generators, conversations=ConversationStore(ledger.database))


async def say(engine: Engine, text: str, intent: Intent = Intent.CHAT) -> list[Part]:
    request = Request(scope=SCOPE, user="U1", text=text, intent=intent, conversation=THREAD)
    return [part async for part in engine.handle(request)]


def failure(parts: list[Part]) -> str | None:
    return next((part.message for part in parts if isinstance(part, Failure)), None)


def within_allowance(body: dict[str, Any], price: TokenPrice, allowance: int) -> bool:
    contents = [message["content"] for message in body["messages"]]
    return price.cost(estimated_tokens(*contents), body["max_completion_tokens"]) <= allowance


async def test_gpt_4o_keeps_answering_a_conversation_on_the_default_allowance(
    ledger: Ledger, fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI
) -> None:
    long_answer = "Tides rise and fall twice a day because of the moon. " * 40  # ~2,100 characters
    fake_openai.chat.extend([Stream(long_answer, usage=(90, 150)), Stream("Yes.", usage=(90, 2))])
    engine = remembering(ledger, chat_generator(openai_client, gpt_4o()))

    first = await say(engine, "why are there tides?")
    second = await say(engine, "and is it the same on lakes?")
    third = await say(engine, "thanks!")

    assert [failure(first), failure(second), failure(third)] == [None, None, None]
    for body in fake_openai.bodies():
        assert body["messages"][-1]["role"] == "user"
        assert body["max_completion_tokens"] >= 64 and within_allowance(body, GPT_4O, CHAT_COST)
    second_body = fake_openai.bodies()[1]
    sent = [message["content"] for message in second_body["messages"]]
    assert sent[-1] == "and is it the same on lakes?"
    # The long answer is sent cut short, so that the allowance still pays for an answer.
    assert long_answer.strip() not in sent
    assert any(content.startswith("Tides rise") and content.endswith("[cut]") for content in sent)


async def test_the_oldest_turns_are_left_out_first_and_the_newest_kept(
    ledger: Ledger, fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI
) -> None:
    allowance = 10_000  # $0.01 on gpt-4o: room for some of the conversation
    answers = [f"Answer {number}: " + "the sea is deep and wide. " * 150 for number in range(3)]
    fake_openai.chat.extend([Stream(answer, usage=(500, 600)) for answer in answers] + [Stream("Ok.")])
    engine = remembering(ledger, chat_generator(openai_client, gpt_4o(allowance)))

    for number in range(3):
        assert failure(await say(engine, f"question {number}")) is None
    last = await say(engine, "which answer was first?")

    assert failure(last) is None
    body = fake_openai.bodies()[-1]
    sent = [message["content"] for message in body["messages"]]
    assert sent[-1] == "which answer was first?"
    assert answers[2].strip() in sent and "question 2" in sent  # the newest exchange is kept
    assert "question 0" not in sent and answers[0].strip() not in sent  # the oldest is left out
    assert any("left out" in content for content in sent)  # and the model is told
    assert body["max_completion_tokens"] >= 300 and within_allowance(body, GPT_4O, allowance)


async def test_a_summary_that_cannot_afford_any_turn_is_refunded_with_a_reason(
    ledger: Ledger, fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI
) -> None:
    fake_openai.chat.append(Stream("Tides " * 400, usage=(90, 800)))
    summary = OpenAISummaryGenerator(client=openai_client, model=gpt_4o(400))
    engine = remembering(ledger, chat_generator(openai_client, gpt_4o(20_000)))
    engine.generators[Intent.SUMMARY] = summary

    await say(engine, "tell me all about tides")
    parts = await say(engine, "", Intent.SUMMARY)

    message = failure(parts)
    assert message is not None and "RESEARCH_COST_USD" in message and message.endswith("Nothing was charged.")
    assert len(fake_openai.bodies()) == 1 and not [part for part in parts if isinstance(part, TextDelta)]


def test_start_up_warns_when_an_allowance_cannot_pay_for_a_useful_answer(
    openai_client: openai.AsyncOpenAI,
) -> None:
    chat_4o = chat_generator(openai_client, gpt_4o())
    chat_mini = chat_generator(
        openai_client, TextModel(name="m", price=GPT_4O_MINI, allowance=2_000, max_output_tokens=2000)
    )
    research_4o = research_generator(openai_client, gpt_4o(10_000))
    flat = chat_generator(openai_client, TextModel(name="x", price=None, allowance=1, max_output_tokens=2000))

    warning = allowance_warning(chat_4o, variable="CHAT_COST_USD")
    assert (
        warning is not None and warning.startswith("CHAT_COST_USD=$0.002 can't pay") and "gpt-4o" in warning
    )
    research_warning = allowance_warning(research_4o, variable="RESEARCH_COST_USD")
    assert research_warning is not None and "RESEARCH_COST_USD" in research_warning
    assert allowance_warning(chat_mini, variable="CHAT_COST_USD") is None
    assert allowance_warning(flat, variable="CHAT_COST_USD") is None
