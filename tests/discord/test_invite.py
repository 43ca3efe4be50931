"""``python -m bot discord-invite``: the OAuth2 URL with exactly the scopes and permissions needed."""

from __future__ import annotations

import base64
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from adapters.discord import application_id_from_token, invite_url
from bot.cli import main

APP_ID = "1234567890123456789"
TOKEN = base64.b64encode(APP_ID.encode()).decode().rstrip("=") + ".GxYz12.not-a-real-secret"
# View Channel, Send Messages, Send Messages in Threads, Embed Links, Attach Files,
# Read Message History, Use Application Commands: bits 10, 11, 38, 14, 15, 16, 31.
EXPECTED_PERMISSIONS = sum(1 << bit for bit in (10, 11, 38, 14, 15, 16, 31))


def test_application_id_is_the_tokens_first_segment() -> None:
    assert application_id_from_token(TOKEN) == APP_ID


def test_a_token_without_an_id_is_refused() -> None:
    with pytest.raises(ValueError, match="DISCORD_APPLICATION_ID"):
        application_id_from_token("not-base64-digits.x.y")


def test_invite_url_has_the_scopes_and_exact_permissions() -> None:
    url = urlsplit(invite_url(APP_ID))
    assert (url.scheme, url.netloc, url.path) == ("https", "discord.com", "/oauth2/authorize")
    query = parse_qs(url.query)
    assert query["client_id"] == [APP_ID]
    assert query["scope"] == ["bot applications.commands"]
    assert query["permissions"] == [str(EXPECTED_PERMISSIONS)]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    monkeypatch.chdir(tmp_path)  # no .env from the working tree
    for name in ("DISCORD_TOKEN", "DISCORD_APPLICATION_ID"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_cli_prints_the_invite_from_the_token(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("DISCORD_TOKEN", TOKEN)
    assert main(["discord-invite"]) == 0
    out = capsys.readouterr()
    assert out.out.strip() == invite_url(APP_ID)
    assert TOKEN not in out.out + out.err


def test_cli_prefers_an_explicit_application_id(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("DISCORD_TOKEN", TOKEN)
    clean_env.setenv("DISCORD_APPLICATION_ID", "42")
    assert main(["discord-invite"]) == 0
    assert capsys.readouterr().out.strip() == invite_url("42")


def test_cli_without_token_or_id_explains(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["discord-invite"]) == 2
    assert "Set DISCORD_TOKEN (or DISCORD_APPLICATION_ID)" in capsys.readouterr().err
