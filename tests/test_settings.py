"""Settings: documented defaults, validation that names the variable, secrets never echoed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.settings import SettingsError, environment_variables, load_settings

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def no_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in environment_variables():
        monkeypatch.delenv(name, raising=False)
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
    assert settings.discord.guild_ids == (1, 2)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DEFAULT_BUDGET_USD", "-1"),
        ("IMAGE_COST_USD", "cheap"),
        ("LOG_LEVEL", "LOUD"),
        ("DISCORD_GUILD_IDS", "abc"),
        ("SLACK_PORT", "99999"),
        ("SLACK_PORT", "0"),
        ("BUDGET_VISIBLE_TO", "nobody"),
        ("DISCORD_APPLICATION_ID", "abc"),
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
    assert environment_variables() <= documented


def test_readme_documents_every_setting() -> None:
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", (REPO / "README.md").read_text()))
    assert environment_variables() - documented == set()


def test_a_blank_platform_secret_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.platforms import platform_starters

    for name in ("DISCORD_TOKEN", "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN"):
        monkeypatch.setenv(name, "  ")
    settings = load_settings()
    assert settings.discord.token is None and settings.slack.bot_token is None
    assert platform_starters(settings) == {}


def test_platform_settings_nest_under_their_prefix_and_their_secrets_are_redacted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", "discord-secret")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "slack-secret")
    monkeypatch.setenv("SLACK_ADMIN_IDS", "U0123ABCD")
    monkeypatch.setenv("BUDGET_VISIBLE_TO", "everyone")

    settings = load_settings()

    assert settings.discord.budget_visible_to == settings.slack.budget_visible_to == "everyone"
    assert settings.slack.admin_ids == {"U0123ABCD"}
    assert {"discord-secret", "slack-secret"} <= set(settings.secret_values())
    shown = repr(settings) + str(settings.discord) + str(settings.slack)
    assert "discord-secret" not in shown and "slack-secret" not in shown


def test_overrides_are_named_like_the_variables() -> None:
    settings = load_settings(_env_file=None, discord_follow_ups="mention", slack_port=4000)
    assert settings.discord.follow_ups == "mention" and settings.slack.port == 4000
