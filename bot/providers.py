"""Choose a generator per intent (live when its provider is configured, else the free offline demo
or nothing) and say which."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import httpx

from bot.settings import Settings
from bot.shared_http import SharedHttp, sdk_http
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
from core.providers.fetch import MediaPolicy
from core.providers.http import RetryPolicy
from core.providers.songs import SongApi, SongGenerator, SunoApi, UdioApi
from core.router import Classifier
from core.studio import OperationPrices

if TYPE_CHECKING:
    # The OpenAI SDK takes most of a second to import: only a bot configured for it loads it.
    import openai

    from core.providers.openai_text import TextModel

log = logging.getLogger(__name__)

RESEARCH_MAX_OUTPUT_TOKENS = 8_000
CHAT_MAX_OUTPUT_TOKENS = 2_000
SUMMARY_MAX_OUTPUT_TOKENS = 1_000
ROUTER_MAX_OUTPUT_TOKENS = 1_200


Mode = Literal["live", "demo", "off"]
"""``live``: a configured provider, charged; ``demo``: the offline placeholder, never charged;
``off``: no generator, the command answers that it isn't configured."""

TEXT_INTENTS = (Intent.RESEARCH, Intent.CHAT, Intent.SUMMARY)

TURN_ON = {
    "text": "set OPENAI_API_KEY",
    "image": "set BFL_API_KEY (or IMAGE_PROVIDER=openai with OPENAI_API_KEY)",
    "song": "set SONG_API_KEY (or SONG_PROVIDER=suno-api)",
}
"""What makes each kind of service live, for the start-up line of a service that is off."""


@dataclass(frozen=True, slots=True)
class Providers:
    generators: dict[Intent, Generator]
    classifier: Classifier | None
    modes: dict[Intent, Mode]
    descriptions: dict[str, str]
    """One line per service for the start-up log: live (which endpoint), demo or off (and how to
    turn it on)."""


def select_services(settings: Settings, *, demo_fallback: bool) -> dict[Intent, Mode]:
    """Which intents are live, demo or off.

    A service is live when its provider is configured; ``*_PROVIDER=demo`` or ``off`` decides
    explicitly. Otherwise it falls back to the free demo when ``demo_fallback`` (the terminal chat
    and web demo) or ``DEMO_PROVIDERS=true``, and is off when not (``python -m bot run``, where a
    placeholder picture or song answering a real community would only mislead).
    """
    fallback: Mode = "demo" if demo_fallback or settings.demo_providers else "off"
    text = _mode(settings.text_provider, live=settings.openai_api_key is not None, fallback=fallback)
    image_live = settings.image_provider != "auto" or settings.bfl_api_key is not None
    song_live = settings.song_provider != "auto" or settings.song_api_key is not None
    modes = {intent: text for intent in TEXT_INTENTS}
    modes[Intent.IMAGE] = _mode(settings.image_provider, live=image_live, fallback=fallback)
    modes[Intent.SONG] = _mode(settings.song_provider, live=song_live, fallback=fallback)
    return modes


def _mode(choice: str, *, live: bool, fallback: Mode) -> Mode:
    # A provider named explicitly has its key: the settings refuse to start otherwise.
    if choice == "demo":
        return "demo"
    if choice == "off":
        return "off"
    return "live" if live else fallback


def build_providers(
    settings: Settings, *, http: SharedHttp, clock: Clock, demo_fallback: bool = True
) -> Providers:
    """Live providers where configured; elsewhere the free demo or nothing (``select_services``).
    SDK clients are built here, once."""
    modes = select_services(settings, demo_fallback=demo_fallback)
    delay = settings.demo_delay_s
    context = settings.history_tokens
    # Demo work is free everywhere: the generators are built without a cost.
    demos: dict[Intent, Generator] = {
        Intent.IMAGE: DemoImageGenerator(),
        Intent.SONG: DemoSongGenerator(delay_s=delay * 15, clock=clock),
        Intent.RESEARCH: DemoResearchGenerator(delay_s=delay, clock=clock, history_tokens=context),
        Intent.CHAT: DemoChatGenerator(delay_s=delay, clock=clock, history_tokens=context),
        Intent.SUMMARY: DemoSummaryGenerator(delay_s=delay, clock=clock, history_tokens=context),
    }
    generators = {intent: demos[intent] for intent, mode in modes.items() if mode == "demo"}
    descriptions = {intent.value: _not_live(settings, intent, modes[intent]) for intent in Intent}
    descriptions["router"] = "keyword rules only (the classifier needs a live text provider)"
    classifier: Classifier | None = None
    policy = RetryPolicy(attempts=settings.http_attempts)
    client = _openai_client(settings, http)

    if client is not None and modes[Intent.CHAT] == "live":
        from core.providers.classifier import OpenAIClassifier
        from core.providers.openai_text import allowance_warning, chat_generator, research_generator
        from core.providers.summary import OpenAISummaryGenerator

        endpoint = _endpoint(settings.openai_base_url)
        research = _text_model(settings, settings.research_model, "research_cost", RESEARCH_MAX_OUTPUT_TOKENS)
        chat = _text_model(settings, settings.chat_model, "chat_cost", CHAT_MAX_OUTPUT_TOKENS)
        router = _text_model(settings, settings.router_model, "router_cost", ROUTER_MAX_OUTPUT_TOKENS)
        summary = _text_model(settings, settings.research_model, "research_cost", SUMMARY_MAX_OUTPUT_TOKENS)
        generators[Intent.RESEARCH] = research_generator(client, research, history_tokens=context)
        generators[Intent.CHAT] = chat_generator(
            client, chat, history_tokens=context, vision=settings.chat_vision
        )
        generators[Intent.SUMMARY] = OpenAISummaryGenerator(
            client=client, model=summary, history_tokens=context
        )
        classifier = OpenAIClassifier(client=client, model=router)
        for intent, variable in ((Intent.CHAT, "CHAT_COST_USD"), (Intent.RESEARCH, "RESEARCH_COST_USD")):
            warning = allowance_warning(generators[intent], variable=variable)
            if warning:
                log.warning("%s", warning)
        descriptions["research"] = f"live via {endpoint}, {_pricing(research)}"
        descriptions["chat"] = f"live via {endpoint}, {_pricing(chat)}"
        descriptions["summary"] = f"live via {endpoint}, {_pricing(summary)}"
        descriptions["router"] = f"live via {endpoint}: keyword rules, then a classifier, {_pricing(router)}"

    image = _image_generator(settings, http=http, clock=clock, client=client, policy=policy)
    if image is not None and modes[Intent.IMAGE] == "live":
        generators[Intent.IMAGE], descriptions["image"] = image

    song_api = _song_api(settings, http=http, clock=clock, policy=policy)
    if song_api is not None and modes[Intent.SONG] == "live":
        song_cost = settings.cost("song_cost")
        generators[Intent.SONG] = SongGenerator(
            api=song_api,
            http=http,
            clock=clock,
            poll_s=settings.song_poll_s,
            timeout_s=settings.song_timeout_s,
            cost=song_cost,
            policy=policy,
            media=_media(settings),
        )
        shape = "udioapi" if settings.song_provider == "auto" else settings.song_provider
        descriptions["song"] = (
            f"live via {shape} at {_endpoint(settings.song_api_url)}, model {settings.song_model}, "
            f"{format_usd(song_cost)} per song"
        )
    return Providers(generators=generators, classifier=classifier, modes=modes, descriptions=descriptions)


def _not_live(settings: Settings, intent: Intent, mode: Mode) -> str:
    """The start-up line of a service that is not live (a live one's is written where it is built)."""
    if mode == "demo":
        return "demo (offline placeholder, never charged)"
    kind = "text" if intent in TEXT_INTENTS else intent.value
    variable = f"{kind.upper()}_PROVIDER"
    if getattr(settings, variable.lower()) == "off":
        return f"off ({variable}=off)"
    return f"off: {TURN_ON[kind]} to turn it on, or DEMO_PROVIDERS=true for the free offline demo"


def log_providers(providers: Providers) -> None:
    for service, description in providers.descriptions.items():
        log.info("%s: %s", service, description)


def _openai_client(settings: Settings, http: SharedHttp) -> openai.AsyncOpenAI | None:
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
            media=_media(settings),
            edit_model=settings.bfl_edit_model,
            upscale_model=settings.bfl_upscale_model,
            prices=_operation_prices(settings),
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
            media=_media(settings),
            prices=_operation_prices(settings),
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


def _media(settings: Settings) -> MediaPolicy:
    """``MEDIA_ALLOWED_HOSTS`` and ``MAX_MEDIA_MB`` for every provider's downloads."""
    return MediaPolicy.of(allowed_hosts=settings.media_allowed_hosts.split(","), max_mb=settings.max_media_mb)


def _endpoint(url: str) -> str:
    """A base URL fit for the logs: no user-info, query or fragment, where credentials may hide."""
    return str(httpx.URL(url).copy_with(username=None, password=None, query=None, fragment=None))


def _operation_prices(settings: Settings) -> OperationPrices:
    """What vary, upscale and edit reserve and charge (IMAGE_*_PRICE_USD)."""
    return OperationPrices(
        vary=settings.cost("image_vary_price"),
        upscale=settings.cost("image_upscale_price"),
        edit=settings.cost("image_edit_price"),
    )
