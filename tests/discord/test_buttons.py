"""The buttons under images and songs through the real discord.py client and the fake Discord:
each press is a new request by the presser (charged to them, within their cap), rendered as a
new message; refusals are private; buttons keep working after a restart."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from PIL import Image as PILImage

from core.attachments import AttachmentReader
from core.demo import DemoImageGenerator, DemoSongGenerator
from core.engine import Engine
from core.generator import Generator
from core.ledger import Ledger
from core.parts import Intent, Scope
from core.providers import BflImageGenerator
from core.studio import Action, OperationPrices, StudioStore, action_id, parse_action_id
from tests.clock import FakeClock
from tests.conftest import DEFAULT_LIMIT, IMAGE_COST, SONG_COST
from tests.discord.conftest import StartBot, settled_report
from tests.fakes.fake_bfl import JPEG, FakeBfl, bfl_images
from tests.fakes.fake_discord import EPHEMERAL, FakeDiscord, FakeInteraction, FakeMessage
from tests.providers.conftest import InstantClock

ALICE = FakeDiscord.user("111", "alice")
BOB = FakeDiscord.user("222", "bob")
MANAGE_GUILD = 1 << 5
PRICES = OperationPrices(vary=30_000, upscale=60_000, edit=45_000)
IMAGE_LABELS = ["reroll", "vary", "upscale", "edit", "delete"]


def studio_engine(ledger: Ledger, *, image: Generator | None = None) -> Engine:
    return Engine(
        ledger=ledger,
        generators={
            Intent.IMAGE: image or DemoImageGenerator(cost=IMAGE_COST, prices=PRICES),
            Intent.SONG: DemoSongGenerator(cost=SONG_COST, delay_s=0),
        },
        studio=StudioStore(ledger.database, keep_days=7),
    )


def bfl(fake_bfl: FakeBfl, http: httpx.AsyncClient) -> BflImageGenerator:
    return bfl_images(fake_bfl, http, cost=IMAGE_COST, prices=PRICES, clock=InstantClock())


@pytest.fixture
async def capped(database_url: str) -> AsyncIterator[Ledger]:
    """A ledger whose members may each spend one image."""
    ledger = await Ledger.open(database_url, default_limit=DEFAULT_LIMIT, member_cap=IMAGE_COST)
    try:
        yield ledger
    finally:
        await ledger.close()


def scope_of(fake: FakeDiscord) -> Scope:
    return Scope("discord", fake.guild_id)


def delivered_by(fake: FakeDiscord, interaction: FakeInteraction) -> FakeMessage | None:
    """The message with a file that answered ``interaction``, once there is one."""
    for message in fake.messages.values():
        if message.interaction_token == interaction.token and message.current.attachments:
            return message
    return None


async def delivered(fake: FakeDiscord, interaction: FakeInteraction) -> FakeMessage:
    await fake.wait_until(lambda: delivered_by(fake, interaction) is not None)
    message = delivered_by(fake, interaction)
    assert message is not None
    return message


async def imagine(
    fake: FakeDiscord, text: str, *, user: dict[str, object] = ALICE, **options: str
) -> FakeMessage:
    values = [{"name": "prompt", "type": 3, "value": text}]
    values += [{"name": name, "type": 3, "value": value} for name, value in options.items()]
    message = await delivered(fake, await fake.slash("imagine", values, user=user))
    await fake.wait_until(lambda: bool(message.current.custom_ids))
    return message


def button(message: FakeMessage, action: Action) -> str:
    return next(
        custom for custom in message.current.custom_ids if custom.startswith(f"studio:{action.value}:")
    )


async def answered(fake: FakeDiscord, interaction: FakeInteraction) -> None:
    await fake.wait_until(lambda: bool(interaction.callbacks))


def private_reply(fake: FakeDiscord, interaction: FakeInteraction) -> FakeMessage:
    """The ephemeral message that answered ``interaction`` (a response or a follow-up)."""
    [reply] = [m for m in fake.messages.values() if m.interaction_token == interaction.token and m.ephemeral]
    return reply


async def spent(ledger: Ledger, fake: FakeDiscord, user: dict[str, object]) -> int:
    report = await ledger.member_report(scope_of(fake), str(user["id"]))
    assert report.held == 0
    return report.used


def size(data: bytes) -> tuple[int, int]:
    with PILImage.open(io.BytesIO(data)) as image:
        return image.size


async def test_imagine_offers_aspect_and_seed_and_the_image_carries_its_buttons(
    fake: FakeDiscord, start_bot: StartBot, ledger: Ledger
) -> None:
    await start_bot(studio_engine(ledger))
    [synced] = fake.synced.values()
    options = {
        option["name"]: option for option in next(c for c in synced if c["name"] == "imagine")["options"]
    }
    assert [choice["value"] for choice in options["aspect"]["choices"]] == [
        "1:1",
        "4:3",
        "3:4",
        "16:9",
        "9:16",
        "21:9",
    ]
    assert not options["aspect"].get("required") and not options["seed"].get("required")
    assert all(name not in {c["name"] for c in synced} for name in ("reroll", "vary", "edit"))

    message = await imagine(fake, "a lighthouse", aspect="16:9", seed="42")

    assert message.current.embeds[0]["title"].endswith("· seed 42")
    width, height = size(message.current.attachments[0].data)
    assert width > height
    ids = message.current.custom_ids
    assert [parse_action_id(custom) for custom in ids] == [
        (Action(label), ids[0].rsplit(":", 1)[1]) for label in IMAGE_LABELS
    ]
    [row] = message.current.components
    assert [item["label"] for item in row["components"]] == ["Reroll", "Vary", "Upscale", "Edit", "Delete"]


async def test_reroll_is_a_new_message_with_a_new_seed_charged_to_the_presser(
    fake: FakeDiscord, start_bot: StartBot, ledger: Ledger, fake_bfl: FakeBfl, http: httpx.AsyncClient
) -> None:
    await start_bot(studio_engine(ledger, image=bfl(fake_bfl, http)))
    source = await imagine(fake, "a lighthouse", seed="42")
    await settled_report(ledger, scope_of(fake))

    pressed = await fake.press(source.id, button(source, Action.REROLL), user=BOB)
    result = await delivered(fake, pressed)

    first, again = (seen.body for seen in fake_bfl.requests("/v1/flux-pro-1.1"))
    assert first["seed"] == 42 and again["seed"] != 42 and again["prompt"] == "a lighthouse"
    assert pressed.kinds[0] == 5, "deferred within Discord's 3 seconds"
    assert result.id != source.id and result.current.attachments[0].data == JPEG
    assert result.current.content == "Reroll by <@222>"
    assert result.current.embeds[0]["title"].endswith(f"· seed {again['seed']}")
    assert result.current.custom_ids and result.current.custom_ids != source.current.custom_ids
    await settled_report(ledger, scope_of(fake))
    assert await spent(ledger, fake, BOB) == IMAGE_COST
    assert await spent(ledger, fake, ALICE) == IMAGE_COST, "the requester pays only for her own image"


async def test_edit_opens_a_modal_whose_instruction_edits_the_image(
    fake: FakeDiscord, start_bot: StartBot, ledger: Ledger, fake_bfl: FakeBfl, http: httpx.AsyncClient
) -> None:
    await start_bot(studio_engine(ledger, image=bfl(fake_bfl, http)))
    source = await imagine(fake, "a lighthouse")
    await settled_report(ledger, scope_of(fake))
    edit = button(source, Action.EDIT)

    asked = await fake.press(source.id, edit, user=BOB)
    await answered(fake, asked)
    [modal] = asked.callbacks
    assert modal["type"] == 9 and modal["data"]["custom_id"] == edit
    assert not fake_bfl.requests("/v1/flux-kontext-pro"), "nothing runs before the instruction"

    submitted = await fake.submit(edit, {"instruction": "make it night"}, user=BOB, message_id=source.id)
    result = await delivered(fake, submitted)

    [kontext] = fake_bfl.requests("/v1/flux-kontext-pro")
    assert kontext.body["prompt"] == "make it night"
    assert kontext.body["input_image"] == base64.b64encode(JPEG).decode()
    assert result.current.content == "Edit by <@222>"
    await settled_report(ledger, scope_of(fake))
    assert await spent(ledger, fake, BOB) == PRICES.edit


async def test_vary_offers_subtle_or_strong_privately_then_draws_a_variation(
    fake: FakeDiscord, start_bot: StartBot, ledger: Ledger
) -> None:
    await start_bot(studio_engine(ledger))
    source = await imagine(fake, "a lighthouse")
    job = button(source, Action.VARY).rsplit(":", 1)[1]

    asked = await fake.press(source.id, button(source, Action.VARY), user=BOB)
    await fake.wait_until(lambda: any(m.interaction_token == asked.token for m in fake.messages.values()))
    chooser = private_reply(fake, asked)
    assert chooser.current.custom_ids == [f"studio-vary:subtle:{job}", f"studio-vary:strong:{job}"]

    chosen = await fake.press(chooser.id, f"studio-vary:strong:{job}", user=BOB)
    result = await delivered(fake, chosen)

    assert result.current.content == "Vary (strong) by <@222>" and not result.ephemeral
    assert result.current.attachments[0].data != source.current.attachments[0].data
    await settled_report(ledger, scope_of(fake))
    assert await spent(ledger, fake, BOB) == PRICES.vary


async def test_a_button_pressed_after_a_restart_works(
    fake: FakeDiscord, start_bot: StartBot, ledger: Ledger, database_url: str
) -> None:
    first = await start_bot(studio_engine(ledger))
    source = await imagine(fake, "a lighthouse")
    await settled_report(ledger, scope_of(fake))
    first.cancel()
    await fake.wait_until(lambda: first.done())

    reopened = await Ledger.open(database_url, default_limit=DEFAULT_LIMIT)
    try:
        await start_bot(studio_engine(reopened), reopened)
        pressed = await fake.press(source.id, button(source, Action.UPSCALE), user=BOB)
        result = await delivered(fake, pressed)
        assert size(result.current.attachments[0].data) == tuple(
            2 * side for side in size(source.current.attachments[0].data)
        )
        await settled_report(reopened, scope_of(fake))
        assert await spent(reopened, fake, BOB) == PRICES.upscale
    finally:
        await reopened.close()


async def test_a_presser_over_their_cap_is_refused_privately_and_charged_nothing(
    fake: FakeDiscord, start_bot: StartBot, capped: Ledger
) -> None:
    await start_bot(studio_engine(capped), capped)
    source = await imagine(fake, "a lighthouse")
    await imagine(fake, "bob's own", user=BOB)  # bob has used his whole cap
    await settled_report(capped, scope_of(fake))

    pressed = await fake.press(source.id, button(source, Action.REROLL), user=BOB)
    await fake.wait_until(
        lambda: any(m.interaction_token == pressed.token and m.ephemeral for m in fake.messages.values())
    )

    refusal = private_reply(fake, pressed)
    assert refusal.current.flags & EPHEMERAL and "cap" in refusal.current.description.lower()
    assert delivered_by(fake, pressed) is None
    assert await spent(capped, fake, BOB) == IMAGE_COST


async def test_an_expired_source_is_refused_privately_and_its_buttons_disabled_for_everyone(
    fake: FakeDiscord, start_bot: StartBot, database_url: str
) -> None:
    clock = FakeClock()
    dated = await Ledger.open(database_url, default_limit=DEFAULT_LIMIT, clock=clock)
    try:
        await start_bot(studio_engine(dated), dated)
        source = await imagine(fake, "a lighthouse")
        await settled_report(dated, scope_of(fake))
        await clock.advance(timedelta(days=8).total_seconds())

        pressed = await fake.press(source.id, button(source, Action.VARY), user=BOB)
        await fake.wait_until(
            lambda: any(m.interaction_token == pressed.token for m in fake.messages.values())
        )

        assert pressed.kinds == [7], "the pressed message itself is updated"
        refusal = private_reply(fake, pressed)
        assert (
            "expired" in refusal.current.description and "Nothing was charged" in refusal.current.description
        )
        [row] = source.current.components
        shown = {item["label"]: bool(item.get("disabled")) for item in row["components"]}
        assert shown == {"Reroll": False, "Vary": True, "Upscale": True, "Edit": True, "Delete": False}
        assert "Vary, Upscale and Edit expired after 7 days" in source.current.content
        assert source.current.attachments and source.current.embeds, "the image stays as it was"
        assert delivered_by(fake, pressed) is None
        assert await spent(dated, fake, BOB) == 0

        again = await fake.press(source.id, button(source, Action.REROLL), user=BOB)
        result = await delivered(fake, again)
        assert result.current.content == "Reroll by <@222>"
        await settled_report(dated, scope_of(fake))
        assert await spent(dated, fake, BOB) == IMAGE_COST
    finally:
        await dated.close()


async def test_a_presser_refused_for_their_own_reasons_leaves_the_buttons_alone(
    fake: FakeDiscord, start_bot: StartBot, capped: Ledger
) -> None:
    await start_bot(studio_engine(capped), capped)
    source = await imagine(fake, "a lighthouse")
    await imagine(fake, "bob's own", user=BOB)  # bob has used his whole cap
    await settled_report(capped, scope_of(fake))
    before = list(source.versions)

    pressed = await fake.press(source.id, button(source, Action.REROLL), user=BOB)
    await fake.wait_until(
        lambda: any(m.interaction_token == pressed.token and m.ephemeral for m in fake.messages.values())
    )

    assert 7 not in pressed.kinds
    assert source.versions == before, "a refusal for one presser changes nothing for everyone"
    assert not any(item.get("disabled") for row in source.current.components for item in row["components"])


async def test_delete_is_for_the_requester_or_an_admin(
    fake: FakeDiscord, start_bot: StartBot, ledger: Ledger
) -> None:
    await start_bot(studio_engine(ledger))
    source, other = await imagine(fake, "one"), await imagine(fake, "two")

    refused = await fake.press(source.id, button(source, Action.DELETE), user=BOB)
    await answered(fake, refused)
    assert "Only the person who asked" in private_reply(fake, refused).current.description
    assert not source.deleted

    removed = await fake.press(source.id, button(source, Action.DELETE), user=ALICE)
    await fake.wait_until(lambda: source.deleted)
    assert removed.kinds == [6]

    await fake.press(other.id, button(other, Action.DELETE), user=BOB, permissions=MANAGE_GUILD)
    await fake.wait_until(lambda: other.deleted)

    job = button(source, Action.REROLL).rsplit(":", 1)[1]
    gone = await fake.press(source.id, action_id(Action.REROLL, job), user=BOB)
    await answered(fake, gone)
    assert "deleted" in private_reply(fake, gone).current.description


async def test_a_song_offers_another_take(fake: FakeDiscord, start_bot: StartBot, ledger: Ledger) -> None:
    await start_bot(studio_engine(ledger))
    await fake.slash("song", [{"name": "prompt", "type": 3, "value": "a sea shanty"}], user=ALICE)
    await fake.wait_until(lambda: any(m.current.custom_ids for m in fake.channel_messages()))
    [song] = [m for m in fake.channel_messages() if m.current.custom_ids]
    assert [str(parse_action_id(c)) for c in song.current.custom_ids] == [
        str((action, song.current.custom_ids[0].rsplit(":", 1)[1]))
        for action in (Action.ANOTHER, Action.DELETE)
    ]

    pressed = await fake.press(song.id, button(song, Action.ANOTHER), user=BOB)
    await fake.wait_until(lambda: sum(1 for m in fake.channel_messages() if m.current.custom_ids) == 2)

    [anchor] = [m for m in fake.messages.values() if m.interaction_token == pressed.token]
    assert anchor.current.content.startswith("Another take by <@222>")
    await settled_report(ledger, scope_of(fake))
    assert await spent(ledger, fake, BOB) == SONG_COST


async def test_a_bad_seed_is_explained_privately_and_costs_nothing(
    fake: FakeDiscord, start_bot: StartBot, ledger: Ledger
) -> None:
    await start_bot(studio_engine(ledger))
    options = [{"name": "prompt", "type": 3, "value": "a fox"}, {"name": "seed", "type": 3, "value": "abc"}]
    asked = await fake.slash("imagine", options, user=ALICE)
    await answered(fake, asked)

    assert asked.kinds == [4]
    assert "isn't a seed" in private_reply(fake, asked).current.description
    assert await spent(ledger, fake, ALICE) == 0


async def test_an_image_drawn_for_a_mention_carries_working_buttons(
    fake: FakeDiscord, start_bot: StartBot, ledger: Ledger
) -> None:
    await start_bot(studio_engine(ledger))
    asked = await fake.mention("draw a lighthouse", author=ALICE)
    await fake.wait_until(lambda: any(m.current.custom_ids for m in fake.channel_messages()))
    [source] = [m for m in fake.channel_messages() if m.current.custom_ids]
    assert source.reference == asked and source.interaction_token is None

    pressed = await fake.press(source.id, button(source, Action.REROLL), user=BOB)
    result = await delivered(fake, pressed)

    assert result.current.content == "Reroll by <@222>" and result.current.custom_ids
    await settled_report(ledger, scope_of(fake))
    assert await spent(ledger, fake, BOB) == IMAGE_COST


async def test_a_mention_with_a_picture_and_an_instruction_edits_that_picture(
    fake: FakeDiscord, start_bot: StartBot, ledger: Ledger, fake_bfl: FakeBfl, http: httpx.AsyncClient
) -> None:
    cdn = AttachmentReader.of(http, hosts=["127.0.0.1"], service="Discord")
    await start_bot(studio_engine(ledger, image=bfl(fake_bfl, http)), attachments=cdn)
    picture = fake.attachment("harbour.jpg", JPEG, content_type="image/jpeg")

    await fake.mention("make this a watercolour", author=ALICE, attachments=[picture])
    await fake.wait_until(lambda: any(m.current.custom_ids for m in fake.channel_messages()))

    [kontext] = fake_bfl.requests("/v1/flux-kontext-pro")
    assert kontext.body["prompt"] == "make this a watercolour"
    assert kontext.body["input_image"] == base64.b64encode(JPEG).decode()
    assert not fake_bfl.requests("/v1/flux-pro-1.1"), "an edit of the picture, not a new image"
    await settled_report(ledger, scope_of(fake))
    assert await spent(ledger, fake, ALICE) == PRICES.edit
