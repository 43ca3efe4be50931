"""Settings: documented defaults, validation that names the variable, secrets never echoed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.settings import Settings, SettingsError, load_settings

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def no_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)  # no developer .env


def test_defaults_match_the_documented_contract() -> None:
    settings = load_settings()
    assert settings.database_url == "sqlite:///data/bot.db"
    assert settings.cost("default_budget") == 20_000_000
    assert settings.cost("image_cost") == 40_000
    assert settings.cost("song_cost") == 50_000
    assert settings.cost("research_cost") == 10_000
    assert settings.cost("router_cost") == 10_000
    assert settings.log_level == "INFO"


def test_values_come_from_the_environment_and_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("IMAGE_COST_USD=0.08\nDISCORD_GUILD_IDS=1, 2\n")
    monkeypatch.setenv("DEFAULT_BUDGET_USD", "5.5")
    settings = load_settings()
    assert settings.cost("default_budget") == 5_500_000
    assert settings.cost("image_cost") == 80_000
    assert settings.discord_guild_ids == ["1", "2"]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DEFAULT_BUDGET_USD", "-1"),
        ("IMAGE_COST_USD", "cheap"),
        ("LOG_LEVEL", "LOUD"),
        ("DISCORD_GUILD_IDS", "abc"),
        ("SLACK_PORT", "99999"),
    ],
)
def test_an_invalid_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable):
        load_settings()


def test_secrets_are_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", "super-secret-token")
    settings = load_settings()
    assert "super-secret-token" not in repr(settings)


def test_env_example_documents_every_setting() -> None:
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (REPO / ".env.example").read_text(), re.M))
    assert {name.upper() for name in Settings.model_fields} <= documented


def test_readme_documents_every_setting() -> None:
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", (REPO / "README.md").read_text()))
    assert {name.upper() for name in Settings.model_fields} - documented == set()
