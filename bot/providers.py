"""Choose a generator per intent (real when its key is set, else the offline demo) and say which."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import httpx

from bot.settings import Settings
from core.clock import Clock
from core.demo import DemoChatGenerator, DemoImageGenerator, DemoResearchGenerator, DemoSongGenerator
from core.generator import Generator
from core.parts import Intent
from core.router import Classifier

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Providers:
    generators: dict[Intent, Generator]
    classifier: Classifier | None
    descriptions: dict[str, str]
    """One line per service for the start-up log: live or demo, and which endpoint."""


def build_providers(settings: Settings, *, http: httpx.AsyncClient, clock: Clock) -> Providers:
    delay = settings.demo_delay_s
    generators: dict[Intent, Generator] = {
        Intent.IMAGE: DemoImageGenerator(cost=settings.cost("image_cost")),
        Intent.SONG: DemoSongGenerator(cost=settings.cost("song_cost"), delay_s=delay * 15, clock=clock),
        Intent.RESEARCH: DemoResearchGenerator(
            cost=settings.cost("research_cost"), delay_s=delay, clock=clock
        ),
        Intent.CHAT: DemoChatGenerator(cost=settings.cost("chat_cost"), delay_s=delay, clock=clock),
    }
    descriptions = {intent.value: "demo (offline)" for intent in Intent}
    descriptions["router"] = "keyword rules only (no classifier without OPENAI_API_KEY)"
    return Providers(generators=generators, classifier=None, descriptions=descriptions)


def log_providers(providers: Providers) -> None:
    for service, description in providers.descriptions.items():
        log.info("%s: %s", service, description)
