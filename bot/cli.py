"""``python -m bot``: chat in the terminal, run the platform adapters, manage budgets."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel

from bot.errors import CONFIGURATION, RUNTIME, Problem, UsageError, explain
from bot.logs import Redactor, configure_logging
from bot.preflight import PreflightError, check_database, check_media_folder
from bot.settings import Settings, SettingsError, load_settings
from bot.wiring import housekeeping, open_app
from core.budget import format_cap, format_report, format_spenders, monthly, parse_cap
from core.ledger import period_of
from core.members import MemberCaps
from core.money import format_usd, parse_usd
from core.parts import Scope
from core.scopes import ScopeActivity, scope_activity

log = logging.getLogger("bot")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description="A Discord and Slack bot that draws images, writes songs and streams research.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    chat = commands.add_parser("chat", help="chat with the bot in this terminal (or from a pipe)")
    chat.add_argument(
        "--out", type=Path, default=Path("out"), help="folder for images and songs (default ./out)"
    )
    chat.set_defaults(handler=cmd_chat)

    run = commands.add_parser("run", help="start the platform adapters whose credentials are set")
    run.set_defaults(handler=cmd_run)

    web = commands.add_parser(
        "web", help="serve the OpenAI-compatible API and WebSocket sessions alone (demo providers if no keys)"
    )
    web.add_argument("--port", type=int, help="port (default WEB_PORT, or 8000 when it is 0)")
    web.add_argument("--host", help="address (default WEB_HOST, 127.0.0.1)")
    web.set_defaults(handler=cmd_web)

    api_key = commands.add_parser("api-key", help="create, list or revoke keys of the web API")
    key_actions = api_key.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = key_actions.add_parser("create", help="create a key; it is printed once, only its hash is kept")
    create.add_argument(
        "--scope", required=True, help="the budget it pays from, e.g. slack:T0123 or api:team-a"
    )
    create.add_argument("--name", required=True, help="its name; its requests are the user api:NAME")
    create.set_defaults(handler=cmd_api_key_create)
    key_list = key_actions.add_parser("list", help="every key: scope, created, last used, spend this month")
    key_list.set_defaults(handler=cmd_api_key_list)
    revoke = key_actions.add_parser("revoke", help="refuse a key from its next request on")
    revoke.add_argument("name")
    revoke.set_defaults(handler=cmd_api_key_revoke)

    manifest = commands.add_parser("slack-manifest", help="print the manifest to create the Slack app from")
    manifest.add_argument("--name", default="Studio Bot", help="the app's name in Slack (default Studio Bot)")
    manifest.add_argument(
        "--request-url",
        metavar="URL",
        help="public https URL for HTTP mode: the base (https://bot.example.com) or the full"
        " events URL (https://bot.example.com/slack/events); default: Socket Mode",
    )
    manifest.set_defaults(handler=cmd_slack_manifest)

    invite = commands.add_parser("discord-invite", help="print the URL that adds the bot to a Discord server")
    invite.set_defaults(handler=cmd_discord_invite)

    budget = commands.add_parser("budget", help="show or change a scope's monthly budget")
    actions = budget.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser("show", help="show a scope's budget (default console:local)")
    show.add_argument("scope", nargs="?", default="console:local", help="e.g. discord:123 or slack:T0123")
    show.set_defaults(handler=cmd_budget_show)
    set_ = actions.add_parser("set", help="set a scope's monthly limit in dollars")
    set_.add_argument("scope")
    set_.add_argument("amount", help="dollars, e.g. 25 or 12.50")
    set_.set_defaults(handler=cmd_budget_set)
    reset = actions.add_parser("reset", help="restore a scope's default limit")
    reset.add_argument("scope")
    reset.set_defaults(handler=cmd_budget_reset)
    list_ = actions.add_parser("list", help="every scope seen: its limit, spent this month, last activity")
    list_.set_defaults(handler=cmd_budget_list)
    users = actions.add_parser("users", help="a scope's top spenders this month and their caps")
    users.add_argument("scope", help="e.g. discord:123 or slack:T0123")
    users.set_defaults(handler=cmd_budget_users)
    user = actions.add_parser("user", help="set one member's monthly cap in a scope, or reset it")
    user.add_argument("scope")
    user.add_argument("user", help="the member's platform id, e.g. 123456789 (Discord) or U0123 (Slack)")
    user.add_argument("amount", help="dollars (e.g. 5), off for no cap, or reset for the scope's default")
    user.set_defaults(handler=cmd_budget_user)
    dashboard = actions.add_parser(
        "dashboard", help="print a link to a scope's web dashboard (valid DASHBOARD_LINK_MINUTES)"
    )
    dashboard.add_argument("scope")
    dashboard.set_defaults(handler=cmd_budget_dashboard)
    return parser


def start_logging(settings: Settings, *, interactive: bool) -> None:
    """JSON lines for services; terminal commands log only warnings, as text."""
    level = settings.log_level
    if interactive and logging.getLevelName(level) < logging.WARNING:
        level = "WARNING"
    configure_logging(
        level=level,
        json_lines=settings.log_format == "json" and not interactive,
        secrets=settings.secret_values(),
    )


async def cmd_chat(settings: Settings, args: argparse.Namespace) -> None:
    from adapters.console import run_console

    check_media_folder(args.out)
    await asyncio.to_thread(check_database, settings.database_url)
    async with open_app(settings, role="console") as app, housekeeping(app):
        services = ", ".join(
            f"{name} {text.split(' ')[0]}" for name, text in app.providers.descriptions.items()
        )
        print(f"[providers: {services}]", file=sys.stderr)
        await run_console(app.engine, media_dir=args.out)


async def cmd_slack_manifest(settings: Settings, args: argparse.Namespace) -> None:
    from adapters.slack.manifest import APP_NAME_CHARS, app_manifest, events_url

    if args.request_url is not None:
        try:
            events_url(args.request_url)
        except ValueError as error:
            raise UsageError(f"--request-url: {error}.") from None
    name = args.name.strip()
    if not name:
        raise UsageError("--name: the app needs a name, e.g. --name 'Studio Bot'.")
    from bot.providers import select_services
    from core.commands.catalogue import available

    # As under `run`: a service without a live provider (and no DEMO_PROVIDERS) gets no command.
    served = {
        intent for intent, mode in select_services(settings, demo_fallback=False).items() if mode != "off"
    }
    manifest = app_manifest(
        name=name,
        request_url=args.request_url,
        follow_ups=settings.slack.follow_ups,
        commands=available(intents=served, conversations=True),
        attachments=settings.attachments == "on",
    )
    if len(name) > APP_NAME_CHARS:
        shortened = manifest["display_information"]["name"]
        print(
            f"--name: Slack allows {APP_NAME_CHARS} characters in an app's name; "
            f"the manifest names the app {shortened!r}.",
            file=sys.stderr,
        )
    print(json.dumps(manifest, indent=2, ensure_ascii=False))


async def cmd_discord_invite(settings: Settings, args: argparse.Namespace) -> None:
    from adapters.discord import application_id_from_token, invite_url

    application_id = settings.discord.application_id
    if application_id is None:
        if settings.discord.token is None:
            raise UsageError("Set DISCORD_TOKEN (or DISCORD_APPLICATION_ID) to build the invite link.")
        try:
            application_id = application_id_from_token(settings.discord.token)
        except ValueError as error:
            raise UsageError(f"Can't build the invite link: {error}.") from None
    print(invite_url(application_id))


async def cmd_run(settings: Settings, args: argparse.Namespace) -> None:
    from bot.platforms import platform_starters
    from bot.service import serve

    starters = platform_starters(settings)
    if not starters and not settings.web_port:
        raise UsageError(
            "Nothing to run: no platform credentials are set, and WEB_PORT is 0.\n"
            "  Discord: set DISCORD_TOKEN.\n"
            "  Slack:   set SLACK_BOT_TOKEN, and SLACK_APP_TOKEN (Socket Mode)"
            " or SLACK_SIGNING_SECRET (HTTP mode).\n"
            "  Web API: set WEB_PORT (or run: python -m bot web).\n"
            "To try the bot without a platform, run: python -m bot chat"
        )
    await asyncio.to_thread(check_database, settings.database_url)
    await serve(settings, starters)


WEB_DEFAULT_PORT = 8000


async def cmd_web(settings: Settings, args: argparse.Namespace) -> None:
    """The web API alone, like ``run`` with no platform: services without a key get the demo."""
    from bot.service import serve

    port = args.port if args.port is not None else settings.web_port or WEB_DEFAULT_PORT
    if not 0 < port < 65536:
        raise UsageError(f"--port: {port} is not a port (1-65535).")
    await asyncio.to_thread(check_database, settings.database_url)
    update: dict[str, object] = {"web_port": port, "demo_providers": True}
    if args.host:
        update["web_host"] = args.host
    await serve(settings.model_copy(update=update), {})


async def cmd_api_key_create(settings: Settings, args: argparse.Namespace) -> None:
    from core.api_keys import ApiKeyError, KeyStore

    scope = parse_scope(args.scope)
    await asyncio.to_thread(check_database, settings.database_url)
    async with open_app(settings, role="tool") as app:
        try:
            key, secret = await KeyStore(app.ledger.database).create(args.name, scope)
        except ApiKeyError as error:
            raise UsageError(str(error)) from None
    print(secret)
    print(
        f"Key {key.name!r} created: it pays from {scope}, its requests show as user {key.user}.\n"
        "It is shown only this once (only its hash is stored): keep it now.",
        file=sys.stderr,
    )


async def cmd_api_key_list(settings: Settings, args: argparse.Namespace) -> None:
    from core.api_keys import KeyStore

    await asyncio.to_thread(check_database, settings.database_url)
    async with open_app(settings, role="tool") as app:
        usage = await KeyStore(app.ledger.database).usage()
    if not usage:
        print("No API keys yet: python -m bot api-key create --scope SCOPE --name NAME")
        return

    def when(moment: datetime | None) -> str:
        return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if moment else "never"

    header = ("name", "scope", "created (UTC)", "last used", f"spent {usage[0].period}", "status")
    rows = [
        (
            line.key.name,
            str(line.key.scope),
            when(line.key.created_at),
            when(line.key.last_used_at),
            format_usd(line.spent),
            "revoked" if line.key.revoked_at else "active",
        )
        for line in usage
    ]
    print(table(header, rows))


async def cmd_api_key_revoke(settings: Settings, args: argparse.Namespace) -> None:
    from core.api_keys import KeyStore

    await asyncio.to_thread(check_database, settings.database_url)
    async with open_app(settings, role="tool") as app:
        revoked = await KeyStore(app.ledger.database).revoke(args.name)
    if not revoked:
        raise UsageError(f"No active key named {args.name!r}; `python -m bot api-key list` shows them.")
    print(f"Key {args.name!r} revoked: it is refused from its next request on.")


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain table with padded columns."""
    widths = [max(len(row[column]) for row in (header, *rows)) for column in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    )


SCOPE_FORMS = (
    "discord:GUILD_ID (digits), discord-dm:USER_ID (digits), slack:TEAM_ID (T…), console:local "
    "or api:NAME (a budget of its own for API keys)"
)


def _scope_id_fits(platform: str, ident: str) -> bool | None:
    """Whether ``ident`` has the shape of a ``platform`` scope id; ``None`` for an unknown platform.
    The platform names are the adapters' (``discord``, ``discord-dm``, ``slack``, ``console``)."""
    if platform in ("discord", "discord-dm"):
        return ident.isascii() and ident.isdigit()
    if platform == "slack":
        return ident[:1] == "T" and len(ident) > 1 and ident.isascii() and ident.isalnum() and ident.isupper()
    if platform == "console":
        return ident == "local"
    if platform == "api":
        from core.api_keys import NAME_PATTERN

        return NAME_PATTERN.fullmatch(ident) is not None
    return None


def parse_scope(text: str) -> Scope:
    """A scope an operator typed, checked against the platforms the bot serves, so that a typo
    (``discrod:123``) is refused instead of setting a budget nobody uses."""
    try:
        scope = Scope.parse(text.strip())
    except ValueError:
        raise UsageError(f"{text!r} is not a scope (platform:id); scopes look like {SCOPE_FORMS}.") from None
    fits = _scope_id_fits(scope.platform, scope.id)
    if fits is None:
        raise UsageError(f"{text!r}: unknown platform {scope.platform!r}; scopes look like {SCOPE_FORMS}.")
    if not fits:
        raise UsageError(
            f"{text!r} is not a {scope.platform} scope; scopes look like {SCOPE_FORMS}.\n"
            "`python -m bot budget list` shows every scope the bot has seen."
        )
    return scope


async def cmd_budget_show(settings: Settings, args: argparse.Namespace) -> None:
    scope = parse_scope(args.scope)
    await asyncio.to_thread(check_database, settings.database_url)
    async with open_app(settings, role="tool") as app:
        print(format_report(await app.ledger.report(scope), name=str))


async def cmd_budget_set(settings: Settings, args: argparse.Namespace) -> None:
    scope = parse_scope(args.scope)
    try:
        limit = parse_usd(args.amount)
    except ValueError as error:
        raise UsageError(f"Can't set the limit: {error}") from None
    await asyncio.to_thread(check_database, settings.database_url)
    async with open_app(settings, role="tool") as app:
        await app.ledger.set_limit(scope, limit, by="cli")
        print(f"{scope}: monthly limit set to {format_usd(limit)}.")


async def cmd_budget_dashboard(settings: Settings, args: argparse.Namespace) -> None:
    from core.dashboard import LinkRefused

    scope = parse_scope(args.scope)
    if not settings.web_base_url:
        raise UsageError(
            "The dashboard is served by the web server: set WEB_PUBLIC_URL (or WEB_PORT) to where "
            "browsers reach it, and run the bot with WEB_PORT set (or python -m bot web)."
        )
    await asyncio.to_thread(check_database, settings.database_url)
    async with open_app(settings, role="tool") as app:
        assert app.engine.dashboard is not None
        try:
            link = app.engine.dashboard.link(scope, user="cli")
        except LinkRefused as refused:
            raise UsageError(str(refused)) from None
    print(link.url)
    print(f"{scope}: the link works until {link.expires_at:%Y-%m-%d %H:%M} UTC.", file=sys.stderr)


async def cmd_budget_list(settings: Settings, args: argparse.Namespace) -> None:
    await asyncio.to_thread(check_database, settings.database_url)
    async with open_app(settings, role="tool") as app:
        print(format_scope_activity(await scope_activity(app.ledger)))


async def cmd_budget_users(settings: Settings, args: argparse.Namespace) -> None:
    scope = parse_scope(args.scope)
    await asyncio.to_thread(check_database, settings.database_url)
    async with open_app(settings, role="tool") as app:
        caps = MemberCaps(app.ledger)
        default_cap, _ = await caps.scope_default(scope)
        spenders = await caps.top_spenders(scope)
        period = period_of(app.clock.utc())
        print(format_spenders(period, spenders, default_cap=default_cap, name=str))


async def cmd_budget_user(settings: Settings, args: argparse.Namespace) -> None:
    scope = parse_scope(args.scope)
    user = args.user.strip()
    if not user or not user.replace("-", "").replace("_", "").replace(":", "").isalnum():
        raise UsageError(f"{args.user!r} is not a member id; use the platform's id, e.g. U0123 or 123456789.")
    reset = args.amount.strip().lower() == "reset"
    cap: int | None = None
    if not reset:
        try:
            cap = parse_cap(args.amount)
        except ValueError as error:
            raise UsageError(f"Can't set the cap: {error}, off or reset") from None
    await asyncio.to_thread(check_database, settings.database_url)
    async with open_app(settings, role="tool") as app:
        caps = MemberCaps(app.ledger)
        if reset:
            await caps.reset_cap(scope, user)
            report = await app.ledger.member_report(scope, user)
            print(f"{scope} {user}: cap reset to the default, {monthly(report.cap)}.")
        else:
            await caps.set_cap(scope, user, cap, by="cli")
            print(f"{scope} {user}: monthly cap set to {format_cap(cap)}.")


def format_scope_activity(activity: Sequence[ScopeActivity]) -> str:
    """A plain table, one scope a line; amounts in dollars, times in UTC."""
    if not activity:
        return "No scopes yet: nothing has been asked for and no limit has been set."
    header = ("scope", "limit", f"spent {activity[0].period}", "held", "last activity (UTC)")
    rows = [
        (
            str(line.scope),
            format_usd(line.limit) + (" (default)" if line.limit_is_default else ""),
            format_usd(line.spent),
            format_usd(line.held),
            line.last_activity.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if line.last_activity else "never",
        )
        for line in activity
    ]
    widths = [max(len(row[column]) for row in (header, *rows)) for column in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    )


async def cmd_budget_reset(settings: Settings, args: argparse.Namespace) -> None:
    scope = parse_scope(args.scope)
    await asyncio.to_thread(check_database, settings.database_url)
    async with open_app(settings, role="tool") as app:
        await app.ledger.reset_limit(scope)
        print(f"{scope}: limit reset to the default, {format_usd(app.ledger.default_limit_for(scope))}.")


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (Linux and macOS): the same asyncio API with cheaper callbacks
    and sockets; in a burst of answers a third less time before each provider call and 10–20% less
    bot CPU per answer (docs/benchmarks.md)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def flat_settings(settings: BaseModel, prefix: str = "") -> dict[str, object]:
    """Every setting's value by its environment variable name (``DISCORD_API_URL`` …), nested
    groups of settings included."""
    values: dict[str, object] = {}
    for name, value in settings:
        variable = f"{prefix}{name}".upper()
        if isinstance(value, BaseModel):
            values |= flat_settings(value, f"{variable}_")
        else:
            values[variable] = value
    return values


def setting_urls(settings: BaseModel) -> dict[str, str]:
    """Every setting holding a URL, so an error reaching a host can name the variable to check."""
    return {
        name: value
        for name, value in flat_settings(settings).items()
        if name.endswith("_URL") and isinstance(value, str)
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit status: 0 done, 2 a configuration problem, 1 a runtime
    one, 130 interrupted. Known problems are one or two lines on stderr; a traceback only with
    ``LOG_LEVEL=DEBUG``."""
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as error:
        print(error, file=sys.stderr)
        return CONFIGURATION
    start_logging(settings, interactive=args.command not in ("run", "web"))
    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(args.handler(settings, args))
    except KeyboardInterrupt:
        print("\nStopped.", file=sys.stderr)
        return 130
    except PreflightError as error:
        print(error.problem.message, file=sys.stderr)
        return error.problem.exit_status
    except Exception as error:
        return report_failure(error, settings, command=args.command)
    return 0


def report_failure(error: Exception, settings: Settings, *, command: str) -> int:
    """Print what stopped ``command`` (secrets redacted) and return the exit status."""
    redactor = Redactor(settings.secret_values())
    problem = explain(error, urls=setting_urls(settings)) or Problem(
        f"python -m bot {command} stopped: {type(error).__name__}: {error}\n"
        "  Run it again with LOG_LEVEL=DEBUG to see the traceback.",
        RUNTIME,
    )
    if settings.log_level == "DEBUG" and not isinstance(error, UsageError):
        print(redactor.redact("".join(traceback.format_exception(error))), file=sys.stderr, end="")
    print(redactor.redact(problem.message), file=sys.stderr)
    return problem.exit_status
