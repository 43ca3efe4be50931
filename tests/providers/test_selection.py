"""Provider selection: real where a key is set, demo elsewhere, and a clear stop when a key is missing."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from bot.providers import build_providers
from bot.settings import Settings, SettingsError, load_settings
from core.clock import SystemClock
from core.demo import DemoChatGenerator, DemoImageGenerator, DemoResearchGenerator, DemoSongGenerator
from core.parts import Intent
from core.providers import (
    BflImageGenerator,
    OpenAIClassifier,
    OpenAIImageGenerator,
    OpenAITextGenerator,
    SongGenerator,
    TokenPrice,
)

SECRETS = {"OPENAI_API_KEY": "sk-secret-1", "BFL_API_KEY": "bfl-secret-2", "SONG_API_KEY": "song-secret-3"}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
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
