"""Every operator-facing setting, read from the environment and ``.env`` and validated at start-up."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.money import usd_to_micros
from core.providers.pricing import KNOWN_TEXT_PRICES, TokenPrice, parse_token_prices

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
    log_format: Literal["json", "text"] = "json"
    demo_delay_s: Annotated[float, Field(ge=0, le=5)] = 0.03
    """Pause between demo text chunks, so streaming is visible in the demo."""

    # --- text: research, chat and the router classifier (OpenAI-compatible) ------------------
    text_provider: Literal["auto", "openai", "demo"] = "auto"
    openai_api_key: SecretStr | None = Field(default=None, validate_default=True)
    openai_base_url: str = "https://api.openai.com/v1"
    research_model: str = "gpt-4o-mini"
    chat_model: str = "gpt-4o-mini"
    router_model: str = "gpt-4o-mini"
    text_prices: Annotated[dict[str, TokenPrice], NoDecode] = Field(
        default_factory=lambda: parse_token_prices(KNOWN_TEXT_PRICES)
    )
    """``model=input/output`` USD per million tokens, comma separated; merged over the known table."""
    openai_max_retries: Annotated[int, Field(ge=0, le=5)] = 2
    """SDK retries of text calls that failed with 408/409/429/5xx (nothing generated, nothing billed)."""

    # --- images ------------------------------------------------------------------------------
    image_provider: Literal["auto", "bfl", "openai", "demo"] = "auto"
    bfl_api_key: SecretStr | None = Field(default=None, validate_default=True)
    bfl_api_url: str = "https://api.bfl.ai/v1"
    image_model: str = "flux-pro-1.1"
    image_width: Annotated[int, Field(ge=256, le=2048, multiple_of=32)] = 1024
    image_height: Annotated[int, Field(ge=256, le=2048, multiple_of=32)] = 768
    image_timeout_s: Annotated[float, Field(gt=0)] = 120
    openai_image_model: str = "gpt-image-1"
    openai_image_quality: Literal["low", "medium", "high", "auto"] = "medium"
    """Quality for gpt-image models (the price depends on it; DALL·E models ignore this)."""

    # --- songs -------------------------------------------------------------------------------
    song_provider: Literal["auto", "udioapi", "suno-api", "demo"] = "auto"
    song_api_key: SecretStr | None = Field(default=None, validate_default=True)
    song_api_url: str = "https://udioapi.pro/api"
    song_model: str = "chirp-v3-5"
    song_poll_s: Annotated[float, Field(gt=0)] = 5
    song_timeout_s: Annotated[float, Field(gt=0)] = 600

    # --- HTTP to providers -------------------------------------------------------------------
    http_timeout_s: Annotated[float, Field(gt=0)] = 30
    http_attempts: Annotated[int, Field(ge=1, le=10)] = 4
    """Tries per idempotent call (polls, downloads); paid submissions are sent exactly once."""

    # --- Discord -----------------------------------------------------------------------------
    discord_token: SecretStr | None = None
    discord_api_url: str = "https://discord.com/api/v10"
    discord_gateway_url: str = "wss://gateway.discord.gg/"
    discord_guild_ids: CommaList = []
    discord_allow_dms: bool = False
    discord_dm_budget_usd: Usd = Decimal("0")
    discord_application_id: str | None = None
    """Only for ``discord-invite``; derived from DISCORD_TOKEN when unset."""
    discord_follow_ups: Literal["mention", "thread"] = "thread"
    """``thread``: replies to the bot and messages in a thread it answered in need no mention (asks
    for the privileged Message Content intent); ``mention``: only mentions and DMs are answered."""

    # --- Slack -------------------------------------------------------------------------------
    slack_bot_token: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_port: Annotated[int, Field(ge=1, le=65535)] = 3000
    slack_api_url: str = "https://slack.com/api/"
    slack_admin_ids: CommaList = []
    """Member ids (``U0123ABCD``) allowed to see and change ``/budget`` besides workspace admins."""
    slack_follow_ups: Literal["mention", "thread"] = "thread"
    """``thread``: replies in a thread where the bot answered need no mention; ``mention``: they do."""

    @field_validator("slack_admin_ids")
    @classmethod
    def _slack_member_ids(cls, value: list[str]) -> list[str]:
        for item in value:
            if not (item[:1] in ("U", "W") and item.isalnum() and item.isupper()):
                raise ValueError(
                    f"{item!r} is not a Slack member id (like U0123ABCD: profile → ⋮ → Copy member ID)"
                )
        return value

    # --- who sees /budget --------------------------------------------------------------------
    budget_visible_to: Literal["admins", "everyone"] = "admins"

    # --- admission control and circuit breakers ----------------------------------------------
    max_jobs: Annotated[int, Field(ge=1)] = 50
    max_jobs_per_scope: Annotated[int, Field(ge=1)] = 5
    max_queue: Annotated[int, Field(ge=0)] = 200
    user_requests_per_minute: Annotated[int, Field(ge=0)] = 10
    """0 turns the per-user rate limit off."""
    breaker_threshold: Annotated[int, Field(ge=1)] = 5
    breaker_cooldown_s: Annotated[float, Field(gt=0)] = 30

    # --- operations ---------------------------------------------------------------------------
    metrics_port: Annotated[int, Field(ge=0, le=65535)] = 9090
    """/healthz, /readyz and /metrics for ``run``; 0 turns the endpoint off."""
    metrics_host: str = "127.0.0.1"
    shutdown_grace_s: Annotated[float, Field(ge=0)] = 20

    # --- conversations ------------------------------------------------------------------------
    history_days: Annotated[int, Field(ge=1, le=3650)] = 30
    """Days conversation events, finished jobs and transaction prompts are kept before the
    periodic purge deletes them (a transaction's amount stays)."""
    history_tokens: Annotated[int, Field(ge=0, le=100_000)] = 3000
    """Tokens of earlier turns sent with chat, research and summaries (oldest left out first)."""
    summary_idle_min: Annotated[int, Field(ge=0, le=10_080)] = 0
    """Minutes of quiet after which a conversation gets an automatic, charged summary; 0 = never."""

    @field_validator("discord_guild_ids", "slack_admin_ids", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("discord_application_id")
    @classmethod
    def _application_id_is_a_number(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.strip().isdigit():
            raise ValueError("a Discord application id is digits only")
        return value.strip()

    @field_validator("discord_guild_ids")
    @classmethod
    def _guild_ids_are_numbers(cls, value: list[str]) -> list[str]:
        for item in value:
            if not item.isdigit():
                raise ValueError(f"{item!r} is not a Discord guild id (digits only)")
        return value

    # --- providers: a provider chosen explicitly must have its key ----------------------------
    # Validators see only the fields declared above them (``info.data``): each *_PROVIDER comes
    # before its key, and OPENAI_API_KEY before IMAGE_PROVIDER.

    @field_validator("text_prices", mode="before")
    @classmethod
    def _merge_prices(cls, value: object) -> object:
        if isinstance(value, str):
            return parse_token_prices(KNOWN_TEXT_PRICES) | parse_token_prices(value)
        return value

    @field_validator("openai_api_key", "bfl_api_key", "song_api_key")
    @classmethod
    def _key_for_chosen_provider(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            value = None
        needs = {
            "openai_api_key": ("text_provider", "openai"),
            "bfl_api_key": ("image_provider", "bfl"),
            "song_api_key": ("song_provider", "udioapi"),
        }
        choice, provider = needs[str(info.field_name)]
        if value is None and info.data.get(choice) == provider:
            variable = str(info.field_name).upper()
            raise ValueError(
                f"{choice.upper()}={provider} needs {variable}; set it, or use {choice.upper()}=auto or demo"
            )
        return value

    @field_validator("image_provider")
    @classmethod
    def _openai_key_for_images(cls, value: str, info: ValidationInfo) -> str:
        if value == "openai" and info.data.get("openai_api_key") is None:
            raise ValueError("IMAGE_PROVIDER=openai needs OPENAI_API_KEY; set it, or use auto, bfl or demo")
        return value

    def text_price(self, model: str) -> TokenPrice | None:
        """The configured per-token price of ``model``, or ``None`` when it is not listed."""
        return self.text_prices.get(model)

    def secret_values(self) -> list[str]:
        """Every configured secret, so logs can redact it wherever it turns up."""
        return [value.get_secret_value() for value in self.__dict__.values() if isinstance(value, SecretStr)]

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
