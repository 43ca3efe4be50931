"""Provider HTTP on the shared client: paid submissions sent exactly once; polls and downloads
(idempotent) retried with backoff and jitter, honouring ``Retry-After``, through the guards of
``core.providers.fetch`` (trusted hosts, redirects, size caps, media types)."""

from __future__ import annotations

import logging
import mimetypes
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from core.clock import Clock
from core.errors import GenerationError
from core.providers.failures import http_failure, retry_after, submit_lost, unreachable
from core.providers.fetch import MAX_ANSWER_BYTES, MediaKind, UrlGuard, fetch, sniff

log = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
GONE_STATUSES = frozenset({403, 404, 410})
"""What a signed media URL answers once it has expired or never existed."""

_jitter = random.Random()
_Shape = TypeVar("_Shape", dict[str, Any], list[Any])


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How often and how patiently an idempotent call is repeated."""

    attempts: int = 4
    base_s: float = 0.5
    cap_s: float = 8.0
    max_retry_after_s: float = 60.0
    """A longer ``Retry-After`` is not worth waiting for: the last answer is returned instead."""

    def backoff(self, retry: int) -> float:
        """Exponential backoff with equal jitter: half of the step fixed, half random."""
        step = min(self.cap_s, self.base_s * 2.0**retry)
        return step / 2 + _jitter.uniform(0, step / 2)


async def get(
    http: httpx.AsyncClient,
    url: str,
    *,
    clock: Clock,
    policy: RetryPolicy,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
    deadline: float | None = None,
    guard: UrlGuard | None = None,
    max_bytes: int = MAX_ANSWER_BYTES,
    what: str = "answer",
) -> httpx.Response:
    """GET ``url``, retrying transport errors and retryable statuses (429, 5xx) with backoff.

    Returns the last response, whatever its status, its body read (at most ``max_bytes``); raises
    the last ``httpx.TransportError`` when no attempt got an answer. Never sleeps past ``deadline``
    (a ``clock.now()`` value). A provider-given URL needs a ``guard`` (see ``fetch``); a refused
    URL or an oversized body is raised at once, never retried.
    """
    for retry in range(policy.attempts):
        failure: httpx.TransportError | None = None
        try:
            response = await fetch(
                http, url, guard=guard, max_bytes=max_bytes, what=what, headers=headers, params=params
            )
        except httpx.TransportError as error:
            failure = error
            wait = policy.backoff(retry)
        else:
            if response.status_code not in RETRYABLE_STATUSES:
                return response
            hinted = retry_after(response)
            if hinted is not None and hinted > policy.max_retry_after_s:
                return response
            wait = hinted if hinted is not None else policy.backoff(retry)
        last = retry == policy.attempts - 1
        if last or (deadline is not None and clock.now() + wait > deadline):
            break
        log.info("GET %s: %s; retrying in %.1f s", _safe(url), failure or response.status_code, wait)
        await clock.sleep(wait)
    if failure is not None:
        raise failure
    return response


async def submit_once(
    http: httpx.AsyncClient,
    url: str,
    *,
    body: Mapping[str, object],
    headers: Mapping[str, str],
    service: str,
) -> httpx.Response:
    """POST a paid submission exactly once. Any failure, including a lost answer, is raised as the
    person's error and never resent: the provider may have accepted the work."""
    try:
        # Never redirected: a 307 would resend the paid body, and its key, to wherever it points.
        response = await http.post(url, json=body, headers=headers, follow_redirects=False)
    except httpx.TimeoutException as error:
        raise submit_lost(service, error) from error
    except httpx.TransportError as error:
        raise unreachable(service, error) from error
    if not response.is_success:
        raise http_failure(service, response)
    return response


async def poll(
    http: httpx.AsyncClient,
    url: str,
    *,
    clock: Clock,
    policy: RetryPolicy,
    service: str,
    deadline: float,
    guard: UrlGuard,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
) -> httpx.Response:
    """A status check (``get`` with retries) whose final failure is raised as the person's error.
    ``headers`` (credentials) go only to the provider's own origin."""
    try:
        response = await get(
            http,
            url,
            clock=clock,
            policy=policy,
            headers=headers,
            params=params,
            deadline=deadline,
            guard=guard,
        )
    except httpx.TransportError as error:
        raise unreachable(service, error) from error
    if response.status_code != 200:
        raise http_failure(service, response)
    return response


@dataclass(frozen=True, slots=True)
class Download:
    data: bytes
    mime_type: str


async def download(
    http: httpx.AsyncClient,
    url: str,
    *,
    clock: Clock,
    policy: RetryPolicy,
    service: str,
    what: str,
    guard: UrlGuard,
    kind: MediaKind,
) -> Download:
    """Fetch finished media from a (usually signed, short-lived) URL, with retries, at most
    ``guard.policy.max_bytes`` of it, and only if its magic bytes show media of ``kind``.

    Raises ``GenerationError`` naming ``what`` (e.g. "image") when the link is gone or empty, is
    refused, is too large, or is not an image or audio as expected; nothing is kept then.
    """
    try:
        response = await get(
            http, url, clock=clock, policy=policy, guard=guard, max_bytes=guard.policy.max_bytes, what=what
        )
    except httpx.TransportError as error:
        raise unreachable(service, error) from error
    if response.status_code in GONE_STATUSES:
        raise GenerationError(
            f"The finished {what} couldn't be downloaded: the {service}'s link had expired or was missing.",
            detail=f"GET {_safe(url)} answered {response.status_code}",
        )
    if response.status_code != 200:
        raise http_failure(service, response)
    if not response.content:
        raise GenerationError(
            f"The {service} delivered an empty {what}.", detail=f"GET {_safe(url)}: no body"
        )
    mime_type = sniff(response.content, kind)
    if mime_type is None:
        declared = response.headers.get("content-type", "")
        raise GenerationError(
            f"The {service} sent something that isn't {'an image' if kind == 'image' else 'audio'} "
            f"as the {what}, so I didn't post it.",
            detail=f"GET {_safe(url)}: {declared!r}, starting {response.content[:16]!r}",
        )
    return Download(response.content, mime_type)


def extension(mime_type: str, fallback: str) -> str:
    """A filename extension for a MIME type, e.g. ``audio/mpeg`` → ``mp3``."""
    known = {
        "audio/mpeg": "mp3",
        "audio/mp3": "mp3",
        "audio/wav": "wav",
        "audio/ogg": "ogg",
        "audio/mp4": "m4a",
        "image/jpeg": "jpg",
        "image/png": "png",
        "image/webp": "webp",
    }
    guessed = known.get(mime_type) or (mimetypes.guess_extension(mime_type) or "").lstrip(".")
    return guessed or fallback


def read_json(response: httpx.Response, *, service: str, shape: type[_Shape]) -> _Shape:
    """The response body as JSON of ``shape`` (dict or list), or a ``GenerationError`` saying the
    reply was unreadable."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, shape):
        raise GenerationError(
            f"The {service} sent a reply I couldn't read.",
            detail=f"{response.request.method} {_safe(str(response.request.url))}: "
            f"expected a JSON {shape.__name__}: {response.text[:200]!r}",
        )
    return body


def _safe(url: str) -> str:
    """A URL without its query string (signed URLs carry credentials there) for the logs."""
    return str(httpx.URL(url).copy_with(query=None))
