"""The stream reader's server-sent-events framing: data lines joined per event, everything else skipped."""

from __future__ import annotations

from collections.abc import AsyncIterator

from core.providers.openai_text import server_sent_data


async def lines(*texts: str) -> AsyncIterator[str]:
    for text in texts:
        yield text


async def test_each_event_yields_its_data_lines_joined() -> None:
    stream = lines(
        ": keep-alive comment",
        'data: {"a": 1}',
        "",
        "event: message",
        "id: 7",
        'data:{"b":',
        "data:  2}",
        "",
        "",
        "data: [DONE]",
    )
    assert [data async for data in server_sent_data(stream)] == ['{"a": 1}', '{"b":\n 2}', "[DONE]"]


async def test_an_event_without_data_yields_nothing() -> None:
    assert [data async for data in server_sent_data(lines("event: ping", "", ": comment", ""))] == []
