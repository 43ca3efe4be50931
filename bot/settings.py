"""Every operator-facing setting, read from the environment and ``.env`` and validated at start-up."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from adapters.discord.config import DiscordSettings
from adapters.slack.config import SlackSettings
from core.leases import LEASE_RENEW_S, LEASE_TTL_S
from core.money import usd_to_micros
from core.providers.pricing import KNOWN_TEXT_PRICES, TokenPrice, parse_token_prices

Usd = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=6)]

FROM_ENVIRONMENT = SettingsConfigDict(
    env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
)

# The platform settings are declared once, in the adapters' config modules (the adapters may not
# import bot/, and the adapter config extends them); here they only learn where their values come
# from: ``DISCORD_TOKEN`` is ``DiscordSettings.token``.


class DiscordEnvironment(DiscordSettings, BaseSettings):
    """``DiscordSettings`` read from ``DISCORD_*`` variables and ``.env``."""

    model_config = SettingsConfigDict(env_prefix="DISCORD_", **FROM_ENVIRONMENT)


class SlackEnvironment(SlackSettings, BaseSettings):
    """``SlackSettings`` read from ``SLACK_*`` variables and ``.env``."""

    model_config = SettingsConfigDict(env_prefix="SLACK_", **FROM_ENVIRONMENT)

    @field_validator("port")
    @classmethod
    def _a_port_to_listen_on(cls, value: int) -> int:
        # Port 0 (any free port) is for tests; an operator's Slack app needs a known one.
        if value == 0:
            raise ValueError("Input should be between 1 and 65535")
        return value


PLATFORMS: dict[str, type[BaseSettings]] = {"discord": DiscordEnvironment, "slack": SlackEnvironment}


class Settings(BaseSettings):
    """Names are the environment variables, upper-cased (the platform ones nest: ``DISCORD_TOKEN``
    is ``settings.discord.token``). ``.env.example`` and README document each one."""

    model_config = FROM_ENVIRONMENT

    def __init__(self, **values: Any) -> None:
        """Read the platform models with the same ``_env_file``; ``discord_token=…`` and the
        like are accepted by variable name. Raises ``SettingsError`` naming every bad variable."""
        env_file = {"_env_file": values["_env_file"]} if "_env_file" in values else {}
        problems: list[str] = []
        for name, model in PLATFORMS.items():
            if name in values:
                continue
            prefix = f"{name}_"
            given = {
                key.removeprefix(prefix): values.pop(key)
                for key in list(values)
                if key.startswith(prefix) and key.removeprefix(prefix) in model.model_fields
            }
            try:
                values[name] = model(**env_file, **given)
            except ValidationError as error:
                problems += _problems(error, model)
                values[name] = model.model_construct()
        try:
            super().__init__(**values)
        except ValidationError as error:
            problems = _problems(error, type(self)) + problems
        if problems:
            raise SettingsError(problems)

    # --- core -------------------------------------------------------------------------------
    database_url: str = "sqlite:///data/bot.db"
    default_budget_usd: Usd = Decimal("20")
    default_user_budget_usd: Usd | Literal["off"] = Decimal("5")
    """Each member's monthly cap inside their server's or workspace's budget, unless an admin sets
    theirs or the scope's default (``/budget user``, ``/budget user-default``); ``off``: no cap."""
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
    demo_providers: bool = False
    """``python -m bot run`` turns a service without a live provider off; ``true`` gives it the
    free offline demo instead (the terminal chat always does). Demo work is never charged."""
    text_provider: Literal["auto", "openai", "demo", "off"] = "auto"
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
    image_provider: Literal["auto", "bfl", "openai", "demo", "off"] = "auto"
    bfl_api_key: SecretStr | None = Field(default=None, validate_default=True)
    bfl_api_url: str = "https://api.bfl.ai/v1"
    image_model: str = "flux-pro-1.1"
    image_width: Annotated[int, Field(ge=256, le=2048, multiple_of=32)] = 1024
    image_height: Annotated[int, Field(ge=256, le=2048, multiple_of=32)] = 768
    image_timeout_s: Annotated[float, Field(gt=0)] = 120
    image_vary_price_usd: Usd = Decimal("0.04")
    """Reserved and charged per variation (FLUX.1 Kontext [pro] lists at $0.04)."""
    image_edit_price_usd: Usd = Decimal("0.04")
    """Reserved and charged per instruction edit (FLUX.1 Kontext [pro] lists at $0.04)."""
    image_upscale_price_usd: Usd = Decimal("0.06")
    """Reserved and charged per upscale (FLUX1.1 [pro] Ultra lists at $0.06)."""
    image_keep_days: Annotated[int, Field(ge=1, le=365)] = 7
    """How long the bot keeps its own copy of a delivered image for vary, upscale and edit."""
    bfl_edit_model: str = "flux-kontext-pro"
    """BFL model for vary and edit (takes the image as ``input_image``)."""
    bfl_upscale_model: str = "flux-pro-1.1-ultra"
    openai_image_model: str = "gpt-image-1"
    openai_image_quality: Literal["low", "medium", "high", "auto"] = "medium"
    """Quality for gpt-image models (the price depends on it; DALL·E models ignore this)."""

    # --- songs -------------------------------------------------------------------------------
    song_provider: Literal["auto", "udioapi", "suno-api", "demo", "off"] = "auto"
    song_api_key: SecretStr | None = Field(default=None, validate_default=True)
    song_api_url: str = "https://udioapi.pro/api"
    song_model: str = "chirp-v3-5"
    song_poll_s: Annotated[float, Field(gt=0)] = 5
    song_timeout_s: Annotated[float, Field(gt=0)] = 600
    media_allowed_hosts: str = ""
    """Comma-separated hosts media and polling URLs may come from besides the provider's own origin
    and public https hosts (e.g. an internal object store); they never get provider credentials."""
    max_media_mb: Annotated[int, Field(ge=1, le=1000)] = 25
    """The largest image or song download accepted, in MiB (checked before and while reading)."""
    attachments: Literal["on", "off"] = "on"
    """Read images and text files attached to a mention (from the platform's own file hosts only);
    ``on`` also adds ``files:read`` to the Slack manifest."""
    max_attachment_kb: Annotated[int, Field(ge=1, le=10_240)] = 256
    """The largest attached text file read into a conversation, in KiB."""
    chat_vision: Literal["auto", "on", "off"] = "auto"
    """Send attached images to the chat model: ``auto`` when its name is a known vision model."""

    # --- HTTP to providers -------------------------------------------------------------------
    http_timeout_s: Annotated[float, Field(gt=0)] = 30
    http_attempts: Annotated[int, Field(ge=1, le=10)] = 4
    """Tries per idempotent call (polls, downloads); paid submissions are sent exactly once."""

    # --- Discord and Slack: declared once, in the adapters' config modules --------------------
    discord: DiscordEnvironment = Field(default_factory=DiscordEnvironment)
    slack: SlackEnvironment = Field(default_factory=SlackEnvironment)
    discord_dm_budget_usd: Usd = Decimal("0")
    """A limit the ledger applies to each person's DMs; the adapter never reads it, so it stays here."""

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
    lease_ttl_s: Annotated[float, Field(gt=0, le=3600)] = LEASE_TTL_S
    """Seconds a process's lease on its work lasts unrenewed: a process silent this long is
    presumed dead, and a live one takes its jobs over (docs/scaling.md)."""
    lease_renew_s: Annotated[float, Field(gt=0, le=600)] = LEASE_RENEW_S
    """Seconds between renewals of this process's leases (and take-over sweeps); below LEASE_TTL_S."""

    @field_validator("lease_renew_s")
    @classmethod
    def _renewed_before_it_runs_out(cls, value: float, info: ValidationInfo) -> float:
        ttl = info.data.get("lease_ttl_s")
        if ttl is not None and value >= ttl:
            raise ValueError(f"must be below LEASE_TTL_S ({ttl:g}), so a live process renews in time")
        return value

    # --- conversations ------------------------------------------------------------------------
    history_days: Annotated[int, Field(ge=1, le=3650)] = 30
    """Days conversation events, finished jobs and transaction prompts are kept before the
    periodic purge deletes them (a transaction's amount stays)."""
    history_tokens: Annotated[int, Field(ge=0, le=100_000)] = 3000
    """Tokens of earlier turns sent with chat, research and summaries (oldest left out first)."""
    summary_idle_min: Annotated[int, Field(ge=0, le=10_080)] = 0
    """Minutes of quiet after which a conversation gets an automatic, charged summary; 0 = never."""

    # --- the web API (adapters/web) ---------------------------------------------------------
    web_port: Annotated[int, Field(ge=0, le=65535)] = 0
    """The OpenAI-compatible API and WebSocket sessions under ``run``; 0 = off. ``python -m bot web``
    serves on it too (on 8000 when it is 0)."""
    web_host: str = "127.0.0.1"
    web_public_url: str = ""
    """Where clients reach the API (``https://bot.example.com``), for media links; empty: the
    address each request came in on."""
    media_dir: str = "data/media"
    """Where the API keeps the images and songs its links point to."""
    media_days: Annotated[int, Field(ge=1, le=3650)] = 7
    """Days those files are kept before the periodic purge deletes them."""
    session_summary_after_s: Annotated[float, Field(ge=0)] = 60
    """Seconds a WebSocket session stays disconnected before its charged summary is made; 0 = never."""
    web_secret: SecretStr | None = None
    """Signs dashboard links and sessions; unset: one is generated and kept in the database."""
    web_admin_token: SecretStr | None = None
    """Opens the operator's dashboard across every scope (at ``/dashboard``); unset: no operator view."""
    dashboard_link_minutes: Annotated[int, Field(ge=1, le=10_080)] = 60
    """Minutes a ``/budget dashboard`` link works, and a dashboard session lasts once opened."""

    @field_validator("web_secret", "web_admin_token")
    @classmethod
    def _blank_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value is None or value.get_secret_value().strip() else None

    @property
    def web_base_url(self) -> str:
        """Where browsers reach the web server: ``WEB_PUBLIC_URL``, else ``WEB_HOST``:``WEB_PORT``."""
        if self.web_public_url:
            return self.web_public_url.rstrip("/")
        if not self.web_port:
            return ""
        host = "127.0.0.1" if self.web_host in ("", "0.0.0.0", "::") else self.web_host
        return f"http://{host}:{self.web_port}"

    # --- providers: a provider chosen explicitly must have its key ----------------------------
    # Validators see only the fields declared above them (``info.data``): each *_PROVIDER comes
    # before its key, and OPENAI_API_KEY before IMAGE_PROVIDER.

    @field_validator("default_user_budget_usd", mode="before")
    @classmethod
    def _off_in_any_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) and value.strip().lower() == "off" else value

    def member_cap(self) -> int | None:
        """``DEFAULT_USER_BUDGET_USD`` in micro-dollars; ``None`` when it is ``off``."""
        cap = self.default_user_budget_usd
        return None if cap == "off" else usd_to_micros(cap)

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
                f"{choice.upper()}={provider} needs {variable}; "
                f"set it, or use {choice.upper()}=auto, demo or off"
            )
        return value

    @field_validator("image_provider")
    @classmethod
    def _openai_key_for_images(cls, value: str, info: ValidationInfo) -> str:
        if value == "openai" and info.data.get("openai_api_key") is None:
            raise ValueError(
                "IMAGE_PROVIDER=openai needs OPENAI_API_KEY; set it, or use auto, bfl, demo or off"
            )
        return value

    def text_price(self, model: str) -> TokenPrice | None:
        """The configured per-token price of ``model``, or ``None`` when it is not listed."""
        return self.text_prices.get(model)

    def secret_values(self) -> list[str]:
        """Every configured secret, so logs can redact it wherever it turns up: the ``SecretStr``
        settings and the platform fields kept out of ``repr`` (the adapters take those as ``str``)."""
        secrets = [value.get_secret_value() for value in vars(self).values() if isinstance(value, SecretStr)]
        for platform in (self.discord, self.slack):
            for name, field in type(platform).model_fields.items():
                value = getattr(platform, name)
                if not field.repr and isinstance(value, str) and value:
                    secrets.append(value)
        return secrets

    def cost(self, name: str) -> int:
        """A ``*_usd`` setting in micro-dollars, e.g. ``cost("image_cost")``."""
        return usd_to_micros(getattr(self, f"{name}_usd"))


def load_settings(**overrides: object) -> Settings:
    """Read settings; ``overrides`` are named like the variables, lower-cased (``slack_port=…``).
    On a bad value raise ``SettingsError`` naming each offending variable."""
    return Settings(**overrides)


def environment_variables() -> set[str]:
    """The name of every variable the settings read."""
    names = {name.upper() for name in Settings.model_fields if name not in PLATFORMS}
    for model in PLATFORMS.values():
        names |= {_variable(model, name) for name in model.model_fields}
    return names


def _variable(model: type[BaseModel], name: str) -> str:
    """The environment variable behind ``model``'s field ``name``."""
    field = model.model_fields.get(name)
    if field is not None and isinstance(field.validation_alias, str):
        return field.validation_alias.upper()
    return f"{model.model_config.get('env_prefix', '')}{name}".upper()


def _problems(error: ValidationError, model: type[BaseModel]) -> list[str]:
    lines = []
    for issue in error.errors():
        location = [str(part) for part in issue["loc"]]
        owner = model
        if len(location) > 1 and location[0] in PLATFORMS:
            owner = PLATFORMS[location[0]]
            location = location[1:]
        name = _variable(owner, location[0]) if location else "settings"
        value = issue.get("input")
        shown = "" if name.endswith(("KEY", "TOKEN", "SECRET")) else f" (got {value!r})"
        lines.append(f"  {name}: {issue['msg']}{shown}")
    return lines


class SettingsError(Exception):
    """Start-up configuration is invalid; ``str()`` names each variable and what is wrong."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("Invalid configuration:\n" + "\n".join(problems))
