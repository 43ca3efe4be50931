"""Research and chat through the real openai SDK against a fake SSE server, settled in a real ledger."""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import openai
import pytest

from core.ledger import Ledger
from core.money import format_usd
from core.parts import Intent, TextDelta
from core.providers import TextModel, chat_generator, research_generator
from core.providers.openai_text import RESEARCH_INSTRUCTIONS
from core.providers.pricing import TokenPrice, estimated_tokens
from tests.fakes.fake_openai import FakeOpenAI, Stream, completion, error
from tests.fakes.provider_server import Reply
from tests.providers.conftest import ask, engine_with

PRICE = TokenPrice(input=150_000, output=600_000)  # $0.15 / $0.60 per million tokens
ALLOWANCE = 10_000  # $0.01
PAPER = (
    "# Lighthouses\n\n**Abstract.** Lights on rocks.\n\n## Introduction\n\nThey guide ships.\n\n"
    "## References\n\n1. Stevenson, A. *Lighthouse Illumination*. 1871.\n"
)


def model(*, price: TokenPrice | None = PRICE, allowance: int = ALLOWANCE, cap: int = 8000) -> TextModel:
    return TextModel(name="gpt-4o-mini", price=price, allowance=allowance, max_output_tokens=cap)


def text_of(outcome_parts: Sequence[object]) -> str:
    return "".join(part.text for part in outcome_parts if isinstance(part, TextDelta))


async def test_research_streams_a_paper_and_charges_the_reported_tokens(
    ledger: Ledger, fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI
) -> None:
    fake_openai.chat.append(Stream(PAPER, usage=(100, 200)))
    engine = engine_with(ledger, research_generator(openai_client, model()))

    outcome = await ask(engine, "lighthouses", Intent.RESEARCH)

    assert outcome.failure is None
    deltas = [part for part in outcome.parts if isinstance(part, TextDelta)]
    assert len(deltas) > 5 and text_of(outcome.parts) == PAPER
    (body,) = fake_openai.bodies()
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["model"] == "gpt-4o-mini"
    assert body["messages"][0] == {"role": "system", "content": RESEARCH_INSTRUCTIONS}
    assert body["messages"][1] == {"role": "user", "content": "lighthouses"}
    row = outcome.row("research")
    assert (row.status, row.reserved, row.charged) == ("charged", ALLOWANCE, 135)  # 100×0.15 + 200×0.60
    assert (outcome.report.used, outcome.report.held) == (135, 0)


async def test_the_output_cap_keeps_the_worst_case_within_the_reservation(
    ledger: Ledger, fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI
) -> None:
    fake_openai.chat.append(Stream("Hi!", usage=(30, 2)))
    engine = engine_with(ledger, chat_generator(openai_client, model(allowance=600)))

    outcome = await ask(engine, "tell me about tides", Intent.CHAT)

    assert outcome.failure is None
    limit = fake_openai.bodies()[0]["max_completion_tokens"]
    messages = [message["content"] for message in fake_openai.bodies()[0]["messages"]]
    estimate = PRICE.cost(estimated_tokens(*messages), limit)
    assert 64 <= limit < 1000 and estimate <= 600 < PRICE.cost(estimated_tokens(*messages), limit + 2)
    assert outcome.row("chat").charged == PRICE.cost(30, 2)


async def test_without_a_usage_chunk_an_estimate_is_charged(
    ledger: Ledger, fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI
) -> None:
    fake_openai.chat.append(Stream(PAPER, usage=None))
    engine = engine_with(ledger, research_generator(openai_client, model()))

    outcome = await ask(engine, "lighthouses", Intent.RESEARCH)

    assert outcome.failure is None
    row = outcome.row("research")
    assert row.status == "charged" and 0 < row.charged < ALLOWANCE


async def test_a_model_without_a_price_is_charged_its_flat_allowance(
    ledger: Ledger, fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI
) -> None:
    fake_openai.chat.append(Stream("Sure.", usage=(10, 2)))
    engine = engine_with(ledger, chat_generator(openai_client, model(price=None, allowance=2_000, cap=2000)))

    outcome = await ask(engine, "hello there, how are tides made", Intent.CHAT)

    assert fake_openai.bodies()[0]["max_completion_tokens"] == 2000
    assert outcome.row("chat").charged == 2_000


async def test_a_stream_cut_mid_way_keeps_the_text_and_charges_an_estimate(
    ledger: Ledger, fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI
) -> None:
    fake_openai.chat.append(Stream(PAPER, cut_after=6))
    engine = engine_with(ledger, research_generator(openai_client, model()))

    outcome = await ask(engine, "lighthouses", Intent.RESEARCH)

    written = text_of(outcome.parts)
    assert PAPER.startswith(written) and 0 < len(written) < len(PAPER)
    assert outcome.failure is not None and "broke off mid-way" in outcome.failure
    assert "Nothing was charged" not in outcome.failure
    row = outcome.row("research")
    assert row.status == "charged" and 0 < row.charged <= ALLOWANCE
    assert f"estimated {format_usd(row.charged)} for what was written" in outcome.failure


@pytest.mark.parametrize(
    "stream",
    [Stream(PAPER, cut_after=0), Stream(PAPER, garbage_after=0)],
    ids=["cut-before-text", "malformed-json-first"],
)
async def test_a_broken_stream_before_any_text_is_refunded(
    ledger: Ledger, fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI, stream: Stream
) -> None:
    fake_openai.chat.append(stream)
    engine = engine_with(ledger, research_generator(openai_client, model()))

    outcome = await ask(engine, "lighthouses", Intent.RESEARCH)

    assert text_of(outcome.parts) == ""
    assert outcome.failure is not None and outcome.failure.endswith("Nothing was charged.")
    assert outcome.row("research").status == "refunded" and outcome.report.used == 0


@pytest.mark.parametrize(
    "stream",
    [Stream(PAPER, garbage_after=4), Stream(PAPER, error_after=4)],
    ids=["malformed-json", "error-event"],
)
async def test_a_broken_stream_after_some_text_charges_for_what_was_written(
    ledger: Ledger, fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI, stream: Stream
) -> None:
    fake_openai.chat.append(stream)
    engine = engine_with(ledger, research_generator(openai_client, model()))

    outcome = await ask(engine, "lighthouses", Intent.RESEARCH)

    assert 0 < len(text_of(outcome.parts)) < len(PAPER)
    assert outcome.failure is not None and "incomplete" in outcome.failure
    assert outcome.row("research").status == "charged"


async def test_a_content_filter_stop_is_moderation_and_refunded(
    ledger: Ledger, fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI
) -> None:
    fake_openai.chat.append(Stream("I can't", finish_reason="content_filter"))
    engine = engine_with(ledger, chat_generator(openai_client, model()))

    outcome = await ask(engine, "something awful", Intent.CHAT)

    assert outcome.failure == (
        "The text service stopped this answer on content grounds. Nothing was charged."
    )
    assert outcome.row("chat").status == "refunded"


async def test_an_answer_cut_at_the_length_limit_says_so(
    ledger: Ledger, fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI
) -> None:
    fake_openai.chat.append(Stream("A very long", finish_reason="length", usage=(10, 3)))
    engine = engine_with(ledger, chat_generator(openai_client, model()))

    outcome = await ask(engine, "everything about tides", Intent.CHAT)

    assert text_of(outcome.parts).startswith("A very long\n\n_(Cut short")
    assert outcome.failure is None and outcome.row("chat").charged == PRICE.cost(10, 3)


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (
            error(401, "Incorrect API key provided", code="invalid_api_key"),
            "The text service rejected the bot's credentials (HTTP 401). "
            "An admin needs to check its API key.",
        ),
        (
            error(403, "Project lacks access to model"),
            "The text service rejected the bot's credentials (HTTP 403). "
            "An admin needs to check its API key.",
        ),
        (
            error(402, "Insufficient credits"),
            "The text service account is out of credits. An admin needs to top it up.",
        ),
        (
            error(429, "You exceeded your current quota", code="insufficient_quota"),
            "The text service account is out of credits. An admin needs to top it up.",
        ),
        (
            error(429, "Rate limit reached", code="rate_limit_exceeded", headers={"retry-after": "7"}),
            "The text service is busy right now (too many requests). Please try again in 7 s.",
        ),
        (
            error(503, "The engine is currently overloaded"),
            "The text service is having trouble (HTTP 503). Please try again in a few minutes.",
        ),
        (
            error(400, "Your request was rejected by the safety system", code="content_filter"),
            "The text service declined this request on content grounds.",
        ),
    ],
    ids=["401", "403", "402", "429-quota", "429-retry-after", "503", "moderated"],
)
async def test_http_errors_tell_the_person_and_refund(
    ledger: Ledger, fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI, reply: object, message: str
) -> None:
    fake_openai.chat.append(reply)  # type: ignore[arg-type]
    engine = engine_with(ledger, research_generator(openai_client, model()))

    outcome = await ask(engine, "lighthouses", Intent.RESEARCH)

    assert outcome.failure == f"{message} Nothing was charged."
    assert outcome.row("research").status == "refunded"
    assert (outcome.report.used, outcome.report.held) == (0, 0)
    assert len(fake_openai.bodies()) == 1


async def test_the_sdk_retries_a_5xx_once_before_the_stream_starts(
    ledger: Ledger, fake_openai: FakeOpenAI, http: httpx.AsyncClient
) -> None:
    client = openai.AsyncOpenAI(
        api_key="sk-test", base_url=fake_openai.base_url, http_client=http, max_retries=1
    )
    fake_openai.chat.extend(
        [error(503, "overloaded", headers={"retry-after-ms": "1"}), Stream("Fine.", usage=(5, 1))]
    )
    engine = engine_with(ledger, chat_generator(client, model()))

    outcome = await ask(engine, "how are you", Intent.CHAT)

    assert outcome.failure is None and text_of(outcome.parts) == "Fine."
    assert len(fake_openai.bodies()) == 2
    assert outcome.row("chat").charged == PRICE.cost(5, 1)


async def test_a_prompt_too_long_for_the_allowance_is_refused_before_calling(
    ledger: Ledger, fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI
) -> None:
    engine = engine_with(ledger, chat_generator(openai_client, model(allowance=120)))

    outcome = await ask(engine, "tides " * 500, Intent.CHAT)

    assert outcome.failure is not None and "too long" in outcome.failure
    assert fake_openai.bodies() == [] and outcome.row("chat").status == "refunded"


async def test_an_unreachable_server_is_reported(ledger: Ledger, http: httpx.AsyncClient) -> None:
    client = openai.AsyncOpenAI(
        api_key="sk-test", base_url="http://127.0.0.1:9/v1", http_client=http, max_retries=0
    )
    engine = engine_with(ledger, chat_generator(client, model()))

    outcome = await ask(engine, "hello again, what's new", Intent.CHAT)

    assert outcome.failure is not None and outcome.failure.startswith("I couldn't reach the text service")
    assert outcome.row("chat").status == "refunded"


# --- bad answers (issue 15, item 9) ------------------------------------------------------------


async def test_a_server_ignoring_stream_true_is_read_as_one_chunk(
    ledger: Ledger, fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI
) -> None:
    fake_openai.chat.append(Reply(body=completion("Tides come from the moon's pull.", usage=(40, 9))))
    engine = engine_with(ledger, chat_generator(openai_client, model()))

    outcome = await ask(engine, "why are there tides", Intent.CHAT)

    assert outcome.failure is None
    assert text_of(outcome.parts) == "Tides come from the moon's pull."
    assert outcome.row("chat").charged == PRICE.cost(40, 9)


async def test_a_stream_that_stops_without_done_or_finish_is_marked_incomplete(
    ledger: Ledger, fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI
) -> None:
    fake_openai.chat.append(Stream(PAPER, finish_reason=None, usage=None, done=False))
    engine = engine_with(ledger, research_generator(openai_client, model()))

    outcome = await ask(engine, "lighthouses", Intent.RESEARCH)

    assert text_of(outcome.parts) == PAPER
    assert outcome.failure is not None and "broke off mid-way" in outcome.failure
    assert "incomplete" in outcome.failure
    row = outcome.row("research")
    assert row.status == "charged" and 0 < row.charged <= ALLOWANCE


async def test_a_finish_reason_without_done_is_a_finished_answer(
    ledger: Ledger, fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI
) -> None:
    fake_openai.chat.append(Stream("All done.", usage=(10, 3), done=False))
    engine = engine_with(ledger, chat_generator(openai_client, model()))

    outcome = await ask(engine, "are you done", Intent.CHAT)

    assert outcome.failure is None and text_of(outcome.parts) == "All done."
    assert outcome.row("chat").charged == PRICE.cost(10, 3)


@pytest.mark.parametrize(
    "reply",
    [
        Stream("", usage=(30, 0)),
        Stream("   ", usage=(30, 1)),
        Reply(body=completion(None)),
        Reply(body=completion("")),
    ],
    ids=["empty-stream", "blank-stream", "null-completion", "empty-completion"],
)
async def test_an_answer_without_text_says_so_and_is_refunded(
    ledger: Ledger, fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI, reply: Stream | Reply
) -> None:
    fake_openai.chat.append(reply)
    engine = engine_with(ledger, chat_generator(openai_client, model()))

    outcome = await ask(engine, "say something", Intent.CHAT)

    assert outcome.failure == (
        "The text service sent an empty answer. Please try again, or rephrase the question. "
        "Nothing was charged."
    )
    assert outcome.row("chat").status == "refunded" and outcome.report.used == 0
