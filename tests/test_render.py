"""The streaming renderer against a recording surface and a fake clock: cadence, splits, fences, media."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import pytest

from core.pacing import Pace, TokenBucket
from core.parts import Audio, Failure, Image, Media, Part, Status, TextDelta
from core.render import MessageState, View, render
from core.splitting import split_text
from tests.clock import FakeClock, settle


@dataclass
class Call:
    at: float
    kind: str  # post | edit | upload
    view: View | None = None
    media: Media | None = None
    replaces_progress: bool = False


@dataclass
class RecordingSurface:
    clock: FakeClock
    max_chars: int = 200
    pace: Pace = field(default_factory=lambda: Pace(burst=2, per_second=1.0))
    calls: list[Call] = field(default_factory=list)
    delay: float = 0.0

    async def post(self, view: View) -> None:
        self.calls.append(Call(self.clock.now(), "post", view))

    async def edit(self, view: View) -> None:
        if self.delay:
            await self.clock.sleep(self.delay)
        self.calls.append(Call(self.clock.now(), "edit", view))

    async def upload(self, media: Media, *, replaces_progress: bool) -> None:
        self.calls.append(Call(self.clock.now(), "upload", media=media, replaces_progress=replaces_progress))

    def messages(self) -> list[str]:
        """Final text of each message, in order."""
        texts: list[str] = []
        for call in self.calls:
            if call.kind == "post" and call.view:
                texts.append(call.view.text)
            elif call.kind == "edit" and call.view:
                texts[-1] = call.view.text
        return texts


class Script:
    """Parts fed by the test, one at a time, between clock advances."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Part | None] = asyncio.Queue()

    async def parts(self) -> AsyncIterator[Part]:
        while (part := await self.queue.get()) is not None:
            yield part

    async def send(self, *parts: Part | None) -> None:
        for part in parts:
            self.queue.put_nowait(part)
        await settle()


async def start(surface: RecordingSurface, script: Script, clock: FakeClock) -> asyncio.Task[None]:
    task = asyncio.create_task(render(script.parts(), surface, clock=clock))
    await settle()
    return task


async def from_parts(parts: Sequence[Part], surface: RecordingSurface) -> None:
    async def stream() -> AsyncIterator[Part]:
        for part in parts:
            yield part

    # Virtual time runs on until the answer is out: edits may wait for the bucket to refill.
    task = asyncio.create_task(render(stream(), surface, clock=surface.clock))
    while not task.done():
        await surface.clock.advance(0.1)
    await task


async def test_edits_keep_the_rate_and_the_final_edit_does_not_wait() -> None:
    clock = FakeClock()
    surface = RecordingSurface(clock)  # 2 tokens, 1 a second, one kept for the final edit
    script = Script()
    task = await start(surface, script, clock)

    await script.send(TextDelta("Hello"))
    assert [(call.kind, call.at) for call in surface.calls] == [("post", 0.0)]
    assert surface.calls[0].view == View("Hello", MessageState.STREAMING)

    for _ in range(10):  # ten deltas within 0.5 s
        await clock.advance(0.05)
        await script.send(TextDelta(" there"))
    assert len(surface.calls) == 1  # the post spent the spare token: later text waits for a refill
    await clock.advance(0.49)
    assert len(surface.calls) == 1
    await clock.advance(0.01)
    assert [(call.kind, call.at) for call in surface.calls[1:]] == [("edit", pytest.approx(1.0))]
    assert surface.calls[1].view == View("Hello" + " there" * 10, MessageState.STREAMING)

    for _ in range(30):
        await clock.advance(0.1)
        await script.send(TextDelta("."))
    ended_at = clock.now()
    await script.send(None)
    await task

    streaming_times = [call.at for call in surface.calls[1:-1]]
    assert streaming_times == pytest.approx([1.0, 2.0, 3.0, 4.0])
    final = surface.calls[-1]
    assert final.kind == "edit" and final.view is not None
    assert final.view == View("Hello" + " there" * 10 + "." * 30, MessageState.DONE)
    assert final.at == ended_at, "the final edit goes as soon as the stream ends, from the kept token"


async def test_a_burst_of_edits_goes_out_at_once_when_the_bucket_is_full() -> None:
    clock = FakeClock()
    surface = RecordingSurface(clock, pace=Pace(burst=4, per_second=1.0))
    script = Script()
    task = await start(surface, script, clock)
    await script.send(TextDelta("a"))  # the post: 4 → 3 tokens
    for letter in "bcd":
        await clock.advance(0.01)
        await script.send(TextDelta(letter))
    # Two routine edits at once, then the last token is kept: "d" waits for a refill.
    assert [(call.kind, call.at) for call in surface.calls] == [
        ("post", 0.0),
        ("edit", 0.01),
        ("edit", 0.02),
    ]
    await script.send(None)
    await task
    assert [(call.kind, call.at) for call in surface.calls[3:]] == [("edit", 0.03)]
    assert surface.messages() == ["abcd"]


async def test_first_text_replaces_a_progress_line_at_once_then_edits_wait_for_a_token() -> None:
    clock = FakeClock()
    surface = RecordingSurface(clock)
    script = Script()
    task = await start(surface, script, clock)

    await script.send(Status("Queued"))
    await clock.advance(0.1)
    await script.send(Status("Thinking"))  # routine: waits for a token beyond the kept one
    await clock.advance(0.1)
    await script.send(TextDelta("Hello"))  # urgent: takes the kept token at once
    assert [(call.kind, call.at, call.view) for call in surface.calls] == [
        ("post", 0.0, View("", MessageState.STREAMING, "Queued")),
        ("edit", 0.2, View("Hello", MessageState.STREAMING)),
    ]

    await clock.advance(0.1)
    await script.send(TextDelta(" world"))
    await clock.advance(1.6)
    assert len(surface.calls) == 2  # a routine edit waits until a token is left over for the last one
    await clock.advance(0.1)
    assert [(call.kind, call.at) for call in surface.calls[2:]] == [("edit", pytest.approx(2.0))]
    await script.send(None)
    await task
    assert surface.messages() == ["Hello world"]


async def test_the_final_edit_lands_even_without_new_text() -> None:
    clock = FakeClock()
    surface = RecordingSurface(clock)
    await from_parts([TextDelta("one shot")], surface)
    assert [(call.kind, call.view) for call in surface.calls] == [
        ("post", View("one shot", MessageState.STREAMING)),
        ("edit", View("one shot", MessageState.DONE)),
    ]


async def test_a_slow_edit_never_loses_text() -> None:
    clock = FakeClock()
    surface = RecordingSurface(clock, delay=5.0)  # every edit is stuck behind a 5 s rate limit
    script = Script()
    task = await start(surface, script, clock)
    await script.send(TextDelta("a"))
    for letter in "bcdefgh":
        await clock.advance(1.0)
        await script.send(TextDelta(letter))
    await script.send(None)
    await clock.advance(30)
    await task
    assert surface.messages() == ["abcdefgh"]
    assert surface.calls[-1].view is not None and surface.calls[-1].view.state is MessageState.DONE


async def test_long_text_is_split_at_paragraphs_into_chained_messages() -> None:
    clock = FakeClock()
    surface = RecordingSurface(clock, max_chars=100)
    paragraphs = [f"Paragraph {n} " + "word " * 12 for n in range(6)]
    text = "\n\n".join(paragraph.strip() for paragraph in paragraphs)
    await from_parts([TextDelta(piece) for piece in text.split(" ")], surface)
    # Deltas lost their spaces above; rebuild the way the renderer saw them.
    seen = "".join(text.split(" "))
    messages = surface.messages()
    assert len(messages) > 1
    assert all(len(message) <= 100 for message in messages)
    assert "".join(message.replace("\n\n", "") for message in messages) == seen.replace("\n\n", "")
    assert all(call.view.state is not MessageState.STREAMING for call in surface.calls[-1:] if call.view)


async def test_split_prefers_paragraph_then_line_then_space() -> None:
    text = "first paragraph here\n\nsecond line one\nsecond line two words words"
    head, tail = split_text(text, 40)
    assert (head, tail) == ("first paragraph here", "second line one\nsecond line two words words")
    head, tail = split_text("aaaa bbbb\ncccc dddd eeee", 16)
    assert (head, tail) == ("aaaa bbbb", "cccc dddd eeee")
    head, tail = split_text("aaaa bbbb cccc dddd", 12)
    assert (head, tail) == ("aaaa bbbb", "cccc dddd")
    assert split_text("short", 10) == ("short", "")


def test_split_never_cuts_inside_a_code_fence() -> None:
    text = "Intro line.\n\n```python\nx = 1\n\ny = 2\n```\n\nAfter the code."
    head, tail = split_text(text, 36)  # the window ends inside the fence, after a blank line in it
    assert head == "Intro line."
    assert tail.startswith("```python")


def test_a_fence_longer_than_a_message_is_closed_and_reopened() -> None:
    code = "\n".join(f"line_{n} = {n}" for n in range(30))
    text = f"```python\n{code}\n```"
    head, tail = split_text(text, 120)
    assert len(head) <= 120
    assert head.startswith("```python\n") and head.endswith("\n```")
    assert tail.startswith("```python\n")
    rebuilt = head.removesuffix("\n```") + "\n" + tail.removeprefix("```python\n")
    assert rebuilt == text


async def test_status_is_shown_and_replaced_by_media() -> None:
    clock = FakeClock()
    surface = RecordingSurface(clock)
    image = Image(data=b"png", filename="a.png", mime_type="image/png", prompt="a")
    await from_parts([Status("Queued"), Status("Generating, 3 s"), image], surface)
    kinds = [call.kind for call in surface.calls]
    assert kinds[0] == "post"
    assert surface.calls[0].view == View("", MessageState.STREAMING, "Queued")
    upload = surface.calls[-1]
    assert upload.kind == "upload" and upload.media is image and upload.replaces_progress


async def test_media_closes_the_current_text_message() -> None:
    clock = FakeClock()
    surface = RecordingSurface(clock)
    audio = Audio(data=b"wav", filename="s.wav", mime_type="audio/wav", title="Song")
    await from_parts([TextDelta("Here it comes"), audio, TextDelta("Enjoy!")], surface)
    kinds = [(call.kind, call.view.state if call.view else None) for call in surface.calls]
    assert kinds == [
        ("post", MessageState.STREAMING),
        ("edit", MessageState.DONE),
        ("upload", None),
        ("post", MessageState.STREAMING),
        ("edit", MessageState.DONE),
    ]
    assert not surface.calls[2].replaces_progress
    assert surface.messages() == ["Here it comes", "Enjoy!"]


async def test_failure_keeps_partial_text_and_marks_the_message_failed() -> None:
    clock = FakeClock()
    surface = RecordingSurface(clock)
    await from_parts([TextDelta("Partial answer"), Failure("The stream broke.")], surface)
    last = surface.calls[-1]
    assert last.kind == "edit" and last.view is not None
    assert last.view.state is MessageState.FAILED
    assert last.view.text.startswith("Partial answer") and "The stream broke." in last.view.text
    assert len(surface.calls) == 2  # no extra "done" edit after the failure


async def test_failure_alone_is_posted_as_failed() -> None:
    clock = FakeClock()
    surface = RecordingSurface(clock)
    await from_parts([Failure("No budget left.")], surface)
    assert [(call.kind, call.view) for call in surface.calls] == [
        ("post", View("⚠️ No budget left.", MessageState.FAILED))
    ]


async def test_an_answer_with_nothing_to_show_gets_the_opening_line_after_the_delay() -> None:
    clock = FakeClock()
    surface = RecordingSurface(clock)
    script = Script()
    task = asyncio.create_task(
        render(script.parts(), surface, clock=clock, opening="Working on it…", opening_delay=1.0)
    )
    await settle()
    await clock.advance(0.99)
    assert surface.calls == []
    await clock.advance(0.01)
    assert [(call.kind, call.at, call.view) for call in surface.calls] == [
        ("post", 1.0, View("", MessageState.STREAMING, "Working on it…"))
    ]
    await clock.advance(2.0)
    await script.send(TextDelta("Hi"))
    assert [(call.kind, call.at, call.view) for call in surface.calls[1:]] == [
        ("edit", 3.0, View("Hi", MessageState.STREAMING))
    ], "the first text replaces the opening line at once"
    await script.send(None)
    await task
    assert surface.messages() == ["Hi"]


async def test_an_answer_that_starts_before_the_delay_gets_no_opening_line() -> None:
    clock = FakeClock()
    surface = RecordingSurface(clock)
    script = Script()
    task = asyncio.create_task(
        render(script.parts(), surface, clock=clock, opening="Working on it…", opening_delay=1.0)
    )
    await settle()
    await clock.advance(0.5)
    await script.send(TextDelta("Hi"))
    await clock.advance(5.0)
    await script.send(None)
    await task
    assert [(call.kind, call.at, call.view) for call in surface.calls] == [
        ("post", 0.5, View("Hi", MessageState.STREAMING)),
        ("edit", 5.5, View("Hi", MessageState.DONE)),
    ]
    assert clock.sleepers == 0, "the opening timer is gone"


async def test_render_returns_all_the_streamed_text_across_messages_and_media() -> None:
    clock = FakeClock()
    surface = RecordingSurface(clock, max_chars=100)
    image = Image(data=b"png", filename="a.png", mime_type="image/png", prompt="a")
    pieces = [f"Sentence {n} with some words in it. " for n in range(12)]
    parts: list[Part] = [TextDelta(piece) for piece in pieces[:6]] + [image]
    parts += [TextDelta(piece) for piece in pieces[6:]]

    async def stream() -> AsyncIterator[Part]:
        for part in parts:
            yield part

    task = asyncio.create_task(render(stream(), surface, clock=clock))
    while not task.done():
        await clock.advance(0.1)
    rendered = await task
    assert rendered.text == "".join(pieces)
    assert len(surface.messages()) > 2


async def test_the_parts_are_closed_when_rendering_is_cancelled() -> None:
    clock = FakeClock()
    surface = RecordingSurface(clock)
    closed = asyncio.Event()

    async def stream() -> AsyncIterator[Part]:
        try:
            yield TextDelta("one")
            await asyncio.Event().wait()
            yield TextDelta("never")
        finally:
            closed.set()

    task = asyncio.create_task(render(stream(), surface, clock=clock))
    await settle()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert closed.is_set()
    assert surface.calls[-1].view == View("one", MessageState.DONE), "the last edit still lands"


async def _parts(*parts: Part) -> AsyncIterator[Part]:
    for part in parts:
        yield part


async def test_answers_sharing_a_destination_bucket_share_its_edits_but_not_their_posts() -> None:
    clock = FakeClock()
    channel = TokenBucket(Pace(burst=2, per_second=1.0), clock=clock)
    surfaces = [RecordingSurface(clock) for _ in range(3)]
    answers = [
        asyncio.create_task(render(_parts(TextDelta(f"answer {n}")), surface, clock=clock, bucket=channel))
        for n, surface in enumerate(surfaces)
    ]
    await settle()
    assert [[(call.kind, call.at) for call in surface.calls] for surface in surfaces] == [
        [("post", 0.0), ("edit", 0.0)],
        [("post", 0.0), ("edit", 0.0)],
        [("post", 0.0)],  # the channel's two edit tokens are spent: the third final edit waits
    ]
    await clock.advance(1.0)
    await asyncio.gather(*answers)
    assert [(call.kind, call.at) for call in surfaces[2].calls] == [("post", 0.0), ("edit", 1.0)]
