"""What a person is told when a provider answers with an HTTP error or cannot be reached.

A provider's own words (an error body, a failure reason) are never shown to people: a body can quote
the request, and with it a key. Each message here is short and names only the service and the HTTP
status; the provider's text goes into the error's ``detail``, which only the (redacting) logs see.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

import httpx

from core.errors import GenerationError, ModerationError, ProviderUnavailable

if TYPE_CHECKING:
    import openai

MODERATION_CODES = frozenset({"content_filter", "content_policy_violation", "moderation_blocked"})


def http_failure(service: str, response: httpx.Response, *, detail: str = "") -> GenerationError:
    """The error for a provider's non-success answer; ``service`` reads like "image service"."""
    status = response.status_code
    detail = detail or error_reason(response)
    log_detail = f"HTTP {status} from {response.request.url.host}: {detail or response.text[:300]}"
    if status in (401, 403):
        return ProviderUnavailable(
            f"The {service} rejected the bot's credentials (HTTP {status}). "
            "An admin needs to check its API key.",
            detail=log_detail,
        )
    if status == 402:
        return ProviderUnavailable(
            f"The {service} account is out of credits. An admin needs to top it up.", detail=log_detail
        )
    if status == 429:
        return ProviderUnavailable(busy(service, retry_after(response)), detail=log_detail)
    if status >= 500:
        return ProviderUnavailable(
            f"The {service} is having trouble (HTTP {status}). Please try again in a few minutes.",
            detail=log_detail,
        )
    return GenerationError(
        f"The {service} refused the request (HTTP {status}). An admin can find its reason in the bot's logs.",
        detail=log_detail,
    )


def error_reason(response: httpx.Response) -> str:
    """The provider's own explanation in a JSON error body (``message``, ``error`` or ``detail``)."""
    try:
        body = response.json()
    except ValueError:
        return ""
    reason = (
        (body.get("message") or body.get("error") or body.get("detail")) if isinstance(body, dict) else None
    )
    return str(reason) if reason else ""


def sentence(text: str) -> str:
    """A provider's reason, trimmed and ending like a sentence, for the logs."""
    text = " ".join(text.split())[:200] or "no reason given"
    return text if text.endswith((".", "!", "?")) else text + "."


def busy(service: str, wait_s: float | None) -> str:
    """Too many requests: say when to try again, when the provider told us."""
    when = "in a minute"
    if wait_s:
        seconds = round(wait_s)
        when = f"in {seconds} s" if seconds < 120 else f"in {round(seconds / 60)} minutes"
    return f"The {service} is busy right now (too many requests). Please try again {when}."


def retry_after(response: httpx.Response) -> float | None:
    """Seconds the server asked us to wait (``Retry-After`` as seconds or an HTTP date), if any."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def unreachable(service: str, error: Exception) -> ProviderUnavailable:
    """A request that got no answer at all (connection refused, timed out, cut)."""
    return ProviderUnavailable(
        f"I couldn't reach the {service} ({type(error).__name__}). Please try again in a few minutes.",
        detail=repr(error),
    )


def submit_lost(service: str, error: Exception) -> ProviderUnavailable:
    """A paid submission whose answer never arrived: it may have been accepted, so it is not resent."""
    return ProviderUnavailable(
        f"The {service} didn't answer the request ({type(error).__name__}). I haven't resent it, "
        "so nothing is running twice; please try again in a few minutes.",
        detail=repr(error),
    )


def openai_failure(service: str, error: openai.OpenAIError) -> GenerationError:
    """The error for an exception raised by the openai SDK (after its own retries)."""
    import openai  # loaded already by whoever raised the error; the HTTP-only providers never need it

    if isinstance(error, openai.APIStatusError):
        if error.code in MODERATION_CODES:
            return ModerationError(
                f"The {service} declined this request on content grounds.", detail=error.message
            )
        if error.status_code == 429 and error.code == "insufficient_quota":
            return ProviderUnavailable(
                f"The {service} account is out of credits. An admin needs to top it up.", detail=error.message
            )
        return http_failure(service, error.response, detail=error.message)
    if isinstance(error, openai.APIConnectionError):
        # Only a connection that never opened is certain to have sent nothing (see bot/shared_http.py).
        never_sent = isinstance(error.__cause__, httpx.ConnectError)
        return unreachable(service, error) if never_sent else submit_lost(service, error)
    return GenerationError(f"The {service} reported an error.", detail=repr(error))
