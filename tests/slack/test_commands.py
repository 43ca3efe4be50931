"""Slash commands over HTTP mode: an anchor in the channel, the work in its thread."""

from __future__ import annotations

import re

from core.demo import DemoSongGenerator
from core.engine import Engine
from core.ledger import Ledger
from core.money import usd_to_micros
from core.render import MAX_STATUS_CHARS, STREAMING_MARKER
from tests.clock import FakeClock
from tests.conftest import IMAGE_COST, RESEARCH_COST, SONG_COST
from tests.fakes.fake_slack import ALICE, BOT_USER_ID, GENERAL, FakeSlack, Message
from tests.slack.conftest import SCOPE, BrokenImages, LongResearch, StartHttp, engine_with, run_clock_until


def anchor_of(slack: FakeSlack) -> Message:
    [anchor] = slack.top_level(GENERAL)
    return anchor


async def test_imagine_posts_an_anchor_and_uploads_the_image_into_its_thread(
    start_http: StartHttp, engine: Engine, ledger: Ledger, slack: FakeSlack
) -> None:
    harness = await start_http(engine)
    await harness.command("imagine", "a red fox &amp; a <b>crow</b>")

    anchor = anchor_of(slack)
    assert anchor.text == f"<@{ALICE}> used `/imagine`: “a red fox &amp; a &lt;b&gt;crow&lt;/b&gt;”"
    steps = [call.method for call in slack.calls if call.method.startswith("files.")]
    assert steps == ["files.getUploadURLExternal", "files.completeUploadExternal"]
    [upload] = slack.files.values()
    assert upload.data is not None and upload.data.startswith(b"\x89PNG")
    assert (upload.channel, upload.thread_ts) == (GENERAL, anchor.ts)
    assert re.fullmatch(r"Demo image: a red fox & a <b>crow</b> · seed \d+", upload.title or "")
    assert upload.alt_txt == "a red fox & a <b>crow</b>"
    [buttons] = slack.thread(GENERAL, anchor.ts)  # the progress line is gone; the buttons stay
    assert buttons.blocks and buttons.elements()[0]["action_id"].startswith("studio:reroll:")
    assert (await ledger.report(SCOPE)).used == IMAGE_COST


async def test_song_shows_progress_then_uploads_the_track_and_lyrics(
    start_http: StartHttp, ledger: Ledger, slack: FakeSlack
) -> None:
    clock = FakeClock()
    song = DemoSongGenerator(cost=SONG_COST, delay_s=5, clock=clock)
    harness = await start_http(engine_with(ledger, song), clock=clock)
    status, _ = await slack.post_http(harness.url, slack.command("song", "a sea shanty"), form=True)
    assert status == 200
    await run_clock_until(clock, lambda: any(upload.channel for upload in slack.files.values()))
    await harness.bot.drain()

    anchor = anchor_of(slack)
    [progress] = [message for message in slack.messages.values() if message.text.startswith("_⏳")]
    assert progress.deleted and progress.thread_ts == anchor.ts
    assert any("Writing lyrics (demo)… 5 s" in version for version in progress.versions)
    assert any("Composing (demo)… 10 s" in version for version in progress.versions)
    [track] = slack.files.values()
    assert track.filename == "a-sea-shanty.wav" and track.data is not None and track.data[:4] == b"RIFF"
    assert track.title == "Demo song: a sea shanty" and track.thread_ts == anchor.ts
    assert track.initial_comment == "🎵 *Demo song: a sea shanty* (0:07)"
    lyrics, buttons = slack.thread(GENERAL, anchor.ts)
    assert buttons.blocks and not lyrics.blocks
    assert lyrics.text.startswith("**Lyrics**\n\n[Verse]")
    assert (await ledger.report(SCOPE)).used == SONG_COST
    assert len(progress.versions[-1]) <= MAX_STATUS_CHARS + 10


async def test_research_longer_than_a_message_is_split_across_thread_replies(
    start_http: StartHttp, ledger: Ledger, slack: FakeSlack
) -> None:
    paper = LongResearch()
    harness = await start_http(engine_with(ledger, paper))
    await harness.command("research", "the transistor")

    replies = slack.thread(GENERAL, anchor_of(slack).ts)
    assert len(replies) >= 3
    assert all(len(reply.text) <= 3500 and STREAMING_MARKER not in reply.text for reply in replies)
    assert "\n\n".join(reply.text for reply in replies) == paper.text
    assert (await ledger.report(SCOPE)).used == RESEARCH_COST


async def test_a_command_where_the_bot_is_not_a_member_says_how_to_invite_it(
    start_http: StartHttp, engine: Engine, ledger: Ledger, slack: FakeSlack
) -> None:
    slack.outside_channels.add("C0PRIVATE")
    harness = await start_http(engine)
    await harness.command("imagine", "a lighthouse", channel="C0PRIVATE")

    [reply] = slack.responses
    assert reply["response_type"] == "ephemeral"
    assert f"/invite <@{BOT_USER_ID}>" in reply["text"] and "Nothing was charged" in reply["text"]
    assert slack.files == {}
    assert (await ledger.report(SCOPE)).recent == []


async def test_an_empty_prompt_gets_the_usage_privately(
    start_http: StartHttp, engine: Engine, slack: FakeSlack
) -> None:
    harness = await start_http(engine)
    await harness.command("song", "   ")

    [reply] = slack.responses
    assert reply == {
        "text": "Usage: `/song PROMPT`: compose a song with lyrics. Please add a prompt.",
        "response_type": "ephemeral",
    }
    assert slack.calls_to("chat.postMessage") == []


async def test_an_exhausted_budget_generates_nothing_and_charges_nothing(
    start_http: StartHttp, engine: Engine, ledger: Ledger, slack: FakeSlack
) -> None:
    await ledger.set_limit(SCOPE, usd_to_micros("0.01"), by="test")
    harness = await start_http(engine)
    await harness.command("imagine", "a lighthouse")

    [notice] = slack.thread(GENERAL, anchor_of(slack).ts)
    assert notice.text.startswith("⚠️ The budget here can't cover an image ($0.04)")
    assert "Nothing was charged" in notice.text
    assert slack.files == {}
    report = await ledger.report(SCOPE)
    assert (report.used, report.held, report.recent) == (0, 0, [])


async def test_a_provider_failure_is_explained_and_refunded(
    start_http: StartHttp, ledger: Ledger, slack: FakeSlack
) -> None:
    harness = await start_http(engine_with(ledger, BrokenImages()))
    await harness.command("imagine", "a lighthouse")

    [notice] = slack.thread(GENERAL, anchor_of(slack).ts)
    assert (
        notice.text == "⚠️ The image service is down right now; please try again later. Nothing was charged."
    )
    report = await ledger.report(SCOPE)
    assert (report.used, report.held) == (0, 0)
    assert [row.status for row in report.recent] == ["refunded"]


async def test_a_failed_delivery_is_reported_in_the_thread_and_the_paid_image_is_charged_and_kept(
    start_http: StartHttp, engine: Engine, ledger: Ledger, slack: FakeSlack
) -> None:
    slack.unsupported.add("files.completeUploadExternal")
    harness = await start_http(engine)
    await harness.command("imagine", "a lighthouse")

    [notice] = slack.thread(GENERAL, anchor_of(slack).ts)
    assert notice.text.startswith("⚠️ I couldn't post all of this reply (`unknown_method`).")
    report = await ledger.report(SCOPE)
    # The provider made (and billed) the image before the upload failed (issue 15, item 1).
    assert (report.used, report.held) == (IMAGE_COST, 0)
    assert [row.status for row in report.recent] == ["charged"]


async def test_imagine_explains_that_a_reference_picture_comes_with_a_mention_on_slack(
    start_http: StartHttp, engine: Engine, ledger: Ledger, slack: FakeSlack
) -> None:
    harness = await start_http(engine)
    await harness.command("imagine", "the harbour at night --ref harbour.png")
    await harness.command("imagine", "")

    ref, usage = (reply["text"] for reply in slack.responses)
    assert all(reply["response_type"] == "ephemeral" for reply in slack.responses)
    assert ref.startswith("`--ref` reads a file on the bot's own computer")
    assert "on Slack, mention me with the picture attached" in ref and "Nothing was charged." in ref
    assert "on Slack, mention me with the picture attached" in usage
    assert slack.calls_to("chat.postMessage") == [] and slack.files == {}
    assert (await ledger.report(SCOPE)).recent == []
