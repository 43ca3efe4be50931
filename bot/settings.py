"""Every operator-facing setting, read from the environment and ``.env`` and validated at start-up."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.money import usd_to_micros

Usd = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=6)]
ProviderChoice = Literal["auto", "demo"]
CommaList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    """Names are the environment variables, upper-cased. ``.env.example`` documents each one."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    # --- core -------------------------------------------------------------------------------
    database_url: str = "sqlite:///data/bot.db"
    default_budget_usd: Usd = Decimal("20")
    image_cost_usd: Usd = Decimal("0.04")
    song_cost_usd: Usd = Decimal("0.05")
    research_cost_usd: Usd = Decimal("0.01")
    chat_cost_usd: Usd = Decimal("0.002")
    router_cost_usd: Usd = Decimal("0.01")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    demo_delay_s: Annotated[float, Field(ge=0, le=5)] = 0.03
    """Pause between demo text chunks, so streaming is visible in the demo."""

    # --- text: research, chat and the router classifier (OpenAI-compatible) ------------------
    text_provider: Literal["auto", "openai", "demo"] = "auto"
    openai_api_key: SecretStr | None = None
    openai_base_url: str = "https://api.openai.com/v1"
    research_model: str = "gpt-4o-mini"
    chat_model: str = "gpt-4o-mini"
    router_model: str = "gpt-4o-mini"

    # --- images ------------------------------------------------------------------------------
    image_provider: Literal["auto", "bfl", "openai", "demo"] = "auto"
    bfl_api_key: SecretStr | None = None
    bfl_api_url: str = "https://api.bfl.ai/v1"
    image_model: str = "flux-pro-1.1"
    image_width: Annotated[int, Field(ge=256, le=2048, multiple_of=32)] = 1024
    image_height: Annotated[int, Field(ge=256, le=2048, multiple_of=32)] = 768
    image_timeout_s: Annotated[float, Field(gt=0)] = 120
    openai_image_model: str = "gpt-image-1"

    # --- songs -------------------------------------------------------------------------------
    song_provider: Literal["auto", "udioapi", "suno-api", "demo"] = "auto"
    song_api_key: SecretStr | None = None
    song_api_url: str = "https://udioapi.pro/api"
    song_model: str = "chirp-v3-5"
    song_poll_s: Annotated[float, Field(gt=0)] = 5
    song_timeout_s: Annotated[float, Field(gt=0)] = 600

    # --- HTTP to providers -------------------------------------------------------------------
    http_timeout_s: Annotated[float, Field(gt=0)] = 30

    # --- Discord -----------------------------------------------------------------------------
    discord_token: SecretStr | None = None
    discord_api_url: str = "https://discord.com/api/v10"
    discord_gateway_url: str = "wss://gateway.discord.gg/"
    discord_guild_ids: CommaList = []
    discord_allow_dms: bool = False
    discord_dm_budget_usd: Usd = Decimal("0")

    # --- Slack -------------------------------------------------------------------------------
    slack_bot_token: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_port: Annotated[int, Field(ge=1, le=65535)] = 3000
    slack_api_url: str = "https://slack.com/api/"
    slack_admin_ids: CommaList = []

    # --- who sees /budget --------------------------------------------------------------------
    budget_visible_to: Literal["admins", "everyone"] = "admins"

    @field_validator("discord_guild_ids", "slack_admin_ids", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("discord_guild_ids")
    @classmethod
    def _guild_ids_are_numbers(cls, value: list[str]) -> list[str]:
        for item in value:
            if not item.isdigit():
                raise ValueError(f"{item!r} is not a Discord guild id (digits only)")
        return value

    def cost(self, name: str) -> int:
        """A ``*_usd`` setting in micro-dollars, e.g. ``cost("image_cost")``."""
        return usd_to_micros(getattr(self, f"{name}_usd"))


def load_settings(**overrides: object) -> Settings:
    """Read settings; on a bad value raise ``SettingsError`` naming each offending variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise SettingsError(error) from None


class SettingsError(Exception):
    """Start-up configuration is invalid; ``str()`` names each variable and what is wrong."""

    def __init__(self, error: ValidationError) -> None:
        problems = []
        for issue in error.errors():
            name = "_".join(str(part) for part in issue["loc"][:1]).upper() or "settings"
            value = issue.get("input")
            shown = "" if name.endswith(("KEY", "TOKEN", "SECRET")) else f" (got {value!r})"
            problems.append(f"  {name}: {issue['msg']}{shown}")
        super().__init__("Invalid configuration:\n" + "\n".join(problems))
