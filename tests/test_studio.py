"""Image work on delivered media: action ids, /imagine flags, presses charged to the presser, a
press after a restart, expired sources and caps; on SQLite and PostgreSQL."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from PIL import Image as PILImage

from core.commands.dispatcher import CommandContext, Dispatcher, Reply
from core.conversations import ConversationStore
from core.demo import DemoImageGenerator, DemoSongGenerator
from core.engine import Engine
from core.ledger import Ledger
from core.parts import Access, Audio, Failure, Image, Intent, Operation, Part, Request, Scope, StudioWork
from core.studio import (
    MAX_ACTION_ID,
    Action,
    BadOption,
    Expired,
    OperationPrices,
    Removal,
    StudioStore,
    action_id,
    parse_action_id,
    parse_image_prompt,
    press,
)
from tests.clock import FakeClock
from tests.conftest import DEFAULT_LIMIT, IMAGE_COST, SONG_COST

pytestmark = pytest.mark.backends

SCOPE = Scope("test", "guild")
PRICES = {"vary": 30_000, "upscale": 60_000, "edit": 45_000}
MEMBER = Access(channel="C1")


def studio_engine(ledger: Ledger) -> Engine:
    return Engine(
        ledger=ledger,
        generators={
            Intent.IMAGE: DemoImageGenerator(cost=IMAGE_COST, prices=OperationPrices(**PRICES)),
            Intent.SONG: DemoSongGenerator(cost=SONG_COST, delay_s=0),
        },
        conversations=ConversationStore(ledger.database),
        studio=StudioStore(ledger.database, keep_days=7),
    )


async def run(engine: Engine, request: Request) -> list[Part]:
    return [part async for part in engine.handle(request)]


async def draw(
    engine: Engine,
    prompt: str = "a lighthouse",
    *,
    user: str = "alice",
    aspect: str | None = None,
    seed: int | None = None,
) -> Image:
    request = Request(
        scope=SCOPE,
        user=user,
        text=prompt,
        intent=Intent.IMAGE,
        conversation="test:thread",
        access=MEMBER,
        studio=StudioWork(aspect=aspect, seed=seed),
    )
    (image,) = [part for part in await run(engine, request) if isinstance(part, Image)]
    return image


async def spent(ledger: Ledger, user: str) -> tuple[int, int]:
    report = await ledger.member_report(SCOPE, user)
    return report.used, report.held


def size(data: bytes) -> tuple[int, int]:
    with PILImage.open(io.BytesIO(data)) as picture:
        return picture.size


async def pressed(
    engine: Engine, action: Action, image: Image | Audio, **kwargs: object
) -> Request | Reply | Expired | Removal:
    assert image.job is not None
    options: dict[str, object] = {"user": "bob", "access": MEMBER} | kwargs
    return await press(engine.studio, action_id(action, image.job), scope=SCOPE, **options)  # type: ignore[arg-type]


def test_action_ids_round_trip_and_fit_discord() -> None:
    text = action_id(Action.UPSCALE, "0123456789ab")
    assert text == "studio:upscale:0123456789ab" and len(text) <= MAX_ACTION_ID
    assert parse_action_id(text) == (Action.UPSCALE, "0123456789ab")
    for bad in (
        "",
        "studio:zoom:abc",
        "other:vary:abc",
        "studio:vary:",
        "studio:vary:a:b",
        "studio:" + "x" * 100,
    ):
        assert parse_action_id(bad) is None
    with pytest.raises(ValueError, match="invalid action id"):
        action_id(Action.VARY, "a:b")


def test_flags_are_read_anywhere_and_bad_values_explained() -> None:
    parsed = parse_image_prompt("a lighthouse --ar 16:9 at dusk --seed 42")
    assert (parsed.prompt, parsed.aspect, parsed.seed) == ("a lighthouse at dusk", "16:9", 42)
    assert parse_image_prompt("--aspect=9:16 a cat").aspect == "9:16"
    assert parse_image_prompt("a cat").seed is None
    for text, says in [
        ("a cat --ar 5:4", "isn't an aspect I can draw: use one of 1:1, 4:3, 3:4, 16:9, 9:16, 21:9"),
        ("a cat --seed -3", "isn't a seed"),
        ("a cat --seed 99999999999", "isn't a seed"),
        ("a cat --seed 1 --seed 2", "given twice"),
    ]:
        with pytest.raises(BadOption, match=says):
            parse_image_prompt(text)


async def test_bad_flags_on_imagine_cost_nothing(ledger: Ledger) -> None:
    commands = Dispatcher(ledger=ledger, conversations=None, intents={Intent.IMAGE})
    context = CommandContext(scope=SCOPE, user="alice")
    answer = await commands.dispatch("imagine", "a cat --ar 2:1", context)
    assert isinstance(answer, Reply) and "Nothing was charged" in answer.text
    assert isinstance(await commands.dispatch("imagine", "--seed 7", context), Reply)  # flags, no prompt
    request = await commands.dispatch("imagine", "a cat --ar 21:9 --seed 7", context)
    assert isinstance(request, Request) and request.text == "a cat"
    assert request.studio == StudioWork(aspect="21:9", seed=7)
    assert await spent(ledger, "alice") == (0, 0)


async def test_aspect_and_seed_shape_and_reproduce_the_image(ledger: Ledger) -> None:
    engine = studio_engine(ledger)
    wide = await draw(engine, aspect="16:9", seed=42)
    again = await draw(engine, aspect="16:9", seed=42)
    other = await draw(engine, aspect="16:9", seed=43)
    tall = await draw(engine, aspect="9:16", seed=42)
    assert wide.seed == 42 and wide.title.endswith("· seed 42")
    assert wide.data == again.data and wide.data != other.data
    (width, height) = size(wide.data)
    assert width > height and abs(width / height - 16 / 9) < 0.1
    assert size(tall.data)[0] < size(tall.data)[1]
    assert wide.job is not None and wide.actions == tuple(
        action_id(action, wide.job)
        for action in (Action.REROLL, Action.VARY, Action.UPSCALE, Action.EDIT, Action.DELETE)
    )
    unseeded = await draw(engine)
    assert unseeded.seed is not None and unseeded.title.endswith(f"· seed {unseeded.seed}")


async def test_each_operation_is_a_new_request_charged_to_the_presser(ledger: Ledger) -> None:
    engine = studio_engine(ledger)
    source = await draw(engine, aspect="4:3", seed=5)
    assert await spent(ledger, "alice") == (IMAGE_COST, 0)

    results: dict[Action, Image] = {}
    expected_spend = 0
    for action, price, extra in [
        (Action.REROLL, IMAGE_COST, {}),
        (Action.VARY, PRICES["vary"], {"strength": "strong"}),
        (Action.UPSCALE, PRICES["upscale"], {}),
        (Action.EDIT, PRICES["edit"], {"instruction": "make it night"}),
    ]:
        request = await pressed(engine, action, source, **extra)
        assert isinstance(request, Request) and request.user == "bob"
        (image,) = [part for part in await run(engine, request) if isinstance(part, Image)]
        results[action] = image
        expected_spend += price
        assert await spent(ledger, "bob") == (expected_spend, 0), action
    assert await spent(ledger, "alice") == (IMAGE_COST, 0)  # the requester pays nothing for presses

    reroll = results[Action.REROLL]
    assert (
        reroll.seed != source.seed and reroll.data != source.data and size(reroll.data) == size(source.data)
    )
    assert results[Action.VARY].data != source.data and size(results[Action.VARY].data) == size(source.data)
    assert size(results[Action.UPSCALE].data) == tuple(2 * side for side in size(source.data))
    assert results[Action.EDIT].data != source.data and "make it night" in results[Action.EDIT].title
    # Every result carries its own buttons: an upscale can be varied in turn.
    assert all(image.job and image.job != source.job and image.actions for image in results.values())


async def test_a_song_gets_another_take(ledger: Ledger) -> None:
    engine = studio_engine(ledger)
    request = Request(scope=SCOPE, user="alice", text="a sea shanty", intent=Intent.SONG, access=MEMBER)
    (song,) = [part for part in await run(engine, request) if isinstance(part, Audio)]
    assert song.job is not None and song.actions == (
        action_id(Action.ANOTHER, song.job),
        action_id(Action.DELETE, song.job),
    )
    take = await pressed(engine, Action.ANOTHER, song)
    assert (
        isinstance(take, Request) and take.studio is not None and take.studio.operation is Operation.ANOTHER
    )
    (second,) = [part for part in await run(engine, take) if isinstance(part, Audio)]
    assert second.data != song.data and second.prompt == song.prompt
    assert await spent(ledger, "bob") == (SONG_COST, 0)
    assert isinstance(await pressed(engine, Action.VARY, song), Reply)  # songs have no image actions


async def test_refusals_are_private_and_cost_nothing(ledger: Ledger) -> None:
    engine = studio_engine(ledger)
    source = await draw(engine)
    assert source.job is not None
    cases: list[tuple[Request | Reply | Removal, str]] = [
        (await pressed(engine, Action.EDIT, source, instruction="  "), "Tell me what to change"),
        (
            await press(engine.studio, "studio:vary:nosuchjob", scope=SCOPE, user="bob", access=MEMBER),
            "don't have",
        ),
        (
            await press(engine.studio, "studio:melt:" + source.job, scope=SCOPE, user="bob", access=MEMBER),
            "isn't one",
        ),
        (
            await press(
                engine.studio,
                action_id(Action.VARY, source.job),
                scope=Scope("test", "other"),
                user="bob",
                access=MEMBER,
            ),
            "another server",
        ),
        (await pressed(engine, Action.DELETE, source), "Only the person who asked"),
    ]
    for outcome, says in cases:
        assert isinstance(outcome, Reply) and outcome.private and says in outcome.text
    assert await spent(ledger, "bob") == (0, 0)


async def test_delete_is_for_the_requester_or_an_admin(ledger: Ledger) -> None:
    engine = studio_engine(ledger)
    mine, theirs = await draw(engine, "one"), await draw(engine, "two")
    assert isinstance(await pressed(engine, Action.DELETE, mine, user="alice"), Removal)
    assert isinstance(await pressed(engine, Action.DELETE, theirs, access=Access(admin=True)), Removal)
    for action in (Action.VARY, Action.REROLL):
        refused = await pressed(engine, action, mine)
        assert (
            isinstance(refused, Expired)
            and "deleted" in refused.text
            and "Nothing was charged" in refused.text
        )
        assert refused.usable == (action_id(Action.DELETE, str(mine.job)),), "only Delete is left"
        assert refused.reason == "This image was deleted"
    stored = await engine.studio.get(str(mine.job))
    assert stored is not None and stored.data is None  # the bot's copy is gone


async def test_a_press_after_a_restart_works(database_url: str) -> None:
    first = await Ledger.open(database_url, default_limit=DEFAULT_LIMIT)
    source = await draw(studio_engine(first), aspect="3:4", seed=9)
    await first.close()

    reopened = await Ledger.open(database_url, default_limit=DEFAULT_LIMIT)
    try:
        engine = studio_engine(reopened)
        request = await pressed(engine, Action.UPSCALE, source)
        assert isinstance(request, Request)
        assert request.studio is not None and request.studio.source is not None
        (image,) = [part for part in await run(engine, request) if isinstance(part, Image)]
        assert size(image.data) == tuple(2 * side for side in size(source.data))
        assert await spent(reopened, "bob") == (PRICES["upscale"], 0)
    finally:
        await reopened.close()


async def test_an_expired_source_is_refused_without_charge(database_url: str) -> None:
    clock = FakeClock()
    ledger = await Ledger.open(database_url, default_limit=DEFAULT_LIMIT, clock=clock)
    try:
        engine = studio_engine(ledger)
        source = await draw(engine)
        await clock.advance(8 * 86_400)
        job = str(source.job)
        for action in (Action.VARY, Action.UPSCALE, Action.EDIT):
            refused = await pressed(engine, action, source, instruction="make it night")
            assert isinstance(refused, Expired)
            assert "expired" in refused.text and "Nothing was charged" in refused.text
            assert refused.expired_actions == tuple(
                action_id(ended, job) for ended in (Action.VARY, Action.UPSCALE, Action.EDIT)
            )
            assert refused.usable == (action_id(Action.REROLL, job), action_id(Action.DELETE, job))
            assert refused.reason == "Vary, Upscale and Edit expired after 7 days"
        reroll = await pressed(engine, Action.REROLL, source)  # needs only the prompt
        assert isinstance(reroll, Request)
        assert await spent(ledger, "bob") == (0, 0)
        await engine.studio.purge(timedelta(days=90))
        kept = await engine.studio.get(str(source.job))
        assert kept is not None and kept.data is None and kept.prompt == "a lighthouse"
    finally:
        await ledger.close()


async def test_a_presser_over_their_cap_is_refused_without_charge(database_url: str) -> None:
    ledger = await Ledger.open(database_url, default_limit=DEFAULT_LIMIT, member_cap=IMAGE_COST)
    try:
        engine = studio_engine(ledger)
        source = await draw(engine, user="alice")
        await draw(engine, "bob's own", user="bob")  # bob has used his whole cap
        request = await pressed(engine, Action.REROLL, source)
        assert isinstance(request, Request)
        parts = await run(engine, request)
        assert not [part for part in parts if isinstance(part, Image)]
        (refusal,) = [part for part in parts if isinstance(part, Failure)]
        assert refusal.reason == "refused"
        assert await spent(ledger, "bob") == (IMAGE_COST, 0)
        assert await spent(ledger, "alice") == (IMAGE_COST, 0)
    finally:
        await ledger.close()


async def test_policies_apply_to_presses(ledger: Ledger) -> None:
    engine = studio_engine(ledger)
    source = await draw(engine)
    await engine.policies.set_service(SCOPE, Intent.IMAGE, False, by="admin")
    request = await pressed(engine, Action.REROLL, source)
    assert isinstance(request, Request)
    (failure,) = [part for part in await run(engine, request) if isinstance(part, Failure)]
    assert failure.reason == "unavailable"
    assert await spent(ledger, "bob") == (0, 0)
