"""Start-up problems end in one or two lines naming the variable, exit 2 (configuration) or 1
(runtime), never a traceback unless ``LOG_LEVEL=DEBUG``; harmless library warnings stay quiet."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sqlite3
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest
from aiohttp import web

from bot.cli import report_failure
from bot.settings import Settings
from tests import pg
from tests.cli import REPO, clean_env, run_bot
from tests.fakes.fake_discord import FakeDiscord
from tests.fakes.fake_slack import APP_TOKEN, BOT_TOKEN, FakeSlack
from tests.fakes.local_app import serving


def problem_lines(stderr: str) -> list[str]:
    """What the CLI printed itself: the lines after the JSON log lines of ``run``."""
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith("{")]


class Outcome(Protocol):
    returncode: int
    stderr: str


@dataclass(frozen=True, slots=True)
class Exited:
    returncode: int
    stderr: str


def assert_clean_failure(result: Outcome, *, status: int, first: str, contains: str = "") -> str:
    lines = problem_lines(result.stderr)
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr
    assert 1 <= len(lines) <= 2, lines
    assert lines[0].startswith(first), lines
    assert contains in "\n".join(lines), lines
    return "\n".join(lines)


def bot(tmp_path: Path, *args: str, stdin: str = "", **env: str) -> Outcome:
    return run_bot(tmp_path, *args, stdin=stdin, **env)


# --- DATABASE_URL ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["postgres://bot:secret@127.0.0.1:1/bot", "postgresql+asyncpg://bot:secret@127.0.0.1:1/bot"]
)
def test_an_unreachable_postgresql_names_database_url_and_not_its_password(tmp_path: Path, url: str) -> None:
    result = bot(tmp_path, "budget", "show", DATABASE_URL=url)
    assert_clean_failure(result, status=1, first="DATABASE_URL: can't reach 127.0.0.1")
    assert "secret" not in result.stderr + result.stdout


def test_the_bot_runs_on_postgresql(tmp_path: Path, postgres_server: pg.Server) -> None:
    url = postgres_server.create()
    changed = bot(tmp_path, "budget", "set", "discord:42", "7", DATABASE_URL=url)
    assert changed.returncode == 0, changed.stderr
    shown = bot(tmp_path, "budget", "show", "discord:42", DATABASE_URL=url)
    assert shown.returncode == 0, shown.stderr
    assert "$7.00" in shown.stdout
    missing = bot(tmp_path, "budget", "show", DATABASE_URL=url.replace("/test_", "/missing_"))
    assert_clean_failure(
        missing, status=2, first="DATABASE_URL: PostgreSQL refused:", contains="does not exist"
    )


def test_a_path_instead_of_a_url_is_refused_showing_the_url(tmp_path: Path) -> None:
    result = bot(tmp_path, "chat", DATABASE_URL="bot.db")
    assert_clean_failure(
        result, status=2, first="DATABASE_URL: 'bot.db' is not a URL", contains="sqlite:///bot.db"
    )


def test_an_unwritable_database_location_is_a_configuration_error(tmp_path: Path) -> None:
    # /proc refuses new files even to root, so this holds whoever runs the tests.
    result = bot(tmp_path, "budget", "list", DATABASE_URL="sqlite:////proc/bot.db")
    assert_clean_failure(
        result, status=2, first="DATABASE_URL: can't write the database", contains="writable"
    )

    (tmp_path / "a-file").write_text("")
    result = bot(tmp_path, "chat", DATABASE_URL=f"sqlite:///{tmp_path}/a-file/bot.db")
    assert_clean_failure(result, status=2, first="DATABASE_URL:", contains="is a file, not a folder")


def test_a_corrupt_database_file_is_a_runtime_error(tmp_path: Path) -> None:
    (tmp_path / "bot.db").write_bytes(b"these are not the bytes of a SQLite database" * 100)
    result = bot(tmp_path, "chat", stdin="/budget\n")
    assert_clean_failure(
        result, status=1, first="DATABASE_URL:", contains="not a SQLite database, or it is damaged"
    )
    assert (tmp_path / "bot.db").read_bytes().startswith(b"these are not"), "left as it was"


def test_a_good_database_passes_the_check_and_keeps_its_data(tmp_path: Path) -> None:
    assert run_bot(tmp_path, "budget", "set", "discord:1", "7").returncode == 0
    shown = run_bot(tmp_path, "budget", "show", "discord:1")
    assert shown.returncode == 0, shown.stderr
    assert "Limit: $7.00" in shown.stdout
    with contextlib.closing(sqlite3.connect(tmp_path / "bot.db")) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


# --- --out ----------------------------------------------------------------------------------------


def test_chat_out_pointing_at_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "media").write_text("not a folder")
    result = bot(tmp_path, "chat", "--out", "media", stdin="/imagine a fox\n")
    assert_clean_failure(result, status=2, first="--out: media is a file")


# --- platforms ------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def refusing_discord() -> AsyncIterator[str]:
    """A Discord REST API that answers every call 401, as discord.com does for a garbage token."""

    async def unauthorized(request: web.Request) -> web.Response:
        return web.json_response({"message": "401: Unauthorized", "code": 0}, status=401)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", unauthorized)
    async with serving(app) as port:
        yield f"http://127.0.0.1:{port}/api/v10"


async def run_async(tmp_path: Path, *args: str, **env: str) -> Exited:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        cwd=tmp_path,
        env=clean_env(tmp_path, **env),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        _, stderr = await process.communicate()
    assert process.returncode is not None
    return Exited(process.returncode, stderr.decode())


async def test_a_garbage_discord_token_names_the_variable(tmp_path: Path) -> None:
    async with refusing_discord() as api_url:
        result = await run_async(tmp_path, "run", DISCORD_TOKEN="garbage", DISCORD_API_URL=api_url)

    message = assert_clean_failure(result, status=2, first="DISCORD_TOKEN: Discord refused the token")
    assert "Reset Token" in message
    assert "garbage" not in result.stderr


def dns_fails_fast() -> bool:
    try:
        socket.getaddrinfo("discord.invalid", 443)
    except socket.gaierror:
        return True
    return False


needs_failing_dns = pytest.mark.skipif(not dns_fails_fast(), reason="this resolver answers .invalid names")


@needs_failing_dns
async def test_discord_unreachable_by_dns_is_a_runtime_error(tmp_path: Path) -> None:
    result = await run_async(
        tmp_path, "run", DISCORD_TOKEN="abc.def.ghi", DISCORD_API_URL="https://discord.invalid/api/v10"
    )
    assert_clean_failure(
        result, status=1, first="DISCORD_API_URL: can't reach discord.invalid", contains="DNS"
    )


@needs_failing_dns
async def test_slack_unreachable_by_dns_is_a_runtime_error(tmp_path: Path) -> None:
    result = await run_async(
        tmp_path,
        "run",
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_APP_TOKEN=APP_TOKEN,
        SLACK_API_URL="https://slack.invalid/api/",
    )
    assert_clean_failure(result, status=1, first="SLACK_API_URL: can't reach slack.invalid", contains="DNS")


@needs_failing_dns
async def test_log_level_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = await run_async(
        tmp_path,
        "run",
        DISCORD_TOKEN="abc.def.ghi",
        DISCORD_API_URL="https://discord.invalid/api/v10",
        LOG_LEVEL="DEBUG",
    )
    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert result.stderr.rstrip().splitlines()[-2].startswith("DISCORD_API_URL: can't reach discord.invalid")


def test_an_unexpected_error_is_one_line_with_a_hint(capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(_env_file=None, openai_api_key="sk-secret-value-123")  # type: ignore[call-arg]
    with pytest.raises(RuntimeError) as raised:
        raise RuntimeError("the widget broke near sk-secret-value-123")
    assert report_failure(raised.value, settings, command="chat") == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "python -m bot chat stopped: RuntimeError: the widget broke near [redacted]",
        "  Run it again with LOG_LEVEL=DEBUG to see the traceback.",
    ]

    debug = Settings(_env_file=None, log_level="DEBUG", openai_api_key="sk-secret-value-123")  # type: ignore[call-arg]
    with pytest.raises(RuntimeError) as raised:
        raise RuntimeError("the widget broke near sk-secret-value-123")
    assert report_failure(raised.value, debug, command="chat") == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and "sk-secret-value-123" not in err


# --- quiet start-up -------------------------------------------------------------------------------


async def test_run_starts_without_voice_or_unused_token_warnings(tmp_path: Path) -> None:
    async with FakeDiscord() as discord_fake, FakeSlack() as slack_fake:
        env = clean_env(
            tmp_path,
            DISCORD_TOKEN=discord_fake.token,
            DISCORD_API_URL=discord_fake.api_url,
            DISCORD_GATEWAY_URL=discord_fake.gateway_url,
            SLACK_BOT_TOKEN=BOT_TOKEN,  # in the environment, where slack_bolt reads it too
            SLACK_APP_TOKEN=APP_TOKEN,
            SLACK_API_URL=slack_fake.api_url,
            LOG_LEVEL="INFO",
        )
        log_path = tmp_path / "bot.log"
        with log_path.open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "run", cwd=tmp_path, env=env, stdout=log, stderr=log
            )
            try:
                await discord_fake.wait_until(
                    lambda: bool(discord_fake.identified) or process.returncode is not None, within=30
                )
                await slack_fake.wait_connected(within=30)
                assert process.returncode is None, log_path.read_text()
            finally:
                if process.returncode is None:
                    process.send_signal(signal.SIGINT)
                    await asyncio.wait_for(process.wait(), timeout=30)
        output = log_path.read_text()
    assert process.returncode == 0, output
    assert "starting discord" in output and "starting slack" in output
    assert "voice will NOT be supported" not in output
    assert "will be unused" not in output
    assert str(REPO) not in output, "no traceback"


async def test_slack_refusing_connections_is_a_runtime_error(tmp_path: Path) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    result = await run_async(
        tmp_path,
        "run",
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_APP_TOKEN=APP_TOKEN,
        SLACK_API_URL=f"http://127.0.0.1:{port}/api/",
    )
    assert_clean_failure(
        result,
        status=1,
        first="SLACK_API_URL: can't reach 127.0.0.1: the connection failed",
        contains="network",
    )
