"""Small helpers for async streams of parts: close them promptly, make one from a single part."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeVar

T = TypeVar("T")


async def single(item: T) -> AsyncIterator[T]:
    yield item


async def close(stream: AsyncIterator[object]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


@asynccontextmanager
async def closing_stream(stream: AsyncIterator[T]) -> AsyncIterator[AsyncIterator[T]]:
    """Close an async generator as soon as its consumer stops, not whenever it is collected,
    so its ``finally`` blocks (refunds, HTTP cleanup) run in order."""
    try:
        yield stream
    finally:
        await close(stream)
