"""Slash commands /imagine, /song and /research through the real discord.py client and the fake."""

from __future__ import annotations

import io
import json
import re
from collections.abc import AsyncIterator

from PIL import Image as PILImage

from core.clock import Clock
from core.demo import DemoChatGenerator, DemoImageGenerator, DemoResearchGenerator, DemoSongGenerator
from core.engine import Engine
from core.errors import GenerationError
from core.generator import Generator
from core.ledger import Ledger
from core.parts import GeneratorPart, Intent, Request, Scope, Status, TextDelta
from core.render import STREAMING_MARKER
from tests.conftest import CHAT_COST, IMAGE_COST, RESEARCH_COST, SONG_COST
from tests.discord.conftest import AutoClock, StartBot, settled_report, within_edit_limit
from tests.fakes.fake_discord import EPHEMERAL, LOADING, FakeDiscord, FakeInteraction

GREEN, RED = 0x1F8B4C, 0xE74C3C
ALICE = FakeDiscord.user("111", "alice")


def prompt(text: str) -> list[dict[str, object]]:
    return [{"name": "prompt", "type": 3, "value": text}]


def engine_with(ledger: Ledger, **generators: Generator) -> Engine:
    """The demo engine, with some generators swapped for the test's own."""
    chosen: dict[Intent, Generator] = {
        Intent.IMAGE: DemoImageGenerator(cost=IMAGE_COST),
        Intent.SONG: DemoSongGenerator(cost=SONG_COST, delay_s=0),
        Intent.RESEARCH: DemoResearchGenerator(cost=RESEARCH_COST, delay_s=0),
        Intent.CHAT: DemoChatGenerator(cost=CHAT_COST, delay_s=0),
    }
    chosen.update({Intent(name): generator for name, generator in generators.items()})
    return Engine(ledger=ledger, generators=chosen)


def first_call_for(fake: FakeDiscord, interaction: FakeInteraction) -> str:
    return next(
        call.path for call in fake.calls if interaction.token in call.path or interaction.id in call.path
    )


async def test_imagine_defers_then_shows_the_image_in_an_embed(
    fake: FakeDiscord, start_bot: StartBot, ledger: Ledger
) -> None:
    await start_bot()
    interaction = await fake.slash("imagine", prompt("a red fox"), user=ALICE)
    await fake.wait_until(lambda: any(m.current.attachments for m in fake.channel_messages()))

    assert first_call_for(fake, interaction).endswith("/callback"), "the deferral comes first"
    assert interaction.callbacks[0]["type"] == 5
    [message] = fake.channel_messages()
    assert message.id == interaction.original
    assert message.versions[0].flags & LOADING, "a thinking placeholder"
    final = message.current
    [image] = final.attachments
    assert image.filename == "a-red-fox.png"
    assert image.data.startswith(b"\x89PNG")
    assert final.embeds[0]["image"]["url"] == "attachment://a-red-fox.png"
    assert "a red fox" in final.description
    report = await settled_report(ledger, Scope("discord", fake.guild_id))
    assert report.used == IMAGE_COST


async def test_imagine_options_set_the_aspect_and_seed(fake: FakeDiscord, start_bot: StartBot) -> None:
    await start_bot()
    options = [*prompt("a red fox"), {"name": "aspect", "type": 3, "value": "9:16"}]
    await fake.slash("imagine", [*options, {"name": "seed", "type": 3, "value": "42"}], user=ALICE)
    await fake.wait_until(lambda: any(m.current.attachments for m in fake.channel_messages()))
    [message] = fake.channel_messages()
    [image] = message.current.attachments
    with PILImage.open(io.BytesIO(image.data)) as picture:
        assert picture.width < picture.height
    assert "seed 42" in json.dumps(message.current.embeds)


async def test_song_posts_progress_and_the_audio_as_channel_messages(
    fake: FakeDiscord, start_bot: StartBot, ledger: Ledger, clock: AutoClock
) -> None:
    engine = engine_with(ledger, song=DemoSongGenerator(cost=SONG_COST, delay_s=1.5, clock=clock))
    await start_bot(engine, uploading_notice_bytes=0)
    interaction = await fake.slash("song", prompt("a sea shanty"), user=ALICE)
    await fake.wait_until(lambda: any(m.current.attachments for m in fake.channel_messages()))

    anchor, song = fake.channel_messages()
    assert anchor.id == interaction.original
    assert "Composing for <@111>" in anchor.current.content
    assert song.interaction_token is None, "the song is a channel message, not tied to the interaction token"
    assert song.reference == anchor.id
    progress = [version.description for version in song.versions[:-1]]
    assert any(line.startswith("⏳ Queued") for line in progress)
    assert any(line.startswith("⏳ Writing lyrics") for line in progress)
    assert any(line.startswith("⏳ Composing") for line in progress)
    assert progress[-1] == "⏳ Uploading…"
    final = song.current
    [audio] = final.attachments
    assert audio.filename == "a-sea-shanty.wav"
    assert audio.data.startswith(b"RIFF")
    assert final.embeds[0]["title"] == "🎵 Demo song: a sea shanty"
    assert "[Chorus]" in final.description
    assert within_edit_limit(song.edit_times[1:]), "the edits after the post keep to the channel's limit"
    assert (await settled_report(ledger, Scope("discord", fake.guild_id))).used == SONG_COST


class LongResearch:
    """A long paper streamed a paragraph at a time, 0.3 s of clock time apart."""

    intent = Intent.RESEARCH
    demo = True

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.paragraphs = ["# The transistor"] + [f"Section {n}. " + "Lorem ipsum " * 100 for n in range(10)]

    def estimate(self, prompt: str) -> int:
        return RESEARCH_COST

    async def generate(self, prompt: str, request: Request) -> AsyncIterator[GeneratorPart]:
        for number, paragraph in enumerate(self.paragraphs):
            yield TextDelta(("\n\n" if number else "") + paragraph.strip())
            await self._clock.sleep(0.3)


async def test_research_edits_each_message_at_most_once_a_second_and_splits(
    fake: FakeDiscord, start_bot: StartBot, ledger: Ledger, clock: AutoClock
) -> None:
    research = LongResearch(clock)
    await start_bot(engine_with(ledger, research=research))
    interaction = await fake.slash("research", prompt("the transistor"), user=ALICE)
    await fake.wait_until(lambda: any(m.current.attachments for m in fake.channel_messages()))

    *parts, file_message = fake.channel_messages()
    assert parts[0].id == interaction.original
    assert len(parts) >= 3, "about 12,000 characters need three embeds"
    text = "\n\n".join(p.strip() for p in research.paragraphs)
    assert "\n\n".join(m.current.description for m in parts) == text
    edits: list[float] = []
    for message in parts:
        assert len(message.current.description) <= 4096
        assert not message.current.description.endswith(STREAMING_MARKER)
        # The deferral's "thinking…" placeholder is not content; the first text is the post.
        times = [version.at for version in message.versions if not version.flags & LOADING]
        edits += times[1:]
    assert within_edit_limit(sorted(edits)), "the channel's edits keep to its limit"
    assert any(len(message.versions) > 2 for message in parts), "streamed, not posted whole"
    [upload] = file_message.current.attachments
    assert upload.filename == "the-transistor.md"
    assert upload.data.decode() == text


class FailingImages:
    intent = Intent.IMAGE
    demo = False

    def estimate(self, prompt: str) -> int:
        return IMAGE_COST

    async def generate(self, prompt: str, request: Request) -> AsyncIterator[GeneratorPart]:
        yield Status("Drawing…")
        raise GenerationError(
            "The image service is down right now.", detail="HTTP 503 from the fake provider"
        )


async def test_provider_failure_shows_a_failure_and_refunds(
    fake: FakeDiscord, start_bot: StartBot, ledger: Ledger
) -> None:
    await start_bot(engine_with(ledger, image=FailingImages()))
    await fake.slash("imagine", prompt("a red fox"), user=ALICE)
    await fake.wait_until(lambda: any(m.current.colour == RED for m in fake.channel_messages()))

    [message] = fake.channel_messages()
    assert message.current.description == "⚠️ The image service is down right now. Nothing was charged."
    report = await settled_report(ledger, Scope("discord", fake.guild_id))
    assert report.used == 0
    assert report.held == 0
    assert [row.status for row in report.recent] == ["refunded"]


class CountingImages(DemoImageGenerator):
    def __init__(self) -> None:
        super().__init__(cost=IMAGE_COST)
        self.calls = 0

    async def generate(self, prompt: str, request: Request) -> AsyncIterator[GeneratorPart]:
        self.calls += 1
        async for part in super().generate(prompt, request):
            yield part


async def test_exhausted_budget_is_refused_privately_without_generating(
    fake: FakeDiscord, start_bot: StartBot, ledger: Ledger
) -> None:
    images = CountingImages()
    scope = Scope("discord", fake.guild_id)
    await ledger.set_limit(scope, IMAGE_COST - 1, by="test")
    await start_bot(engine_with(ledger, image=images))
    interaction = await fake.slash("imagine", prompt("a red fox"), user=ALICE)
    await fake.wait_until(lambda: any(m.ephemeral for m in fake.channel_messages()))

    original = fake.messages[interaction.original or ""]
    assert original.deleted, "the public thinking placeholder is removed"
    [notice] = [m for m in fake.channel_messages() if m.ephemeral]
    assert notice.current.flags & EPHEMERAL
    assert "can't cover an image ($0.04)" in notice.current.description
    assert "resets on" in notice.current.description
    assert images.calls == 0
    report = await ledger.report(scope)
    assert (report.used, report.held, report.recent) == (0, 0, [])


async def test_file_over_the_interaction_upload_limit_gets_a_clear_message(
    fake: FakeDiscord, start_bot: StartBot, ledger: Ledger
) -> None:
    await start_bot()
    await fake.slash("imagine", prompt("a red fox"), user=ALICE, attachment_size_limit=1000)
    await fake.wait_until(lambda: any(m.current.colour == RED for m in fake.channel_messages()))

    [message] = fake.channel_messages()
    assert message.current.attachments == ()
    assert re.fullmatch(
        r"⚠️ The image is \d+ KB, over the 1 KB upload limit here, so I can't attach it\.",
        message.current.description,
    )


async def test_slash_commands_are_synced_per_guild_or_globally(
    fake: FakeDiscord, start_bot: StartBot
) -> None:
    await start_bot(guild_ids=(int(fake.guild_id),))
    commands = {command["name"]: command for command in fake.synced[fake.guild_id]}
    assert set(commands) == {"imagine", "song", "research", "budget", "access", "summary", "forget", "help"}
    # Every member may see their own line of /budget; /access is for Manage Server alone.
    assert commands["budget"]["default_member_permissions"] is None
    assert int(commands["access"]["default_member_permissions"]) == 1 << 5, "Manage Server"
    budget = {option["name"]: option for option in commands["budget"]["options"]}
    assert set(budget) == {"show", "set", "reset", "users", "user", "user-default", "dashboard"}
    assert [(o["name"], o["type"]) for o in budget["user"]["options"]] == [("member", 6), ("amount", 3)]
    access = {option["name"]: option for option in commands["access"]["options"]}
    assert set(access) == {"show", "channel", "mode", "role", "service"}, "roles, not member lists"
    assert [(o["name"], o["type"]) for o in access["role"]["options"]] == [("role", 8), ("action", 3)]
    state, channel = access["channel"]["options"]
    assert [choice["value"] for choice in state["choices"]] == ["on", "off"]
    assert (channel["name"], channel["type"], channel.get("required", False)) == ("channel", 7, False)
    assert commands["imagine"]["options"][0]["name"] == "prompt"
    aspect, seed, reference = commands["imagine"]["options"][1:]
    assert (aspect["name"], seed["name"], aspect.get("required"), seed.get("required")) == (
        "aspect",
        "seed",
        False,
        False,
    )
    assert (reference["name"], reference["type"], reference.get("required")) == ("reference", 11, False)
    assert [choice["value"] for choice in aspect["choices"]] == ["1:1", "4:3", "3:4", "16:9", "9:16", "21:9"]
    assert commands["imagine"]["contexts"] == [0], "guild only while DMs are off"


async def test_global_sync_without_guild_ids(fake: FakeDiscord, start_bot: StartBot) -> None:
    await start_bot(budget_visible_to="everyone", allow_dms=True)
    commands = {command["name"]: command for command in fake.synced[None]}
    assert set(commands) == {"imagine", "song", "research", "budget", "access", "summary", "forget", "help"}
    assert commands["budget"]["default_member_permissions"] is None
    assert sorted(commands["imagine"]["contexts"]) == [0, 1]
