"""Songs against fake udioapi and suno-api servers: submit once, poll on the clock, download, settle."""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import pytest

from core.ledger import Ledger
from core.parts import Audio, Intent, Request
from core.providers import SongGenerator, SunoApi, UdioApi
from tests.fakes.fake_songs import COVER, KEY, LYRICS, MP3, FakeSunoApi, FakeUdio
from tests.fakes.provider_server import Reply
from tests.providers.conftest import POLICY, SCOPE, InstantClock, ask, engine_with, until_checkpoint

COST = 50_000


def udio(
    fake: FakeUdio, http: httpx.AsyncClient, clock: InstantClock, *, timeout_s: float = 600
) -> SongGenerator:
    api = UdioApi(
        http=http, clock=clock, api_url=fake.base_url, api_key=KEY, model="chirp-v3-5", policy=POLICY
    )
    return SongGenerator(
        api=api, http=http, clock=clock, poll_s=5, timeout_s=timeout_s, cost=COST, policy=POLICY
    )


def suno(fake: FakeSunoApi, http: httpx.AsyncClient, clock: InstantClock) -> SongGenerator:
    api = SunoApi(
        http=http, clock=clock, api_url=fake.origin, api_key=None, model="chirp-v3-5", policy=POLICY
    )
    return SongGenerator(api=api, http=http, clock=clock, poll_s=5, timeout_s=600, cost=COST, policy=POLICY)


def audio_of(parts: Sequence[object]) -> Audio:
    (audio,) = [part for part in parts if isinstance(part, Audio)]
    return audio


async def test_a_udioapi_song_is_polled_downloaded_with_cover_and_charged(
    ledger: Ledger, fake_udio: FakeUdio, http: httpx.AsyncClient, clock: InstantClock
) -> None:
    outcome = await ask(
        engine_with(ledger, udio(fake_udio, http, clock)), "a sea shanty about cats", Intent.SONG
    )

    assert outcome.failure is None
    audio = audio_of(outcome.parts)
    assert (audio.data, audio.mime_type, audio.filename) == (MP3, "audio/mpeg", "cats-at-sea.mp3")
    assert (audio.title, audio.lyrics, audio.duration_s) == ("Cats at Sea", LYRICS, 146.08)
    assert audio.cover is not None and audio.cover.data == COVER and audio.cover.mime_type == "image/jpeg"
    (submit,) = fake_udio.requests("/api/generate")
    assert submit.headers["Authorization"] == f"Bearer {KEY}"
    assert submit.body == {
        "gpt_description_prompt": "a sea shanty about cats",
        "model": "chirp-v3-5",
        "make_instrumental": False,
    }
    assert len(fake_udio.requests("/api/feed")) == 4 and clock.sleeps == [5, 5, 5, 5]
    assert outcome.statuses == [
        "Sending to the song service…",
        "Queued… 0 s",
        "Queued… 5 s",
        "Lyrics written, composing… 10 s",
        "First take ready, finishing… 15 s",
        "Downloading the song…",
    ]
    row = outcome.row("song")
    assert (row.status, row.charged) == ("charged", COST)


async def test_a_song_that_never_completes_times_out_refunded_and_not_resubmitted(
    ledger: Ledger, fake_udio: FakeUdio, http: httpx.AsyncClient, clock: InstantClock
) -> None:
    fake_udio.feed.clear()
    fake_udio.feed.append("text")
    started = clock.now()

    outcome = await ask(
        engine_with(ledger, udio(fake_udio, http, clock)), "a sea shanty about cats", Intent.SONG
    )

    assert outcome.failure == (
        "The song still wasn't finished after 10 min 00 s, so I stopped waiting. I haven't resubmitted it. "
        "Nothing was charged."
    )
    assert clock.now() - started == pytest.approx(600)
    assert len(fake_udio.requests("/api/generate")) == 1 and len(fake_udio.requests("/api/feed")) == 120
    assert outcome.statuses[-1] == "Lyrics written, composing… 10 min 00 s"
    assert outcome.row("song").status == "refunded"


@pytest.mark.parametrize(
    ("fail_message", "moderated"),
    [("GPU quota exceeded", False), ("The prompt violates our content policy", True)],
)
async def test_a_failed_song_is_explained_and_refunded(
    ledger: Ledger,
    fake_udio: FakeUdio,
    http: httpx.AsyncClient,
    clock: InstantClock,
    fail_message: str,
    moderated: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake_udio.fail_message = fail_message

    outcome = await ask(engine_with(ledger, udio(fake_udio, http, clock)), "a sea shanty", Intent.SONG)

    # The service's own words reach the logs only (issue 15, item 10).
    verb = "declined this song on content grounds" if moderated else "couldn't make this song"
    assert outcome.failure == f"The song service {verb}. Nothing was charged."
    assert fail_message in caplog.text
    assert outcome.row("song").status == "refunded"


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (
            Reply(401, {"code": 401, "message": "invalid api key"}),
            "The song service rejected the bot's credentials (HTTP 401). "
            "An admin needs to check its API key.",
        ),
        (
            Reply(402, {"code": 402, "message": "insufficient credits"}),
            "The song service account is out of credits. An admin needs to top it up.",
        ),
        (
            Reply(429, {"message": "slow down"}, {"retry-after": "120"}),
            "The song service is busy right now (too many requests). Please try again in 2 minutes.",
        ),
        (
            Reply(500, "oops"),
            "The song service is having trouble (HTTP 500). Please try again in a few minutes.",
        ),
        (
            Reply(200, {"code": 400, "message": "prompt too long"}),
            "The song service refused the request.",
        ),
        (Reply(200, "not json at all"), "The song service sent a reply I couldn't read."),
    ],
    ids=["401", "402", "429", "500", "code-400", "malformed"],
)
async def test_a_failed_submission_is_reported_once(
    ledger: Ledger,
    fake_udio: FakeUdio,
    http: httpx.AsyncClient,
    clock: InstantClock,
    reply: Reply,
    message: str,
) -> None:
    fake_udio.submits.append(reply)

    outcome = await ask(engine_with(ledger, udio(fake_udio, http, clock)), "a sea shanty", Intent.SONG)

    assert outcome.failure == f"{message} Nothing was charged."
    assert len(fake_udio.requests("/api/generate")) == 1 and fake_udio.requests("/api/feed") == []
    assert outcome.row("song").status == "refunded"


async def test_transient_feed_errors_are_retried_and_the_song_still_arrives(
    ledger: Ledger, fake_udio: FakeUdio, http: httpx.AsyncClient, clock: InstantClock
) -> None:
    fake_udio.feed.clear()
    fake_udio.feed.extend(["new", Reply(503), Reply(429, {}, {"retry-after": "2"}), "complete"])

    outcome = await ask(engine_with(ledger, udio(fake_udio, http, clock)), "a sea shanty", Intent.SONG)

    assert outcome.failure is None and audio_of(outcome.parts).data == MP3
    assert 2.0 in clock.sleeps and len(fake_udio.requests("/api/generate")) == 1


async def test_a_missing_audio_file_is_refunded(
    ledger: Ledger, fake_udio: FakeUdio, http: httpx.AsyncClient, clock: InstantClock
) -> None:
    fake_udio.audio = "expired.mp3"

    outcome = await ask(engine_with(ledger, udio(fake_udio, http, clock)), "a sea shanty", Intent.SONG)

    assert outcome.failure == (
        "The finished song couldn't be downloaded: the song service's link had expired or was missing. "
        "Nothing was charged."
    )
    assert outcome.row("song").status == "refunded"


async def test_a_missing_cover_still_delivers_the_song(
    ledger: Ledger, fake_udio: FakeUdio, http: httpx.AsyncClient, clock: InstantClock
) -> None:
    fake_udio.cover = "gone.jpg"

    outcome = await ask(engine_with(ledger, udio(fake_udio, http, clock)), "a sea shanty", Intent.SONG)

    audio = audio_of(outcome.parts)
    assert audio.data == MP3 and audio.cover is None
    assert outcome.row("song").status == "charged"


async def test_suno_api_waits_for_complete_not_streaming(
    ledger: Ledger, fake_suno: FakeSunoApi, http: httpx.AsyncClient, clock: InstantClock
) -> None:
    outcome = await ask(engine_with(ledger, suno(fake_suno, http, clock)), "a sea shanty", Intent.SONG)

    audio = audio_of(outcome.parts)
    assert audio.data == MP3 and audio.lyrics == LYRICS and audio.cover is not None
    assert fake_suno.requests("/media/live-stream.mp3") == []
    (submit,) = fake_suno.requests("/api/generate")
    assert submit.body == {
        "prompt": "a sea shanty",
        "make_instrumental": False,
        "model": "chirp-v3-5",
        "wait_audio": False,
    }
    assert "Composing… 15 s" in outcome.statuses
    assert outcome.row("song").status == "charged"


async def test_suno_api_errors_are_refunded(
    ledger: Ledger, fake_suno: FakeSunoApi, http: httpx.AsyncClient, clock: InstantClock
) -> None:
    fake_suno.statuses.clear()
    fake_suno.statuses.extend(["queued", "error"])

    outcome = await ask(engine_with(ledger, suno(fake_suno, http, clock)), "a sea shanty", Intent.SONG)

    assert outcome.failure == ("The song service declined this song on content grounds. Nothing was charged.")
    assert outcome.row("song").status == "refunded"


async def test_submission_yields_a_checkpoint_and_resume_polls_without_resubmitting(
    fake_udio: FakeUdio, http: httpx.AsyncClient, clock: InstantClock
) -> None:
    request = Request(scope=SCOPE, user="u1", text="a sea shanty", intent=Intent.SONG)
    checkpoint = await until_checkpoint(udio(fake_udio, http, clock).generate("a sea shanty", request))
    assert checkpoint.data == {"job": "work-7"} and fake_udio.requests("/api/feed") == []

    resumed = udio(fake_udio, http, clock).resume(checkpoint.data, "a sea shanty", request)
    songs = [part async for part in resumed if isinstance(part, Audio)]

    assert [song.data for song in songs] == [MP3]
    assert len(fake_udio.requests("/api/generate")) == 1 and len(fake_udio.requests("/api/feed")) == 4
