"""Logging set-up: JSON lines (or text) carrying the request id, scope and user; secrets redacted."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime

from core.context import current_request

# Attributes every LogRecord has; anything else was passed with ``extra=`` and is logged as a field.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
REDACTED = "[redacted]"


class RequestContext(logging.Filter):
    """Stamps each record with the request being handled, if any."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = current_request.get()
        if request is not None and not hasattr(record, "request_id"):
            record.request_id = request.id
            record.scope = str(request.scope)
            record.user = request.user
        return True


class Redactor(logging.Filter):
    """Replaces known secret values wherever they appear in a message or its arguments."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = sorted({secret for secret in secrets if len(secret) >= 6}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            record.msg = self.redact(record.getMessage())
            record.args = None
            if record.exc_info and record.exc_info[1] is not None:
                record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
        return True


class StartupNoise(logging.Filter):
    """Demotes library warnings that need no action to DEBUG: discord.py's "voice will NOT be
    supported" (the bot has no voice features) and slack_bolt's "`token` will be unused" (bolt
    reads SLACK_BOT_TOKEN from the environment although the adapter hands it a client)."""

    NOISE = (
        ("discord.client", "voice will NOT be supported"),
        ("slack_bolt", "`token` will be unused"),
    )

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.DEBUG and any(
            record.name.startswith(logger) and text in record.getMessage() for logger, text in self.NOISE
        ):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({key: value for key, value in record.__dict__.items() if key not in _STANDARD})
        if record.exc_info:
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = {key: value for key, value in record.__dict__.items() if key not in _STANDARD}
        if extras:
            text += " " + " ".join(f"{key}={value}" for key, value in extras.items())
        return text


def configure_logging(*, level: str, json_lines: bool, secrets: Iterable[str] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    handler.addFilter(StartupNoise())
    handler.addFilter(RequestContext())
    handler.addFilter(Redactor(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request at INFO, with its full URL: noise on the hot path, and provider
    # URLs (BFL's polling and sample links) carry signatures. Our own lines say what happened.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
