"""Provider selection: live where a key is set; elsewhere the free demo (terminal) or off (``run``);
a clear stop when a key is missing; demo work never charged."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bot.providers import build_providers, select_services
from bot.settings import SettingsError, environment_variables, load_settings
from bot.shared_http import SharedHttp
from core.clock import SystemClock
from core.demo import DemoChatGenerator, DemoImageGenerator, DemoResearchGenerator, DemoSongGenerator
from core.engine import Engine
from core.ledger import Ledger
from core.parts import Audio, Image, Intent, TextDelta
from core.providers import (
    BflImageGenerator,
    OpenAIClassifier,
    OpenAIImageGenerator,
    OpenAITextGenerator,
    SongGenerator,
    TokenPrice,
)
from tests.fakes.fake_bfl import JPEG, KEY, FakeBfl
from tests.providers.conftest import InstantClock, ask, engine_with

SECRETS = {"OPENAI_API_KEY": "sk-secret-1", "BFL_API_KEY": "bfl-secret-2", "SONG_API_KEY": "song-secret-3"}


@pytest.fixture
async def http() -> AsyncIterator[SharedHttp]:
    """The bot's own kind of shared client, which build_providers takes."""
    async with SharedHttp(timeout=httpx.Timeout(5.0)) as client:
        yield client


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in environment_variables():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


async def test_without_keys_everything_is_demo(http: httpx.AsyncClient) -> None:
    providers = build_providers(load_settings(), http=http, clock=SystemClock())

    assert isinstance(providers.generators[Intent.IMAGE], DemoImageGenerator)
    assert isinstance(providers.generators[Intent.SONG], DemoSongGenerator)
    assert isinstance(providers.generators[Intent.RESEARCH], DemoResearchGenerator)
    assert isinstance(providers.generators[Intent.CHAT], DemoChatGenerator)
    assert providers.classifier is None
    assert all(providers.descriptions[intent.value].startswith("demo") for intent in Intent)


async def test_keys_make_each_service_live_and_the_log_names_endpoints_not_keys(
    monkeypatch: pytest.MonkeyPatch, http: httpx.AsyncClient
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OPENAI_BASE_URL", "https://user:hunter2@api.groq.com/openai/v1?token=abc")
    monkeypatch.setenv("CHAT_MODEL", "llama-3.3-70b-versatile")

    providers = build_providers(load_settings(), http=http, clock=SystemClock())

    assert isinstance(providers.generators[Intent.RESEARCH], OpenAITextGenerator)
    assert isinstance(providers.generators[Intent.CHAT], OpenAITextGenerator)
    assert isinstance(providers.classifier, OpenAIClassifier)
    assert isinstance(providers.generators[Intent.IMAGE], BflImageGenerator)
    assert isinstance(providers.generators[Intent.SONG], SongGenerator)
    lines = providers.descriptions
    assert all(line.startswith("live") for line in lines.values())
    assert "https://api.groq.com/openai/v1" in lines["chat"] and "llama-3.3-70b-versatile" in lines["chat"]
    assert "https://api.bfl.ai/v1" in lines["image"] and "https://udioapi.pro/api" in lines["song"]
    shown = "\n".join(lines.values())
    for secret in [*SECRETS.values(), "hunter2", "token=abc"]:
        assert secret not in shown


async def test_explicit_choices_override_auto(
    monkeypatch: pytest.MonkeyPatch, http: httpx.AsyncClient
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    monkeypatch.setenv("BFL_API_KEY", "bfl-secret")
    monkeypatch.setenv("TEXT_PROVIDER", "demo")
    monkeypatch.setenv("IMAGE_PROVIDER", "openai")
    monkeypatch.setenv("SONG_PROVIDER", "suno-api")
    monkeypatch.setenv("SONG_API_URL", "http://localhost:3000")

    providers = build_providers(load_settings(), http=http, clock=SystemClock())

    assert isinstance(providers.generators[Intent.CHAT], DemoChatGenerator) and providers.classifier is None
    assert isinstance(providers.generators[Intent.IMAGE], OpenAIImageGenerator)
    assert isinstance(providers.generators[Intent.SONG], SongGenerator)
    assert providers.descriptions["song"].startswith("live via suno-api")


async def test_a_model_without_a_price_is_described_as_flat(
    monkeypatch: pytest.MonkeyPatch, http: httpx.AsyncClient
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "ollama")
    monkeypatch.setenv("RESEARCH_MODEL", "llama3.2")

    providers = build_providers(load_settings(), http=http, clock=SystemClock())

    assert "flat $0.01 a call (no TEXT_PRICES entry for it)" in providers.descriptions["research"]


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"TEXT_PROVIDER": "openai"}, "OPENAI_API_KEY"),
        ({"TEXT_PROVIDER": "openai", "OPENAI_API_KEY": "  "}, "OPENAI_API_KEY"),
        ({"IMAGE_PROVIDER": "bfl"}, "BFL_API_KEY"),
        ({"IMAGE_PROVIDER": "openai"}, "IMAGE_PROVIDER"),
        ({"SONG_PROVIDER": "udioapi"}, "SONG_API_KEY"),
    ],
)
def test_an_explicit_provider_without_its_key_stops_start_up(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], variable: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    with pytest.raises(SettingsError) as caught:
        load_settings()

    message = str(caught.value)
    assert f"  {variable}: " in message
    needed = "OPENAI_API_KEY" if variable == "IMAGE_PROVIDER" else variable
    assert f"needs {needed}" in message


def test_text_prices_merge_over_the_known_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEXT_PRICES", "gpt-4o-mini=0.20/0.80, my-model=0/0")

    settings = load_settings()

    assert settings.text_price("gpt-4o-mini") == TokenPrice(200_000, 800_000)
    assert settings.text_price("my-model") == TokenPrice(0, 0)
    assert settings.text_price("gpt-4o") == TokenPrice(2_500_000, 10_000_000)
    assert settings.text_price("unknown") is None


@pytest.mark.parametrize("value", ["gpt-4o-mini=cheap", "gpt-4o-mini", "=0.1/0.2", "m=-1/2"])
def test_bad_text_prices_name_the_variable(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("TEXT_PRICES", value)

    with pytest.raises(SettingsError, match=r"TEXT_PRICES: .*model=INPUT/OUTPUT|TEXT_PRICES: .*zero or more"):
        load_settings()


@pytest.mark.parametrize(
    ("env", "warned"),
    [
        ({"CHAT_MODEL": "gpt-4o"}, ["CHAT_COST_USD"]),
        ({"CHAT_MODEL": "gpt-4o", "RESEARCH_MODEL": "gpt-4o"}, ["CHAT_COST_USD", "RESEARCH_COST_USD"]),
        ({"CHAT_MODEL": "gpt-4o", "CHAT_COST_USD": "0.01"}, []),
        ({}, []),
    ],
    ids=["gpt-4o-chat", "gpt-4o-both", "gpt-4o-enough", "defaults"],
)
async def test_start_up_warns_when_an_allowance_is_too_small_for_the_model(
    monkeypatch: pytest.MonkeyPatch,
    http: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    env: dict[str, str],
    warned: list[str],
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    with caplog.at_level(logging.WARNING, logger="bot.providers"):
        build_providers(load_settings(), http=http, clock=SystemClock())

    warnings = [record.getMessage() for record in caplog.records if record.name == "bot.providers"]
    assert [message.split("=")[0] for message in warnings] == warned
    assert all("can't pay for a useful answer on gpt-4o" in message for message in warnings)


async def test_media_settings_reach_the_downloads(
    monkeypatch: pytest.MonkeyPatch,
    http: httpx.AsyncClient,
    clock: InstantClock,
    fake_bfl: FakeBfl,
    ledger: Ledger,
) -> None:
    monkeypatch.setenv("BFL_API_KEY", KEY)
    monkeypatch.setenv("BFL_API_URL", fake_bfl.base_url)
    monkeypatch.setenv("MAX_MEDIA_MB", "1")
    monkeypatch.setenv("MEDIA_ALLOWED_HOSTS", "cdn.internal, localhost")
    fake_bfl.sample = "huge.jpg"
    fake_bfl.add_endless("huge.jpg", JPEG, "image/jpeg")
    settings = load_settings()

    providers = build_providers(settings, http=http, clock=clock)
    outcome = await ask(engine_with(ledger, providers.generators[Intent.IMAGE]), "a fox", Intent.IMAGE)

    assert settings.media_allowed_hosts == "cdn.internal, localhost"
    assert outcome.failure is not None and "larger than the 1 MB limit" in outcome.failure


ALL_OFF = dict.fromkeys(Intent, "off")
ALL_DEMO = dict.fromkeys(Intent, "demo")


def test_the_terminal_falls_back_to_the_demo_and_run_to_off() -> None:
    settings = load_settings()

    assert select_services(settings, demo_fallback=True) == ALL_DEMO
    assert select_services(settings, demo_fallback=False) == ALL_OFF


def test_demo_providers_turns_the_demo_on_under_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_PROVIDERS", "true")

    assert select_services(load_settings(), demo_fallback=False) == ALL_DEMO


def test_under_run_only_the_services_with_a_provider_are_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")

    modes = select_services(load_settings(), demo_fallback=False)

    assert modes == {
        Intent.IMAGE: "off",
        Intent.SONG: "off",
        Intent.RESEARCH: "live",
        Intent.CHAT: "live",
        Intent.SUMMARY: "live",
    }


@pytest.mark.parametrize("demo_fallback", [True, False])
def test_off_turns_a_configured_service_off_everywhere(
    monkeypatch: pytest.MonkeyPatch, demo_fallback: bool
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("IMAGE_PROVIDER", "off")
    monkeypatch.setenv("TEXT_PROVIDER", "off")
    monkeypatch.setenv("SONG_PROVIDER", "demo")
    monkeypatch.setenv("DEMO_PROVIDERS", "true")

    modes = select_services(load_settings(), demo_fallback=demo_fallback)

    assert modes == {
        Intent.IMAGE: "off",
        Intent.SONG: "demo",
        Intent.RESEARCH: "off",
        Intent.CHAT: "off",
        Intent.SUMMARY: "off",
    }


async def test_the_start_up_lines_say_live_demo_or_off_and_how_to_turn_it_on(
    monkeypatch: pytest.MonkeyPatch, http: httpx.AsyncClient
) -> None:
    monkeypatch.setenv("BFL_API_KEY", "bfl-secret")
    monkeypatch.setenv("SONG_PROVIDER", "off")

    providers = build_providers(load_settings(), http=http, clock=SystemClock(), demo_fallback=False)

    lines = providers.descriptions
    assert lines["image"].startswith("live via Black Forest Labs at https://api.bfl.ai/v1")
    assert lines["song"] == "off (SONG_PROVIDER=off)"
    for service in ("research", "chat", "summary"):
        assert lines[service].startswith("off: set OPENAI_API_KEY to turn it on, or DEMO_PROVIDERS=true")
    assert providers.classifier is None
    assert providers.modes[Intent.IMAGE] == "live" and providers.modes[Intent.CHAT] == "off"

    monkeypatch.setenv("DEMO_PROVIDERS", "true")
    demo = build_providers(load_settings(), http=http, clock=SystemClock(), demo_fallback=False)
    assert demo.descriptions["chat"] == "demo (offline placeholder, never charged)"
    assert demo.descriptions["song"] == "off (SONG_PROVIDER=off)"


async def test_under_run_an_off_service_answers_that_it_is_not_configured_and_charges_nothing(
    monkeypatch: pytest.MonkeyPatch, http: httpx.AsyncClient, ledger: Ledger
) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", "a-platform-token-and-nothing-else")
    settings = load_settings()
    providers = build_providers(settings, http=http, clock=SystemClock(), demo_fallback=False)
    engine = Engine(ledger=ledger, generators=providers.generators)

    image = await ask(engine, "a red fox", Intent.IMAGE)
    song = await ask(engine, "a sea shanty", Intent.SONG)

    assert image.failure == "Image generation isn't configured on this bot. Nothing was charged."
    assert song.failure == "Song generation isn't configured on this bot. Nothing was charged."
    assert image.rows == song.rows == [], "nothing was reserved"
    assert not any(isinstance(part, Image | Audio) for part in image.parts + song.parts)
    assert song.report.used == 0 and song.report.held == 0


async def test_demo_work_is_never_charged(http: httpx.AsyncClient, ledger: Ledger) -> None:
    providers = build_providers(load_settings(demo_delay_s=0), http=http, clock=SystemClock())
    engine = Engine(ledger=ledger, generators=providers.generators)

    image = await ask(engine, "a red fox", Intent.IMAGE)
    song = await ask(engine, "a sea shanty", Intent.SONG)
    research = await ask(engine, "the transistor", Intent.RESEARCH)

    assert any(isinstance(part, Image) for part in image.parts)
    assert any(isinstance(part, Audio) for part in song.parts)
    assert any(isinstance(part, TextDelta) for part in research.parts)
    assert research.report.used == 0
    rows = image.rows + song.rows + research.rows
    assert [(row.service, row.charged, row.status, row.demo) for row in rows] == [
        ("image", 0, "charged", True),
        ("song", 0, "charged", True),
        ("research", 0, "charged", True),
    ]
