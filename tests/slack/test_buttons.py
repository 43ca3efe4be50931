"""Buttons under delivered images on Slack: Block Kit actions, presses charged to the presser, the
Edit dialog, a press after a restart, caps, expiry and Delete; real slack-bolt against the fake
Slack (signed HTTP, and Socket Mode), real BFL client calls against the fake BFL."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from adapters.slack import SlackBot
from adapters.slack.buttons import INSTRUCTION_BLOCK
from core.conversations import ConversationStore
from core.demo import DemoImageGenerator, DemoSongGenerator
from core.engine import Engine
from core.generator import Generator
from core.ledger import Ledger
from core.parts import Intent
from core.providers import BflImageGenerator
from core.studio import Action, OperationPrices, StudioStore, action_id
from tests.clock import FakeClock
from tests.conftest import DEFAULT_LIMIT, IMAGE_COST, SONG_COST
from tests.fakes.fake_bfl import JPEG, FakeBfl, bfl_images
from tests.fakes.fake_slack import ALICE, GENERAL, FakeSlack, Message
from tests.providers.conftest import InstantClock
from tests.slack.conftest import SCOPE, Harness, http_config
from tests.slack.test_socket_mode import socket_config

BOB = "U0BOB"
PRICES = OperationPrices(vary=30_000, upscale=60_000, edit=45_000)


def studio_engine(ledger: Ledger, image: Generator | None = None) -> Engine:
    return Engine(
        ledger=ledger,
        generators={
            Intent.IMAGE: image or DemoImageGenerator(cost=IMAGE_COST, prices=PRICES),
            Intent.SONG: DemoSongGenerator(cost=SONG_COST, delay_s=0),
        },
        conversations=ConversationStore(ledger.database),
        studio=StudioStore(ledger.database, keep_days=7),
    )


@pytest.fixture(autouse=True)
def bob(slack: FakeSlack) -> None:
    slack.users[BOB] = {"id": BOB, "name": "bob"}


class Studio(Harness):
    """A started HTTP-mode bot, with helpers for images and their buttons."""

    async def imagine(self, prompt: str, *, user: str = ALICE) -> str:
        """Run ``/imagine``; the thread its image went to."""
        before = {message.ts for message in self.slack.top_level(GENERAL)}
        await self.command("imagine", prompt, user=user)
        [note] = [message for message in self.slack.top_level(GENERAL) if message.ts not in before]
        return note.ts

    def buttons(self, thread: str) -> list[Message]:
        return [message for message in self.slack.thread(GENERAL, thread) if message.blocks]

    async def press(
        self, message: Message, action: Action, *, user: str = ALICE, selected: str | None = None
    ) -> tuple[int, str]:
        job = message.elements()[0]["action_id"].rsplit(":", 1)[1]
        payload = self.slack.block_action(message, action_id(action, job), user=user, selected=selected)
        answer = await self.slack.post_http(self.url, {"payload": json.dumps(payload)}, form=True)
        await self.bot.drain()
        return answer

    async def submit(self, view: dict[str, Any], text: str, *, user: str = ALICE) -> tuple[int, str]:
        payload = self.slack.view_submission(view, text, user=user)
        answer = await self.slack.post_http(self.url, {"payload": json.dumps(payload)}, form=True)
        await self.bot.drain()
        return answer


@pytest.fixture
async def running_bots() -> AsyncIterator[list[SlackBot]]:
    bots: list[SlackBot] = []
    yield bots
    for bot in bots:
        await bot.stop()


async def start(
    slack: FakeSlack, engine: Engine, ledger: Ledger, bots: list[SlackBot], **config: Any
) -> Studio:
    bot = SlackBot(http_config(slack, **config), engine=engine, ledger=ledger)
    await bot.start()
    bots.append(bot)
    return Studio(slack, bot)


def bfl(fake_bfl: FakeBfl, http: httpx.AsyncClient) -> BflImageGenerator:
    return bfl_images(fake_bfl, http, cost=IMAGE_COST, prices=PRICES, clock=InstantClock(), attempts=3)


def in_thread(slack: FakeSlack, thread: str) -> list[str]:
    """The files shared in ``thread`` and still there, by id."""
    return [f.id for f in slack.files.values() if f.thread_ts == thread and not f.deleted and f.data]


async def used(ledger: Ledger, user: str) -> int:
    return (await ledger.member_report(SCOPE, user)).used


async def test_an_image_arrives_with_its_buttons(
    slack: FakeSlack, ledger: Ledger, running_bots: list[SlackBot]
) -> None:
    engine = studio_engine(ledger)
    studio = await start(slack, engine, ledger, running_bots)

    thread = await studio.imagine("a lighthouse --ar 16:9 --seed 42")

    [file] = in_thread(slack, thread)
    assert str(slack.files[file].title).endswith("a lighthouse · seed 42")
    [buttons] = studio.buttons(thread)
    elements = buttons.elements()
    job = elements[0]["action_id"].rsplit(":", 1)[1]
    assert [element["action_id"] for element in elements] == [
        f"studio:{action}:{job}" for action in ("reroll", "vary", "upscale", "edit", "delete")
    ]
    reroll, vary, upscale, edit, delete = elements
    assert all(
        e["type"] == "button" and e["value"] == e["action_id"] for e in (reroll, upscale, edit, delete)
    )
    assert vary["type"] == "static_select" and [o["value"] for o in vary["options"]] == ["subtle", "strong"]
    assert delete["confirm"]["confirm"]["text"] == "Delete" and delete["style"] == "danger"
    assert file in buttons.blocks[0]["block_id"]  # what a Delete removes, kept on Slack's side
    recorded = await engine.studio.get(job)
    assert recorded is not None and (recorded.aspect, recorded.seed, recorded.user) == ("16:9", 42, ALICE)


async def test_a_bad_flag_on_imagine_is_answered_privately_and_costs_nothing(
    slack: FakeSlack, ledger: Ledger, running_bots: list[SlackBot]
) -> None:
    studio = await start(slack, studio_engine(ledger), ledger, running_bots)

    await studio.command("imagine", "a cat --ar 5:4")

    [response] = slack.responses
    assert response["response_type"] == "ephemeral" and "isn't an aspect I can draw" in response["text"]
    assert not slack.files and not slack.top_level(GENERAL)
    assert await used(ledger, ALICE) == 0


async def test_reroll_and_edit_by_another_member_call_bfl_and_are_charged_to_them(
    slack: FakeSlack, ledger: Ledger, running_bots: list[SlackBot], fake_bfl: FakeBfl, http: httpx.AsyncClient
) -> None:
    studio = await start(
        slack,
        studio_engine(
            ledger,
            bfl(fake_bfl, http),
        ),
        ledger,
        running_bots,
    )
    thread = await studio.imagine("a lighthouse --ar 16:9 --seed 42")
    [buttons] = studio.buttons(thread)

    assert await studio.press(buttons, Action.REROLL, user=BOB) == (200, "")

    first, reroll = (request.body for request in fake_bfl.requests("/v1/flux-pro-1.1"))
    assert first["seed"] == 42 and reroll["seed"] != 42
    assert (reroll["prompt"], reroll["width"], reroll["height"]) == ("a lighthouse", 1184, 672)
    assert len(in_thread(slack, thread)) == 2 and len(studio.buttons(thread)) == 2
    assert any(message.text == f"Reroll by <@{BOB}>" for message in slack.thread(GENERAL, thread))
    assert (await used(ledger, BOB), await used(ledger, ALICE)) == (IMAGE_COST, IMAGE_COST)

    # Edit: a dialog first; an empty instruction keeps it open with the reason; then the edit.
    await studio.press(buttons, Action.EDIT, user=BOB)
    [view] = slack.views.values()
    assert view["callback_id"] == "studio-edit" and not fake_bfl.requests("/v1/flux-kontext-pro")
    status, body = await studio.submit(view, "   ", user=BOB)
    assert status == 200 and json.loads(body)["response_action"] == "errors"
    assert INSTRUCTION_BLOCK in json.loads(body)["errors"]
    assert not fake_bfl.requests("/v1/flux-kontext-pro") and await used(ledger, BOB) == IMAGE_COST

    assert await studio.submit(view, "make it night", user=BOB) == (200, "")
    [kontext] = fake_bfl.requests("/v1/flux-kontext-pro")
    assert kontext.body["prompt"] == "make it night"
    assert kontext.body["input_image"] == base64.b64encode(JPEG).decode()  # the first image
    assert len(in_thread(slack, thread)) == 3
    assert any(message.text == f"Edit by <@{BOB}>" for message in slack.thread(GENERAL, thread))
    assert await used(ledger, BOB) == IMAGE_COST + PRICES.edit
    assert not slack.ephemerals


async def test_vary_takes_the_strength_chosen_in_its_menu(
    slack: FakeSlack, ledger: Ledger, running_bots: list[SlackBot], fake_bfl: FakeBfl, http: httpx.AsyncClient
) -> None:
    studio = await start(
        slack,
        studio_engine(
            ledger,
            bfl(fake_bfl, http),
        ),
        ledger,
        running_bots,
    )
    thread = await studio.imagine("a lighthouse")
    [buttons] = studio.buttons(thread)

    await studio.press(buttons, Action.VARY, selected="strong")

    # Strong is a Redux-style image prompt; subtle would be Kontext.
    assert fake_bfl.requests("/v1/flux-pro-1.1")[-1].body["image_prompt"] == base64.b64encode(JPEG).decode()
    assert not fake_bfl.requests("/v1/flux-kontext-pro")
    assert await used(ledger, ALICE) == IMAGE_COST + PRICES.vary


async def test_a_press_after_a_restart_works(slack: FakeSlack, database_url: str) -> None:
    first_ledger = await Ledger.open(database_url, default_limit=DEFAULT_LIMIT)
    first = SlackBot(http_config(slack), engine=studio_engine(first_ledger), ledger=first_ledger)
    await first.start()
    thread = await Studio(slack, first).imagine("a lighthouse")
    await first.stop()
    await first_ledger.close()

    ledger = await Ledger.open(database_url, default_limit=DEFAULT_LIMIT)
    bot = SlackBot(http_config(slack), engine=studio_engine(ledger), ledger=ledger)
    await bot.start()
    try:
        studio = Studio(slack, bot)
        [buttons] = studio.buttons(thread)
        await studio.press(buttons, Action.UPSCALE, user=BOB)
        assert len(in_thread(slack, thread)) == 2 and not slack.ephemerals
        assert await used(ledger, BOB) == PRICES.upscale
    finally:
        await bot.stop()
        await ledger.close()


async def test_a_presser_over_their_cap_is_refused_privately_and_not_charged(
    slack: FakeSlack, database_url: str, running_bots: list[SlackBot]
) -> None:
    ledger = await Ledger.open(database_url, default_limit=DEFAULT_LIMIT, member_cap=IMAGE_COST)
    try:
        studio = await start(slack, studio_engine(ledger), ledger, running_bots)
        thread = await studio.imagine("a lighthouse")
        await studio.imagine("bob's own", user=BOB)  # bob has used his whole cap
        [buttons] = studio.buttons(thread)

        await studio.press(buttons, Action.REROLL, user=BOB)

        [refusal] = slack.ephemerals
        assert (refusal.user, refusal.thread_ts) == (BOB, thread) and "cap" in refusal.text.lower()
        assert len(in_thread(slack, thread)) == 1 and len(slack.thread(GENERAL, thread)) == 1
        assert await used(ledger, BOB) == IMAGE_COST
        assert (await ledger.member_report(SCOPE, BOB)).held == 0
    finally:
        for bot in running_bots:
            await bot.stop()
        running_bots.clear()
        await ledger.close()


async def test_an_expired_image_is_refused_privately_while_reroll_still_works(
    slack: FakeSlack, database_url: str, running_bots: list[SlackBot]
) -> None:
    clock = FakeClock()
    ledger = await Ledger.open(database_url, default_limit=DEFAULT_LIMIT, clock=clock)
    try:
        studio = await start(slack, studio_engine(ledger), ledger, running_bots)
        thread = await studio.imagine("a lighthouse")
        other = await studio.imagine("a harbour")
        [buttons], [other_buttons] = studio.buttons(thread), studio.buttons(other)
        block_id = buttons.blocks[0]["block_id"]
        await clock.advance(8 * 86_400)  # past IMAGE_KEEP_DAYS (7)

        await studio.press(buttons, Action.VARY, selected="subtle")
        await studio.press(other_buttons, Action.EDIT)

        assert not slack.views  # no dialog for an image that can't be edited
        assert [e.user for e in slack.ephemerals] == [ALICE, ALICE]
        assert all("expired" in e.text and "Nothing was charged" in e.text for e in slack.ephemerals)
        assert len(in_thread(slack, thread)) == 1 and await used(ledger, ALICE) == 2 * IMAGE_COST
        assert {call.args.get("ts") for call in slack.calls_to("chat.update")} >= {
            buttons.ts,
            other_buttons.ts,
        }
        assert [e["type"] for e in other_buttons.elements()] == ["button", "button"]
        job = buttons.elements()[0]["action_id"].rsplit(":", 1)[1]
        assert [e["action_id"] for e in buttons.elements()] == [
            action_id(Action.REROLL, job),
            action_id(Action.DELETE, job),
        ], "vary, upscale and edit are gone for everyone"
        assert buttons.blocks[0]["block_id"] == block_id, "Delete still knows the files to remove"
        [context] = [block for block in buttons.blocks if block["type"] == "context"]
        assert "Vary, Upscale and Edit expired after 7 days" in context["elements"][0]["text"]

        await studio.press(buttons, Action.REROLL)  # needs only the prompt
        assert len(in_thread(slack, thread)) == 2
    finally:
        for bot in running_bots:
            await bot.stop()
        running_bots.clear()
        await ledger.close()


async def test_delete_is_for_the_requester_and_removes_the_image(
    slack: FakeSlack, ledger: Ledger, running_bots: list[SlackBot]
) -> None:
    engine = studio_engine(ledger)
    studio = await start(slack, engine, ledger, running_bots)
    thread = await studio.imagine("a lighthouse")
    [buttons] = studio.buttons(thread)
    [file] = in_thread(slack, thread)
    deletions = len(slack.calls_to("chat.delete"))  # progress lines so far

    await studio.press(buttons, Action.DELETE, user=BOB)
    [refusal] = slack.ephemerals
    assert refusal.user == BOB and "Only the person who asked" in refusal.text
    assert studio.buttons(thread) == [buttons] and in_thread(slack, thread) == [file]
    assert len(slack.calls_to("chat.delete")) == deletions and not slack.calls_to("files.delete")

    await studio.press(buttons, Action.DELETE)
    assert studio.buttons(thread) == [] and in_thread(slack, thread) == []
    assert [call.args["file"] for call in slack.calls_to("files.delete")] == [file]
    job = buttons.elements()[0]["action_id"].rsplit(":", 1)[1]
    recorded = await engine.studio.get(job)
    assert recorded is not None and recorded.deleted and recorded.data is None
    assert await used(ledger, ALICE) == IMAGE_COST


async def test_an_admin_may_delete_someone_elses_image(
    slack: FakeSlack, ledger: Ledger, running_bots: list[SlackBot]
) -> None:
    studio = await start(slack, studio_engine(ledger), ledger, running_bots, admin_ids=frozenset({BOB}))
    thread = await studio.imagine("a lighthouse")
    [buttons] = studio.buttons(thread)

    await studio.press(buttons, Action.DELETE, user=BOB)

    assert not slack.ephemerals and studio.buttons(thread) == [] and in_thread(slack, thread) == []


async def test_a_song_gets_another_take_and_delete(
    slack: FakeSlack, ledger: Ledger, running_bots: list[SlackBot]
) -> None:
    studio = await start(slack, studio_engine(ledger), ledger, running_bots)
    before = {message.ts for message in slack.top_level(GENERAL)}
    await studio.command("song", "a sea shanty")
    [note] = [message for message in slack.top_level(GENERAL) if message.ts not in before]
    [buttons] = studio.buttons(note.ts)
    assert [e["action_id"].split(":")[1] for e in buttons.elements()] == ["another", "delete"]

    await studio.press(buttons, Action.ANOTHER, user=BOB)
    assert len(studio.buttons(note.ts)) == 2 and await used(ledger, BOB) == SONG_COST


async def test_a_press_over_socket_mode(slack: FakeSlack, engine: Engine, ledger: Ledger) -> None:
    bot = SlackBot(socket_config(slack), engine=engine, ledger=ledger)
    await bot.start()
    try:
        await slack.wait_connected()
        assert await slack.send_envelope("slash_commands", slack.command("imagine", "a lighthouse")) is None
        await bot.drain()
        [note] = slack.top_level(GENERAL)
        [buttons] = [message for message in slack.thread(GENERAL, note.ts) if message.blocks]
        job = buttons.elements()[0]["action_id"].rsplit(":", 1)[1]

        payload = slack.block_action(buttons, action_id(Action.REROLL, job), user=BOB)
        assert await slack.send_envelope("interactive", payload) is None
        await bot.drain()

        assert len([f for f in slack.files.values() if f.thread_ts == note.ts]) == 2
        assert await used(ledger, BOB) == IMAGE_COST
    finally:
        await bot.stop()
