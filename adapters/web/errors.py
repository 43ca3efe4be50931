"""Errors in OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, and the HTTP status
each of the core's failure reasons becomes."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from core.parts import Failure


@dataclass(frozen=True, slots=True)
class Kind:
    status: int
    type: str
    code: str | None


INVALID = Kind(400, "invalid_request_error", "invalid_request_error")
SERVER = Kind(500, "server_error", "server_error")

BY_REASON: dict[str, Kind] = {
    "invalid": INVALID,
    "moderated": Kind(400, "invalid_request_error", "content_policy_violation"),
    "unavailable": Kind(400, "invalid_request_error", "service_not_configured"),
    "denied": Kind(403, "permission_denied", "permission_denied"),
    "forbidden": Kind(403, "permission_denied", "permission_denied"),
    "refused": Kind(429, "insufficient_quota", "insufficient_quota"),
    "rate_limited": Kind(429, "requests", "rate_limit_exceeded"),
    "failed": Kind(502, "server_error", "provider_error"),
    "busy": Kind(503, "server_error", "server_busy"),
    "paused": Kind(503, "server_error", "service_paused"),
    "suspended": Kind(503, "server_error", "restarting"),
}
"""The core's ``Failure.reason`` → OpenAI's status, type and code. Work the provider never did is
refunded by the core before the failure reaches us, so none of these is charged."""


@dataclass
class ApiError(Exception):
    """An error response: raised by routes, rendered by the app's handler."""

    kind: Kind
    message: str
    param: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.kind.type,
                "param": self.param,
                "code": self.kind.code,
            }
        }

    def sse(self) -> str:
        """The error as a server-sent event, for a stream that already started (the openai SDK
        raises ``APIError`` on an event carrying ``error``)."""
        return f"data: {json.dumps(self.body())}\n\n"


def invalid(message: str, *, param: str | None = None) -> ApiError:
    return ApiError(INVALID, message, param)


def invalid_key() -> ApiError:
    return ApiError(
        Kind(401, "invalid_request_error", "invalid_api_key"),
        "Invalid API key: send `Authorization: Bearer sk-studio-…` with a key from "
        "`python -m bot api-key create` that has not been revoked.",
    )


def model_not_found(model: str) -> ApiError:
    return ApiError(
        Kind(404, "invalid_request_error", "model_not_found"),
        f"The model {model!r} does not exist; GET /v1/models lists the ones served here.",
        "model",
    )


def not_found(message: str) -> ApiError:
    return ApiError(Kind(404, "invalid_request_error", "not_found"), message)


def from_failure(failure: Failure, *, scope: str) -> ApiError:
    """The error response for a request the core ended with ``failure``."""
    kind = BY_REASON.get(failure.reason, SERVER)
    message = failure.message
    headers: dict[str, str] = {}
    if failure.reason == "refused":
        message = f"Budget of {scope}, which this key pays from: {message}"
    if failure.reason == "rate_limited" and failure.retry_after_s is not None:
        headers["Retry-After"] = str(max(1, math.ceil(failure.retry_after_s)))
    return ApiError(kind, message, None, headers)
