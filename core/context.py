"""The request being handled, for log lines written anywhere below it (providers, adapters)."""

from __future__ import annotations

from contextvars import ContextVar

from core.parts import Request

current_request: ContextVar[Request | None] = ContextVar("current_request", default=None)
