"""``/imagine`` with a reference picture (its ``reference`` attachment option) through the real
discord.py client: the file is read from the fake Discord CDN and sent to the fake BFL as the
input image of a Kontext edit; a file from elsewhere, too large or not a picture is refused
privately and costs nothing."""

from __future__ import annotations

import base64

import httpx
import pytest

from core.attachments import AttachmentReader
from core.ledger import Ledger
from core.parts import Scope
from tests.discord.conftest import StartBot, settled_report
from tests.discord.test_buttons import ALICE, PRICES, bfl, delivered, private_reply, spent, studio_engine
from tests.fakes.fake_bfl import JPEG, FakeBfl
from tests.fakes.fake_discord import FakeDiscord, FakeInteraction

Json = dict[str, object]


def cdn(http: httpx.AsyncClient, **limits: int) -> AttachmentReader:
    """The fake's CDN stands in for Discord's: its host is the only one allowed."""
    return AttachmentReader.of(http, hosts=["127.0.0.1"], service="Discord", **limits)


async def imagine_with(fake: FakeDiscord, prompt: str, picture: Json) -> FakeInteraction:
    """``/imagine prompt reference:<picture>``, with the file in ``resolved`` as Discord sends it."""
    options: list[Json] = [
        {"name": "prompt", "type": 3, "value": prompt},
        {"name": "reference", "type": 11, "value": picture["id"]},
    ]
    return await fake.slash(
        "imagine", options, user=ALICE, resolved={"attachments": {str(picture["id"]): picture}}
    )


async def test_imagine_with_a_reference_edits_that_picture_and_charges_the_edit(
    fake: FakeDiscord, start_bot: StartBot, ledger: Ledger, fake_bfl: FakeBfl, http: httpx.AsyncClient
) -> None:
    await start_bot(studio_engine(ledger, image=bfl(fake_bfl, http)), attachments=cdn(http))
    picture = fake.attachment("harbour.jpg", JPEG, content_type="image/jpeg")

    result = await delivered(fake, await imagine_with(fake, "the harbour at night", picture))

    assert fake.cdn_requests == ["harbour.jpg"]
    [kontext] = fake_bfl.requests("/v1/flux-kontext-pro")
    assert kontext.body["prompt"] == "the harbour at night"
    assert kontext.body["input_image"] == base64.b64encode(JPEG).decode()
    assert not fake_bfl.requests("/v1/flux-pro-1.1"), "the reference is edited, not ignored"
    assert result.current.attachments and result.current.custom_ids
    await settled_report(ledger, Scope("discord", fake.guild_id))
    assert await spent(ledger, fake, ALICE) == PRICES.edit


@pytest.mark.parametrize("problem", ["foreign host", "over the cap", "a text file", "not really a picture"])
async def test_a_reference_that_cannot_be_used_is_refused_privately_without_charge(
    problem: str,
    fake: FakeDiscord,
    start_bot: StartBot,
    ledger: Ledger,
    fake_bfl: FakeBfl,
    http: httpx.AsyncClient,
) -> None:
    reader = cdn(http, max_image_bytes=100)
    await start_bot(studio_engine(ledger, image=bfl(fake_bfl, http)), attachments=reader)
    small = JPEG[:60]
    if problem == "foreign host":
        elsewhere = f"http://localhost:{fake.port}/cdn/harbour.jpg"
        picture = fake.attachment("harbour.jpg", small, content_type="image/jpeg", url=elsewhere)
        says, fetched = "I only read attachments stored on Discord itself", []
    elif problem == "over the cap":
        picture = fake.attachment("harbour.jpg", JPEG, content_type="image/jpeg")
        says, fetched = "`harbour.jpg` is larger than the 100 bytes", []
    elif problem == "a text file":
        picture = fake.attachment("notes.txt", b"a harbour", content_type="text/plain")
        says, fetched = "`notes.txt` isn't a picture", []
    else:
        picture = fake.attachment("harbour.png", b"<html>not a png</html>", content_type="image/png")
        says, fetched = "`harbour.png` isn't a PNG, JPEG or WebP image", ["harbour.png"]

    asked = await imagine_with(fake, "the harbour at night", picture)
    await fake.wait_until(lambda: bool(asked.callbacks))

    refusal = private_reply(fake, asked).current.embeds[0]["description"]
    assert says in refusal and "Nothing was charged." in refusal
    assert fake.cdn_requests == fetched
    assert fake_bfl.requests("/v1/flux-kontext-pro") == [] and fake_bfl.requests("/v1/flux-pro-1.1") == []
    assert (await ledger.report(Scope("discord", fake.guild_id))).recent == []


async def test_flags_typed_in_a_mention_reach_the_provider_like_imagines(
    fake: FakeDiscord, start_bot: StartBot, ledger: Ledger, fake_bfl: FakeBfl, http: httpx.AsyncClient
) -> None:
    await start_bot(studio_engine(ledger, image=bfl(fake_bfl, http)))

    await fake.mention("draw a lighthouse --ar 16:9 --seed 7", author=ALICE)
    await fake.wait_until(lambda: any(m.current.custom_ids for m in fake.channel_messages()))

    [drawn] = fake_bfl.requests("/v1/flux-pro-1.1")
    assert (drawn.body["prompt"], drawn.body["seed"]) == ("a lighthouse", 7)
    assert drawn.body["width"] / drawn.body["height"] > 1.7
    [message] = [m for m in fake.channel_messages() if m.current.custom_ids]
    assert message.current.embeds[0]["title"].endswith("· seed 7")
