"""Conversation memory: the store, trimming, follow-up routing, and the engine remembering turns."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.conversations import ConversationStore, EventKind, forget_command, purge_periodically
from core.db import MIGRATIONS, migration_sql
from core.engine import Engine
from core.history import fit_history, turn_text
from core.idle import IDLE_SUMMARY_USER, summarize_idle
from core.ledger import Ledger
from core.parts import (
    Audio,
    Delivered,
    Failure,
    GeneratorPart,
    Image,
    Intent,
    Part,
    Request,
    Scope,
    Status,
    TextDelta,
    Turn,
)
from core.router import Classification, route_by_rules, route_follow_up
from tests.clock import FakeClock
from tests.conftest import DEFAULT_LIMIT, RESEARCH_COST, demo_engine

pytestmark = pytest.mark.backends

SCOPE = Scope("test", "guild")
OTHER_SCOPE = Scope("test", "elsewhere")
THREAD = "test:thread:1"


@pytest.fixture
def wall() -> FakeClock:
    """The database's clock: wall time moves only when a test says so."""
    return FakeClock(utc_start=datetime(2026, 11, 1, tzinfo=UTC))


@pytest.fixture
async def ledger(database_url: str, wall: FakeClock) -> AsyncIterator[Ledger]:
    opened = await Ledger.open(database_url, default_limit=DEFAULT_LIMIT, clock=wall)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def store(ledger: Ledger) -> ConversationStore:
    return ConversationStore(ledger.database)


async def say(
    store: ConversationStore, text: str, *, conversation: str = THREAD, scope: Scope = SCOPE
) -> None:
    await store.record(conversation, scope=scope, user="ann", kind=EventKind.USER_MESSAGE, text=text)


# --- the store ---------------------------------------------------------------------------------


async def test_events_come_back_as_turns_with_one_bot_turn_per_request(store: ConversationStore) -> None:
    await say(store, "draw a red fox")
    for kind, text in [(EventKind.ANSWER, "Here it is."), (EventKind.IMAGE, "a red fox")]:
        await store.record(THREAD, scope=SCOPE, user="ann", kind=kind, text=text, request_id="r1")
    await store.record(
        THREAD, scope=SCOPE, user="bob", kind=EventKind.USER_MESSAGE, text="nice", request_id="r2"
    )
    await store.record(
        THREAD, scope=SCOPE, user="bob", kind=EventKind.FAILURE, text="Budget!", request_id="r2"
    )
    await say(store, "elsewhere", conversation="test:thread:2")

    assert await store.history(THREAD) == [
        Turn("user", "ann", "draw a red fox"),
        Turn("assistant", "bot", "Here it is.", (Delivered(Intent.IMAGE, "a red fox"),)),
        Turn("user", "bob", "nice"),
        Turn("assistant", "bot", "(That failed: Budget!)"),
    ]
    assert [turn.text for turn in await store.history(THREAD, limit=2)] == ["nice", "(That failed: Budget!)"]


async def test_knows_only_conversations_the_bot_answered_in(store: ConversationStore) -> None:
    await say(store, "hello?")
    assert not await store.knows(THREAD)
    await store.record(THREAD, scope=SCOPE, user="ann", kind=EventKind.ANSWER, text="hi", request_id="r1")
    assert await store.knows(THREAD)
    assert not await store.knows("test:thread:unknown")


async def test_latest_finds_the_most_recently_active_conversation_by_prefix(store: ConversationStore) -> None:
    for conversation in ("test:C1:100", "test:C1:200", "test:C2:300", "test:C1:100"):
        await store.record(conversation, scope=SCOPE, user="ann", kind=EventKind.USER_MESSAGE, text="hi")
    assert await store.latest("test:C1:") == "test:C1:100"
    assert await store.latest("test:C2:") == "test:C2:300"
    assert await store.latest("test:C3:") is None
    assert await store.latest("test:C1%") is None  # a prefix, not a pattern


async def test_links_resolve_a_bot_message_to_its_conversation(store: ConversationStore) -> None:
    await store.link("test:message:42", THREAD, scope=SCOPE)
    assert await store.resolve("test:message:42") == THREAD
    assert await store.resolve("test:message:43") is None


async def test_forget_removes_one_conversation_and_forget_scope_a_whole_scope(
    store: ConversationStore,
) -> None:
    await say(store, "one")
    await say(store, "two")
    await store.link("test:message:1", THREAD, scope=SCOPE)
    await say(store, "other thread", conversation="test:thread:2")
    await say(store, "other scope", conversation="test:thread:3", scope=OTHER_SCOPE)

    assert await store.forget(THREAD) == 2
    assert await store.history(THREAD) == []
    assert await store.resolve("test:message:1") is None
    assert await store.forget_scope(SCOPE) == 1
    assert await store.history("test:thread:2") == []
    assert [turn.text for turn in await store.history("test:thread:3")] == ["other scope"]


async def test_purge_deletes_only_what_is_older_than_the_retention(
    store: ConversationStore, wall: FakeClock
) -> None:
    await say(store, "old")
    await store.link("test:message:old", THREAD, scope=SCOPE)
    await wall.advance(timedelta(days=20).total_seconds())
    await say(store, "recent")
    await wall.advance(timedelta(days=11).total_seconds())  # "old" is 31 days old, "recent" 11

    assert await store.purge(timedelta(days=30)) == 1
    assert [turn.text for turn in await store.history(THREAD)] == ["recent"]
    assert await store.resolve("test:message:old") is None
    assert await store.purge(timedelta(days=30)) == 0


class WatchedStore(ConversationStore):
    """Reports each purge, so a test waits for the purge itself rather than for time to pass."""

    def __init__(self, ledger: Ledger) -> None:
        super().__init__(ledger.database)
        self.purged: asyncio.Queue[int] = asyncio.Queue()

    async def purge(self, older_than: timedelta) -> int:
        removed = await super().purge(older_than)
        self.purged.put_nowait(removed)
        return removed


async def test_the_periodic_purge_runs_at_once_and_then_every_interval(
    ledger: Ledger, wall: FakeClock
) -> None:
    clock = FakeClock()
    store = WatchedStore(ledger)
    await say(store, "old")
    task = asyncio.create_task(purge_periodically(store, keep=timedelta(days=30), clock=clock, every_s=3600))
    try:
        assert await asyncio.wait_for(store.purged.get(), 5) == 0  # at once; "old" is not old yet
        assert clock.sleepers == 1  # the purger went straight back to sleep
        await wall.advance(timedelta(days=31).total_seconds())
        await clock.advance(3599)
        assert store.purged.empty()  # the next run is not due yet
        await clock.advance(1)
        assert await asyncio.wait_for(store.purged.get(), 5) == 1
        assert await store.history(THREAD) == []
    finally:
        task.cancel()


async def test_forget_command(store: ConversationStore) -> None:
    await say(store, "one")
    await say(store, "two", conversation="test:thread:2")

    assert "Only admins" in await forget_command(store, THREAD, SCOPE, "all", can_forget_scope=False)
    assert len(await store.history("test:thread:2")) == 1
    assert "Usage" in await forget_command(store, THREAD, SCOPE, "everything", can_forget_scope=True)
    assert "no conversation here" in await forget_command(store, None, SCOPE, "", can_forget_scope=True)
    assert "(1 message deleted)" in await forget_command(store, THREAD, SCOPE, "", can_forget_scope=False)
    assert "nothing stored" in await forget_command(store, THREAD, SCOPE, "", can_forget_scope=False)
    assert "(1 message deleted)" in await forget_command(store, THREAD, SCOPE, "ALL", can_forget_scope=True)
    assert await store.history("test:thread:2") == []


# --- trimming ------------------------------------------------------------------------------------


def test_trimming_leaves_out_the_oldest_turns_and_says_so() -> None:
    turns = [Turn("user", "ann", f"message {n} " + "x" * 400) for n in range(10)]
    window = fit_history(turns, max_tokens=400)

    assert 0 < len(window.turns) < 10
    assert window.turns == tuple(turns[-len(window.turns) :])  # the newest, in order
    assert window.left_out == 10 - len(window.turns)
    assert (
        window.notice()
        == f"{window.left_out} earlier turns of this conversation were left out to keep it short."
    )
    assert fit_history(turns[-1:], max_tokens=400).notice() is None


def test_one_long_answer_is_cut_rather_than_crowding_out_the_rest() -> None:
    paper = Turn("assistant", "bot", "# A paper\n" + "words " * 5000)
    window = fit_history([Turn("user", "ann", "research tides"), paper], max_tokens=3000)

    assert window.left_out == 0
    assert window.turns[1].text.endswith("…[cut]") and len(window.turns[1].text) < 7000


# --- routing follow-ups --------------------------------------------------------------------------

AFTER_FOX = (
    Turn("user", "ann", "a red fox", intent=Intent.IMAGE),
    Turn("assistant", "bot", "", (Delivered(Intent.IMAGE, "a red fox"),)),
)
AFTER_RESEARCH = (
    Turn("user", "ann", "the transistor", intent=Intent.RESEARCH),
    Turn("assistant", "bot", "# The transistor…"),
)


@pytest.mark.parametrize(
    "text", ["now a song about that", "another one", "make it longer", "draw it again", "a picture of it"]
)
def test_rules_are_never_confident_about_follow_ups(text: str) -> None:
    assert route_by_rules(text) is None


@pytest.mark.parametrize(
    ("text", "history", "intent", "prompt"),
    [
        ("another one", AFTER_FOX, Intent.IMAGE, "a red fox"),
        ("Again, please!", AFTER_FOX, Intent.IMAGE, "a red fox"),
        ("now a song about that", AFTER_FOX, Intent.SONG, "a song about a red fox"),
        ("now a song about that", AFTER_RESEARCH, Intent.SONG, "a song about the transistor"),
        ("ok, draw a picture of it", AFTER_RESEARCH, Intent.IMAGE, "the transistor"),
    ],
)
def test_the_fallback_fills_follow_ups_from_the_conversation(
    text: str, history: tuple[Turn, ...], intent: Intent, prompt: str
) -> None:
    route = route_follow_up(text, history)
    assert route is not None
    assert (route.intent, route.prompt, route.source) == (intent, prompt, "context")


def test_the_fallback_leaves_what_it_cannot_fill_alone() -> None:
    assert route_follow_up("another one", AFTER_RESEARCH) is None  # no media to repeat
    assert route_follow_up("now a song about that", ()) is None
    assert route_follow_up("tell me more about that", AFTER_FOX) is None  # no kind of work named
    assert route_follow_up("draw a cat", AFTER_FOX) is None


def test_summary_requests_are_recognised_by_rule() -> None:
    route = route_by_rules("could you summarize this thread?")
    assert route is not None and route.intent is Intent.SUMMARY
    assert route_by_rules("summarize the french revolution") is None


# --- the engine ------------------------------------------------------------------------------------


@dataclass
class RecordingGenerator:
    """Answers with fixed text and remembers each request's history."""

    intent: Intent = Intent.CHAT
    demo: bool = False
    answer: str = "noted"
    seen: list[tuple[Turn, ...]] = field(default_factory=list)

    def estimate(self, prompt: str) -> int:
        return 1_000

    async def generate(self, prompt: str, request: Request) -> AsyncIterator[GeneratorPart]:
        self.seen.append(request.history)
        yield TextDelta(self.answer)


def engine_with(ledger: Ledger, *generators: RecordingGenerator) -> Engine:
    engine = demo_engine(ledger)
    chosen = dict(engine.generators)
    chosen.update({generator.intent: generator for generator in generators})  # type: ignore[misc]
    return Engine(ledger=ledger, generators=chosen, conversations=engine.conversations)


async def ask(
    engine: Engine,
    text: str,
    *,
    intent: Intent | None = None,
    conversation: str | None = THREAD,
    user: str = "ann",
) -> list[Part]:
    request = Request(scope=SCOPE, user=user, text=text, intent=intent, conversation=conversation)
    return [part async for part in engine.handle(request)]


async def test_each_turn_reaches_the_generator_with_the_turns_before_it(ledger: Ledger) -> None:
    chat = RecordingGenerator(answer="Hello Ann.")
    engine = engine_with(ledger, chat)

    await ask(engine, "hi, I'm Ann")
    await ask(engine, "what is my name?")
    await ask(engine, "unrelated", conversation="test:thread:other")
    await ask(engine, "and again?", user="bob")

    assert chat.seen[0] == ()
    assert chat.seen[1] == (Turn("user", "ann", "hi, I'm Ann"), Turn("assistant", "bot", "Hello Ann."))
    assert chat.seen[2] == ()
    assert chat.seen[3][-2:] == (
        Turn("user", "ann", "what is my name?"),
        Turn("assistant", "bot", "Hello Ann."),
    )
    assert await engine.conversations.knows(THREAD)  # type: ignore[union-attr]


async def test_media_and_failures_are_remembered_and_bad_input_is_not(ledger: Ledger) -> None:
    engine = demo_engine(ledger)
    store = engine.conversations
    assert store is not None

    parts = await ask(engine, "a red fox", intent=Intent.IMAGE)
    assert any(isinstance(part, Image) for part in parts)
    parts = await ask(engine, "a sea shanty", intent=Intent.SONG)
    assert any(isinstance(part, Audio) for part in parts)
    await ask(engine, "   ", intent=Intent.IMAGE)
    await ask(engine, "x" * 5000)
    await ledger.set_limit(SCOPE, 0, by="test")
    [refusal] = await ask(engine, "a blue fox", intent=Intent.IMAGE)
    assert isinstance(refusal, Failure)

    assert await store.history(THREAD) == [
        Turn("user", "ann", "a red fox", intent=Intent.IMAGE),
        Turn("assistant", "bot", "", (Delivered(Intent.IMAGE, "a red fox"),)),
        Turn("user", "ann", "a sea shanty", intent=Intent.SONG),
        Turn("assistant", "bot", "", (Delivered(Intent.SONG, "a sea shanty"),)),
        Turn("user", "ann", "a blue fox", intent=Intent.IMAGE),
        Turn("assistant", "bot", f"(That failed: {refusal.message})"),
    ]


async def test_requests_without_a_conversation_are_not_remembered(ledger: Ledger) -> None:
    chat = RecordingGenerator()
    engine = engine_with(ledger, chat)
    await ask(engine, "hello", conversation=None)
    await ask(engine, "hello again", conversation=None)
    assert chat.seen == [(), ()]
    assert (await ledger.report(SCOPE)).recent[0].service == "chat"


async def test_demo_follow_ups_repeat_and_refer_to_earlier_media(ledger: Ledger) -> None:
    engine = demo_engine(ledger)
    await ask(engine, "a red fox", intent=Intent.IMAGE)

    again = await ask(engine, "another one")
    song = await ask(engine, "now a song about that")

    [image] = [part for part in again if isinstance(part, Image)]
    assert image.prompt == "a red fox"
    [audio] = [part for part in song if isinstance(part, Audio)]
    assert audio.prompt == "a song about a red fox"
    report = await ledger.report(SCOPE)
    assert [row.service for row in report.recent] == ["song", "image", "image"]


async def test_demo_chat_shows_what_it_remembers_and_trims_with_a_notice(ledger: Ledger) -> None:
    engine = demo_engine(ledger)
    for n in range(30):
        await ask(engine, f"message number {n} " + "blah " * 60)

    parts = await ask(engine, "do you remember?")

    text = "".join(part.text for part in parts if isinstance(part, TextDelta))
    assert "before this you said: “message number 29" in text
    [status] = [part.text for part in parts if isinstance(part, Status)]
    assert "older left out" in status


async def test_summary_is_charged_like_research_and_summarizes_the_conversation(ledger: Ledger) -> None:
    engine = demo_engine(ledger)
    await ask(engine, "a red fox", intent=Intent.IMAGE)

    parts = await ask(engine, "", intent=Intent.SUMMARY)

    text = "".join(part.text for part in parts if isinstance(part, TextDelta))
    assert "Summary of this conversation" in text and "image: a red fox" in text
    row = (await ledger.report(SCOPE)).recent[0]
    assert (row.service, row.status, row.charged) == ("summary", "charged", RESEARCH_COST)
    history = await engine.conversations.history(THREAD)  # type: ignore[union-attr]
    assert history[-1].text.startswith("Summary of the conversation so far:")
    assert len(history) == 3  # the /summary command itself is not a turn


async def test_summary_refuses_cleanly_when_it_cannot_run(ledger: Ledger) -> None:
    engine = demo_engine(ledger)
    [nothing] = await ask(engine, "", intent=Intent.SUMMARY)
    [nowhere] = await ask(engine, "", intent=Intent.SUMMARY, conversation=None)
    four = {intent: engine.generators[intent] for intent in Intent if intent is not Intent.SUMMARY}
    without = Engine(ledger=ledger, generators=four, conversations=engine.conversations)
    await ask(engine, "hello")
    [unavailable] = await ask(without, "", intent=Intent.SUMMARY)

    assert isinstance(nothing, Failure) and "nothing to summarize" in nothing.message
    assert isinstance(nowhere, Failure) and "conversation I'm part of" in nowhere.message
    assert isinstance(unavailable, Failure) and "aren't available" in unavailable.message
    assert [row.service for row in (await ledger.report(SCOPE)).recent] == ["chat"]  # nothing else reserved
    assert not await engine.conversations.knows("test:thread:fresh")  # type: ignore[union-attr]


@dataclass
class FailingClassifier:
    """A classifier that sees the history and then fails, as a broken provider would."""

    demo: bool = False
    seen: list[tuple[str, tuple[Turn, ...]]] = field(default_factory=list)

    def estimate(self, text: str) -> int:
        return 1_000

    async def classify(self, text: str, history: Sequence[Turn] = ()) -> Classification:
        self.seen.append((text, tuple(history)))
        raise ValueError("not JSON")


async def test_the_classifier_reads_the_history_and_its_failure_falls_back_to_the_context(
    ledger: Ledger,
) -> None:
    base = demo_engine(ledger)
    classifier = FailingClassifier()
    engine = Engine(
        ledger=ledger, generators=base.generators, classifier=classifier, conversations=base.conversations
    )
    await ask(engine, "a red fox", intent=Intent.IMAGE)

    parts = await ask(engine, "now a song about that")

    [(text, history)] = classifier.seen
    assert text == "now a song about that" and history[-1].media == (Delivered(Intent.IMAGE, "a red fox"),)
    [audio] = [part for part in parts if isinstance(part, Audio)]
    assert audio.prompt == "a song about a red fox"
    statuses = {row.service: row.status for row in (await ledger.report(SCOPE)).recent}
    assert statuses["router"] == "refunded"


async def test_an_answer_cut_off_by_the_reader_is_remembered_as_far_as_it_went(ledger: Ledger) -> None:
    engine = demo_engine(ledger)
    stream = engine.handle(Request(scope=SCOPE, user="ann", text="hello there", conversation=THREAD))
    first = await anext(stream)
    await stream.aclose()  # type: ignore[attr-defined]

    assert isinstance(first, TextDelta)
    history = await engine.conversations.history(THREAD)  # type: ignore[union-attr]
    assert history == [Turn("user", "ann", "hello there"), Turn("assistant", "bot", first.text.strip())]


async def test_quiet_conversations_get_one_charged_summary_each(ledger: Ledger, wall: FakeClock) -> None:
    store = ConversationStore(ledger.database)
    base = demo_engine(ledger)
    engine = Engine(ledger=ledger, generators=base.generators, conversations=store)
    await ask(engine, "a red fox", intent=Intent.IMAGE)  # answered: a candidate
    await say(store, "anyone here?", conversation="test:thread:unanswered")  # never answered: not one
    await wall.advance(timedelta(minutes=20).total_seconds())
    await ask(engine, "hello", conversation="test:thread:busy")  # still active: not yet

    idle, window = timedelta(minutes=15), timedelta(minutes=10)
    assert await summarize_idle(engine, store, idle_for=idle, within=window) == 1
    assert await summarize_idle(engine, store, idle_for=idle, within=window) == 0  # once only

    [*_, summary] = await store.history(THREAD)
    assert (
        summary.text.startswith("Summary of the conversation so far:") and "image: a red fox" in summary.text
    )
    assert len(await store.history("test:thread:busy")) == 2
    row = (await ledger.report(SCOPE)).recent[0]
    assert (row.service, row.user, row.status) == ("summary", IDLE_SUMMARY_USER, "charged")


async def test_rows_stored_as_descriptions_are_migrated_to_values(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = sqlite3.connect(path, isolation_level=None)
    for number, migration in enumerate(MIGRATIONS[:6], start=1):
        script = migration_sql(migration, "sqlite")
        old.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")
    rows = [
        ("user_message", "/imagine a red fox", "r1"),
        ("image", "image: a red fox", "r1"),
        ("user_message", "/song a sea shanty", "r2"),
        ("song", "song: The Shanty", "r2"),
        ("user_message", "/research the transistor", "r3"),
        ("answer", "# The transistor", "r3"),
        ("user_message", "image: not a command, just text", "r4"),
    ]
    for kind, text, request_id in rows:
        old.execute(
            "INSERT INTO conversation_events (conversation, scope, user, kind, text, created_at, request_id) "
            "VALUES (?, 'test:guild', 'ann', ?, ?, '2026-01-01T00:00:00+00:00', ?)",
            (THREAD, kind, text, request_id),
        )
    old.close()

    ledger = await Ledger.open(f"sqlite:///{path}", default_limit=DEFAULT_LIMIT)
    try:
        history = await ConversationStore(ledger.database).history(THREAD)
    finally:
        await ledger.close()
    assert history == [
        Turn("user", "ann", "a red fox", intent=Intent.IMAGE),
        Turn("assistant", "bot", "", (Delivered(Intent.IMAGE, "a red fox"),)),
        Turn("user", "ann", "a sea shanty", intent=Intent.SONG),
        Turn("assistant", "bot", "", (Delivered(Intent.SONG, "The Shanty"),)),
        Turn("user", "ann", "the transistor", intent=Intent.RESEARCH),
        Turn("assistant", "bot", "# The transistor"),
        Turn("user", "ann", "image: not a command, just text"),
    ]
    # Models read the conversation exactly as before the migration.
    assert [turn_text(turn) for turn in history] == [
        "/imagine a red fox",
        "[delivered image: a red fox]",
        "/song a sea shanty",
        "[delivered song: The Shanty]",
        "/research the transistor",
        "# The transistor",
        "image: not a command, just text",
    ]
