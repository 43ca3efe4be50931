"""Structured logs: one JSON object per line, the request id follows the request, secrets redacted."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from bot.logs import REDACTED, configure_logging
from core.engine import Engine
from core.parts import Intent, Request, Scope


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def lines(err: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in err.splitlines() if line.strip()]


async def test_a_request_logs_its_id_scope_user_service_latency_and_cost(
    engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(level="INFO", json_lines=True)
    request = Request(scope=Scope("discord", "42"), user="ann", text="a fox", intent=Intent.IMAGE)
    async for _ in engine.handle(request):
        pass
    [done] = [entry for entry in lines(capsys.readouterr().err) if entry["message"] == "request done"]
    assert done["request_id"] == request.id
    assert (done["scope"], done["user"], done["service"], done["status"]) == (
        "discord:42",
        "ann",
        "image",
        "done",
    )
    assert done["cost_micros"] == 40_000 and done["reserved_micros"] == 40_000
    assert isinstance(done["latency_ms"], int)
    assert done["level"] == "INFO"


def test_secrets_are_redacted_in_messages_arguments_and_tracebacks(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(level="INFO", json_lines=True, secrets=["sk-live-abcdef123456", "short"])
    log = logging.getLogger("test")
    log.info("calling with key %s", "sk-live-abcdef123456")
    try:
        raise RuntimeError("401 for key sk-live-abcdef123456")
    except RuntimeError:
        log.exception("provider failed")
    err = capsys.readouterr().err
    assert "sk-live-abcdef123456" not in err
    entries = lines(err)
    assert entries[0]["message"] == f"calling with key {REDACTED}"
    assert REDACTED in str(entries[1]["exception"])


def test_text_format_for_people(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(level="WARNING", json_lines=False)
    logging.getLogger("test").warning("careful", extra={"service": "song"})
    logging.getLogger("test").info("hidden")
    err = capsys.readouterr().err
    assert "WARNING test: careful service=song" in err
    assert "hidden" not in err
