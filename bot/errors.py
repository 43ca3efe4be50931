"""Errors the command line prints without a traceback, and what to tell the operator about others."""

from __future__ import annotations

import socket
import sqlite3
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

CONFIGURATION = 2
"""Exit status for a problem in the settings or the command line: fix it and start again."""
RUNTIME = 1
"""Exit status for a problem outside the bot's settings: the network, the database file, a crash."""


class UsageError(Exception):
    """A problem the operator can fix; printed as is, exit status 2."""


@dataclass(frozen=True, slots=True)
class Problem:
    """What stopped the bot, in one or two lines naming the variable and what to do."""

    message: str
    exit_status: int


def explain(error: BaseException, *, urls: Mapping[str, str]) -> Problem | None:
    """The operator's view of ``error``, or ``None`` when it is not one the bot knows.

    ``urls`` maps each setting that holds a URL (``DISCORD_API_URL``, ``DATABASE_URL`` …) to its
    value, so a failure to reach a host or open a file names the variable to check. The whole
    chain of causes is read: adapters often re-raise a network error as their own.
    """
    chain = list(_causes(error))
    if (found := _discord_login_failure(chain)) is not None:
        return found
    for cause in chain:
        if isinstance(cause, socket.gaierror) or type(cause).__name__ == "ClientConnectorDNSError":
            return _unreachable(chain, urls, "its name does not resolve (DNS)")
    for cause in chain:
        if isinstance(cause, sqlite3.DatabaseError):
            return _database(cause, urls.get("DATABASE_URL", ""))
        if type(cause).__module__.startswith("asyncpg"):  # refused: password, database, permission
            return Problem(f"DATABASE_URL: PostgreSQL refused: {cause}.", CONFIGURATION)
    for cause in chain:
        if isinstance(cause, ConnectionError) or type(cause).__name__ == "ClientConnectorError":
            return _unreachable(chain, urls, "the connection failed")
    if isinstance(error, UsageError):
        return Problem(str(error), CONFIGURATION)
    return None


def _causes(error: BaseException) -> Iterator[BaseException]:
    """``error`` and every exception it was raised from or while handling, suppressed ones too."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            for inner in current.exceptions:
                yield from _causes(inner)
        current = current.__cause__ or current.__context__


def _discord_login_failure(chain: list[BaseException]) -> Problem | None:
    discord = sys.modules.get("discord")
    if discord is None or not any(isinstance(cause, discord.LoginFailure) for cause in chain):
        return None
    return Problem(
        "DISCORD_TOKEN: Discord refused the token (401 Unauthorized). Copy a fresh one from "
        "https://discord.com/developers/applications → your application → Bot → Reset Token.",
        CONFIGURATION,
    )


def _unreachable(chain: list[BaseException], urls: Mapping[str, str], why: str) -> Problem:
    host = next((found for cause in chain if (found := _host_of(cause))), None)
    variables = [name for name, url in urls.items() if host and urlsplit(url).hostname == host]
    where = f"{host}" if host else "a server"
    check = f"or {' / '.join(variables)}" if variables else "or the *_URL settings"
    return Problem(
        f"{variables[0] + ': ' if variables else ''}can't reach {where}: {why}.\n"
        f"  Check this machine's network and DNS, {check}.",
        RUNTIME,
    )


def _host_of(error: BaseException) -> str | None:
    """The host an aiohttp or httpx connection error was trying to reach."""
    host = getattr(error, "host", None)
    if isinstance(host, str) and host:
        return host
    request = getattr(error, "_request", None)  # httpx: ``.request`` raises when it is unset
    url = getattr(request, "url", None)
    return getattr(url, "host", None) or None


def _database(error: sqlite3.DatabaseError, database_url: str) -> Problem:
    text = str(error)
    if isinstance(error, sqlite3.OperationalError) and any(
        sign in text for sign in ("unable to open", "readonly", "read-only", "disk I/O", "permission")
    ):
        return Problem(
            f"DATABASE_URL: can't write the database {database_url} ({text}).\n"
            "  Make its folder writable for this user, or point DATABASE_URL at one that is.",
            CONFIGURATION,
        )
    if "not a database" in text or "malformed" in text:
        return Problem(
            f"DATABASE_URL: {database_url} is not a SQLite database, or it is damaged ({text}).\n"
            "  Restore it from a backup, or point DATABASE_URL at a new file.",
            RUNTIME,
        )
    return Problem(f"DATABASE_URL: the database {database_url} failed: {text}.", RUNTIME)
