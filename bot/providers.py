"""Choose a generator per intent (real when its key is set, else the offline demo) and say which."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from bot.settings import Settings
from core.clock import Clock
from core.demo import (
    DemoChatGenerator,
    DemoImageGenerator,
    DemoResearchGenerator,
    DemoSongGenerator,
    DemoSummaryGenerator,
)
from core.generator import Generator
from core.money import format_usd
from core.parts import Intent
from core.providers.bfl import BflImageGenerator
from core.providers.http import RetryPolicy
from core.providers.sdk_http import sdk_http
from core.providers.songs import SongApi, SongGenerator, SunoApi, UdioApi
from core.router import Classifier

if TYPE_CHECKING:
    # The OpenAI SDK takes most of a second to import: only a bot configured for it loads it.
    import openai

    from core.providers.openai_text import TextModel

log = logging.getLogger(__name__)

RESEARCH_MAX_OUTPUT_TOKENS = 8_000
CHAT_MAX_OUTPUT_TOKENS = 2_000
SUMMARY_MAX_OUTPUT_TOKENS = 1_000
ROUTER_MAX_OUTPUT_TOKENS = 1_200


@dataclass(frozen=True, slots=True)
class Providers:
    generators: dict[Intent, Generator]
    classifier: Classifier | None
    descriptions: dict[str, str]
    """One line per service for the start-up log: live or demo, and which endpoint."""


def build_providers(settings: Settings, *, http: httpx.AsyncClient, clock: Clock) -> Providers:
    """Real providers where configured, demo ones elsewhere. SDK clients are built here, once."""
    delay = settings.demo_delay_s
    context = settings.history_tokens
    generators: dict[Intent, Generator] = {
        Intent.IMAGE: DemoImageGenerator(cost=settings.cost("image_cost")),
        Intent.SONG: DemoSongGenerator(cost=settings.cost("song_cost"), delay_s=delay * 15, clock=clock),
        Intent.RESEARCH: DemoResearchGenerator(
            cost=settings.cost("research_cost"), delay_s=delay, clock=clock, history_tokens=context
        ),
        Intent.CHAT: DemoChatGenerator(
            cost=settings.cost("chat_cost"), delay_s=delay, clock=clock, history_tokens=context
        ),
        # Summaries are charged like research: RESEARCH_COST_USD reserved, tokens charged.
        Intent.SUMMARY: DemoSummaryGenerator(
            cost=settings.cost("research_cost"), delay_s=delay, clock=clock, history_tokens=context
        ),
    }
    descriptions = {intent.value: "demo (offline)" for intent in Intent}
    descriptions["router"] = "keyword rules only (the classifier needs a live text provider)"
    classifier: Classifier | None = None
    policy = RetryPolicy(attempts=settings.http_attempts)
    client = _openai_client(settings, http)

    if client is not None and settings.text_provider != "demo":
        from core.providers.classifier import OpenAIClassifier
        from core.providers.openai_text import chat_generator, research_generator
        from core.providers.summary import OpenAISummaryGenerator

        endpoint = _endpoint(settings.openai_base_url)
        research = _text_model(settings, settings.research_model, "research_cost", RESEARCH_MAX_OUTPUT_TOKENS)
        chat = _text_model(settings, settings.chat_model, "chat_cost", CHAT_MAX_OUTPUT_TOKENS)
        router = _text_model(settings, settings.router_model, "router_cost", ROUTER_MAX_OUTPUT_TOKENS)
        summary = _text_model(settings, settings.research_model, "research_cost", SUMMARY_MAX_OUTPUT_TOKENS)
        generators[Intent.RESEARCH] = research_generator(client, research, history_tokens=context)
        generators[Intent.CHAT] = chat_generator(client, chat, history_tokens=context)
        generators[Intent.SUMMARY] = OpenAISummaryGenerator(
            client=client, model=summary, history_tokens=context
        )
        classifier = OpenAIClassifier(client=client, model=router)
        descriptions["research"] = f"live via {endpoint}, {_pricing(research)}"
        descriptions["chat"] = f"live via {endpoint}, {_pricing(chat)}"
        descriptions["summary"] = f"live via {endpoint}, {_pricing(summary)}"
        descriptions["router"] = f"live via {endpoint}: keyword rules, then a classifier, {_pricing(router)}"

    image = _image_generator(settings, http=http, clock=clock, client=client, policy=policy)
    if image is not None:
        generators[Intent.IMAGE], descriptions["image"] = image

    song_api = _song_api(settings, http=http, clock=clock, policy=policy)
    if song_api is not None:
        song_cost = settings.cost("song_cost")
        generators[Intent.SONG] = SongGenerator(
            api=song_api,
            http=http,
            clock=clock,
            poll_s=settings.song_poll_s,
            timeout_s=settings.song_timeout_s,
            cost=song_cost,
            policy=policy,
        )
        shape = "udioapi" if settings.song_provider == "auto" else settings.song_provider
        descriptions["song"] = (
            f"live via {shape} at {_endpoint(settings.song_api_url)}, model {settings.song_model}, "
            f"{format_usd(song_cost)} per song"
        )
    return Providers(generators=generators, classifier=classifier, descriptions=descriptions)


def log_providers(providers: Providers) -> None:
    for service, description in providers.descriptions.items():
        log.info("%s: %s", service, description)


def _openai_client(settings: Settings, http: httpx.AsyncClient) -> openai.AsyncOpenAI | None:
    """One SDK client on the shared HTTP client, for text, the classifier and OpenAI images."""
    if settings.openai_api_key is None:
        return None
    import openai

    return openai.AsyncOpenAI(
        api_key=settings.openai_api_key.get_secret_value(),
        base_url=settings.openai_base_url,
        http_client=sdk_http(http),
        max_retries=settings.openai_max_retries,
    )


def _text_model(settings: Settings, name: str, allowance: str, cap: int) -> TextModel:
    from core.providers.openai_text import TextModel

    return TextModel(
        name=name, price=settings.text_price(name), allowance=settings.cost(allowance), max_output_tokens=cap
    )


def _pricing(model: TextModel) -> str:
    allowance = format_usd(model.allowance)
    if model.price is None:
        return f"model {model.name}, flat {allowance} a call (no TEXT_PRICES entry for it)"
    per_million = f"{format_usd(model.price.input)}/{format_usd(model.price.output)} per M tokens"
    return f"model {model.name} at {per_million}, at most {allowance} a call"


def _image_generator(
    settings: Settings,
    *,
    http: httpx.AsyncClient,
    clock: Clock,
    client: openai.AsyncOpenAI | None,
    policy: RetryPolicy,
) -> tuple[Generator, str] | None:
    """BFL when chosen or when ``auto`` finds its key; OpenAI images only when chosen explicitly."""
    cost = settings.cost("image_cost")
    if settings.image_provider in ("auto", "bfl") and settings.bfl_api_key is not None:
        bfl = BflImageGenerator(
            http=http,
            clock=clock,
            api_url=settings.bfl_api_url,
            api_key=settings.bfl_api_key.get_secret_value(),
            model=settings.image_model,
            timeout_s=settings.image_timeout_s,
            cost=cost,
            policy=policy,
            width=settings.image_width,
            height=settings.image_height,
        )
        where = f"Black Forest Labs at {_endpoint(settings.bfl_api_url)}, model {settings.image_model}"
        return bfl, f"live via {where}, {format_usd(cost)} per image"
    if settings.image_provider == "openai" and client is not None:
        from core.providers.openai_image import OpenAIImageGenerator

        images = OpenAIImageGenerator(
            # A failed image call may still have been billed: the SDK must never send it again.
            client=client.with_options(max_retries=0),
            http=http,
            clock=clock,
            model=settings.openai_image_model,
            quality=settings.openai_image_quality,
            timeout_s=settings.image_timeout_s,
            cost=cost,
            policy=policy,
            width=settings.image_width,
            height=settings.image_height,
        )
        where = f"OpenAI images at {_endpoint(settings.openai_base_url)}, model {settings.openai_image_model}"
        return images, f"live via {where}, {format_usd(cost)} per image"
    return None


def _song_api(
    settings: Settings, *, http: httpx.AsyncClient, clock: Clock, policy: RetryPolicy
) -> SongApi | None:
    """The hosted udioapi shape when its key is set; self-hosted suno-api (key optional) when chosen."""
    key = settings.song_api_key.get_secret_value() if settings.song_api_key is not None else None
    if settings.song_provider == "suno-api":
        return SunoApi(
            http=http,
            clock=clock,
            api_url=settings.song_api_url,
            api_key=key,
            model=settings.song_model,
            policy=policy,
        )
    if settings.song_provider in ("auto", "udioapi") and key is not None:
        return UdioApi(
            http=http,
            clock=clock,
            api_url=settings.song_api_url,
            api_key=key,
            model=settings.song_model,
            policy=policy,
        )
    return None


def _endpoint(url: str) -> str:
    """A base URL fit for the logs: no user-info, query or fragment, where credentials may hide."""
    return str(httpx.URL(url).copy_with(username=None, password=None, query=None, fragment=None))
