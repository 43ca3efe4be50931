"""Setting the Slack app up: the manifest, the start-up rules and ``python -m bot run`` wiring."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

import pytest

from adapters.slack import app_manifest
from bot.cli import UsageError, cmd_run, main
from bot.platforms import platform_starters
from bot.settings import Settings, SettingsError, load_settings
from tests.fakes.fake_slack import APP_TOKEN, BOT_TOKEN, GENERAL, SIGNING_SECRET, FakeSlack

SLACK_VARIABLES = (
    "SLACK_BOT_TOKEN",
    "SLACK_APP_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_FOLLOW_UPS",
    "DISCORD_TOKEN",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SLACK_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_the_manifest_asks_for_exactly_what_the_adapter_uses() -> None:
    manifest = app_manifest()

    assert manifest["oauth_config"]["scopes"]["bot"] == [
        "app_mentions:read",
        "chat:write",
        "commands",
        "files:write",
        "users:read",
        "channels:history",
        "groups:history",
        "files:read",
    ]
    commands = manifest["features"]["slash_commands"]
    assert [command["command"] for command in commands] == [
        "/imagine",
        "/song",
        "/research",
        "/budget",
        "/access",
        "/help",
        "/summary",
        "/forget",
    ]
    assert all("url" not in command for command in commands)
    # Only the commands naming members or channels get them as ids (<@U123|name>).
    assert [command["command"] for command in commands if command["should_escape"]] == ["/budget", "/access"]
    forget = commands[-1]
    assert forget["usage_hint"] == "[all]" and "`" not in forget["description"]
    assert commands[0]["usage_hint"] == "PROMPT [--ar 16:9] [--seed 42]"
    assert manifest["settings"]["event_subscriptions"] == {
        "bot_events": ["app_mention", "message.channels", "message.groups"]
    }
    assert manifest["settings"]["socket_mode_enabled"] is True
    # Buttons under images and the Edit dialog come over the socket too.
    assert manifest["settings"]["interactivity"] == {"is_enabled": True}


def test_with_attachments_off_the_manifest_reads_no_files(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "files:read" not in app_manifest(attachments=False)["oauth_config"]["scopes"]["bot"]
    monkeypatch.setenv("ATTACHMENTS", "off")

    assert main(["slack-manifest"]) == 0

    printed = json.loads(capsys.readouterr().out)
    assert "files:read" not in printed["oauth_config"]["scopes"]["bot"]
    assert "files:write" in printed["oauth_config"]["scopes"]["bot"]


def test_in_mention_mode_the_manifest_leaves_out_channel_messages() -> None:
    manifest = app_manifest(follow_ups="mention")

    assert not {"channels:history", "groups:history"} & set(manifest["oauth_config"]["scopes"]["bot"])
    assert manifest["settings"]["event_subscriptions"] == {"bot_events": ["app_mention"]}
    assert [command["command"] for command in manifest["features"]["slash_commands"]][-2:] == [
        "/summary",
        "/forget",
    ]


def test_the_http_mode_manifest_points_events_and_commands_at_the_server() -> None:
    manifest = app_manifest(name="Atelier", request_url="https://bot.example.com/")

    url = "https://bot.example.com/slack/events"
    assert manifest["settings"]["socket_mode_enabled"] is False
    assert manifest["settings"]["event_subscriptions"]["request_url"] == url
    assert {command["url"] for command in manifest["features"]["slash_commands"]} == {url}
    assert manifest["settings"]["interactivity"] == {"is_enabled": True, "request_url": url}
    assert manifest["display_information"]["name"] == "Atelier"


def test_the_cli_prints_the_manifest_as_json(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DEMO_PROVIDERS", "true")
    assert main(["slack-manifest", "--request-url", "https://bot.example.com"]) == 0

    printed = json.loads(capsys.readouterr().out)
    assert printed == app_manifest(request_url="https://bot.example.com")


def test_the_cli_manifest_follows_slack_follow_ups(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DEMO_PROVIDERS", "true")
    monkeypatch.setenv("SLACK_FOLLOW_UPS", "mention")
    assert main(["slack-manifest"]) == 0
    assert json.loads(capsys.readouterr().out) == app_manifest(follow_ups="mention")

    monkeypatch.setenv("SLACK_FOLLOW_UPS", "always")
    assert main(["slack-manifest"]) != 0
    assert "SLACK_FOLLOW_UPS" in capsys.readouterr().err


def test_the_cli_manifest_leaves_out_the_commands_of_services_that_are_off(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def offered() -> list[str]:
        assert main(["slack-manifest"]) == 0
        return [
            command["command"]
            for command in json.loads(capsys.readouterr().out)["features"]["slash_commands"]
        ]

    assert offered() == ["/budget", "/access", "/help", "/forget"]
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert offered() == ["/research", "/budget", "/access", "/help", "/summary", "/forget"]
    monkeypatch.setenv("IMAGE_PROVIDER", "demo")
    assert offered() == ["/imagine", "/research", "/budget", "/access", "/help", "/summary", "/forget"]


def test_slack_starts_with_a_bot_token_and_either_an_app_token_or_a_signing_secret() -> None:
    assert "slack" not in platform_starters(settings())
    assert "slack" in platform_starters(settings(slack_bot_token=BOT_TOKEN, slack_app_token=APP_TOKEN))
    assert "slack" in platform_starters(
        settings(slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET)
    )
    with pytest.raises(UsageError, match=r"SLACK_APP_TOKEN .*or.* SLACK_SIGNING_SECRET"):
        platform_starters(settings(slack_bot_token=BOT_TOKEN))


async def test_bot_run_serves_slack_in_socket_mode(slack: FakeSlack, tmp_path: Path) -> None:
    configured = settings(
        database_url=f"sqlite:///{tmp_path}/bot.db",
        slack_bot_token=BOT_TOKEN,
        slack_app_token=APP_TOKEN,
        slack_api_url=slack.api_url,
        demo_delay_s=0,
        demo_providers=True,  # no provider keys: without it every service would be off
    )
    run = asyncio.create_task(cmd_run(configured, argparse.Namespace()))
    try:
        await slack.wait_connected()
        payload = slack.mention("hello")
        await slack.send_envelope("events_api", payload)
        await slack.wait_for(
            lambda: any("You said" in reply.text for reply in slack.thread(GENERAL, payload["event"]["ts"]))
        )
    finally:
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
    await slack.wait_for(lambda: slack.open_sockets == 0)  # the connection was closed, not left open


def test_slack_admin_ids_must_be_member_ids() -> None:
    assert settings(slack_admin_ids="U0123ABCD, W0456EFGH").slack.admin_ids == {"U0123ABCD", "W0456EFGH"}
    with pytest.raises(SettingsError, match=r"SLACK_ADMIN_IDS: .*'@alice' is not a Slack member id"):
        load_settings(_env_file=None, slack_admin_ids="U0123ABCD,@alice")


@pytest.mark.parametrize(
    "given",
    [
        "https://bot.example.com",
        "https://bot.example.com/",
        "https://bot.example.com/slack/events",
        "https://bot.example.com/slack/events/",
    ],
)
def test_the_request_url_may_be_the_base_or_the_full_events_url(
    given: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["slack-manifest", "--request-url", given]) == 0

    printed = json.loads(capsys.readouterr().out)
    url = "https://bot.example.com/slack/events"
    assert printed["settings"]["event_subscriptions"]["request_url"] == url
    assert {command["url"] for command in printed["features"]["slash_commands"]} == {url}


def test_a_request_url_behind_a_path_prefix_keeps_it() -> None:
    manifest = app_manifest(request_url="https://example.com/studio")
    assert (
        manifest["settings"]["event_subscriptions"]["request_url"]
        == "https://example.com/studio/slack/events"
    )


@pytest.mark.parametrize(
    "given", ["http://bot.example.com", "bot.example.com", "https://", "https://bot.example.com/?x=1"]
)
def test_the_request_url_must_be_https(given: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["slack-manifest", "--request-url", given]) == 2

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("--request-url: ")
    assert "https://bot.example.com" in captured.err


def test_a_long_name_is_shortened_and_the_operator_told(capsys: pytest.CaptureFixture[str]) -> None:
    name = "The Very Long Name Of Our Studio Bot For Everyone"
    assert main(["slack-manifest", "--name", name]) == 0

    captured = capsys.readouterr()
    assert json.loads(captured.out)["display_information"]["name"] == name[:35]
    assert "--name" in captured.err and repr(name[:35]) in captured.err

    assert main(["slack-manifest", "--name", "Atelier"]) == 0
    assert capsys.readouterr().err == ""
