"""Flux images against a fake BFL API: submit once, poll the returned URL, download, settle."""

from __future__ import annotations

import httpx
import pytest

from core.ledger import Ledger
from core.parts import Image, Intent, Request
from core.providers import BflImageGenerator
from tests.fakes.fake_bfl import JPEG, KEY, FakeBfl
from tests.fakes.provider_server import Reply
from tests.providers.conftest import POLICY, SCOPE, InstantClock, ask, engine_with, until_checkpoint

COST = 40_000


def generator(
    fake: FakeBfl, http: httpx.AsyncClient, clock: InstantClock, *, key: str = KEY
) -> BflImageGenerator:
    return BflImageGenerator(
        http=http,
        clock=clock,
        api_url=fake.base_url,
        api_key=key,
        model="flux-pro-1.1",
        width=1024,
        height=768,
        timeout_s=120,
        cost=COST,
        policy=POLICY,
    )


async def test_an_image_is_submitted_polled_downloaded_and_charged(
    ledger: Ledger, fake_bfl: FakeBfl, http: httpx.AsyncClient, clock: InstantClock
) -> None:
    outcome = await ask(engine_with(ledger, generator(fake_bfl, http, clock)), "a lighthouse", Intent.IMAGE)

    assert outcome.failure is None
    (image,) = [part for part in outcome.parts if isinstance(part, Image)]
    assert (image.data, image.mime_type, image.filename) == (JPEG, "image/jpeg", "a-lighthouse.jpg")
    (submit,) = fake_bfl.requests("/v1/flux-pro-1.1")
    assert submit.headers["x-key"] == KEY
    assert submit.body == {
        "prompt": "a lighthouse",
        "width": 1024,
        "height": 768,
        "seed": image.seed,
        "output_format": "jpeg",
    }
    assert isinstance(image.seed, int) and image.title.endswith(f" · seed {image.seed}")
    polls = fake_bfl.requests("/v1/get_result")
    assert len(polls) == 3 and all(poll.query == {"id": "job-1", "token": "signed-123"} for poll in polls)
    assert "x-key" not in fake_bfl.requests("/media/sample.jpg")[0].headers
    assert clock.sleeps == [0.5, 0.75, 1.125]  # growing intervals
    assert outcome.statuses[0] == "Sending to the image service…"
    assert outcome.statuses[1:3] == ["Drawing… 0 s", "Drawing… 1 s"]
    assert outcome.statuses[-1] == "Downloading the image…"
    row = outcome.row("image")
    assert (row.status, row.charged) == ("charged", COST)


@pytest.mark.parametrize(
    ("status", "message"),
    [
        ("Request Moderated", "The image service declined this prompt on content grounds."),
        ("Content Moderated", "The image service's safety filter withheld the finished image."),
        ("Task not found", "The image service lost track of this job."),
        ("Error", "The image service couldn't draw this image."),
    ],
)
async def test_final_statuses_other_than_ready_are_refunded(
    ledger: Ledger, fake_bfl: FakeBfl, http: httpx.AsyncClient, clock: InstantClock, status: str, message: str
) -> None:
    fake_bfl.polls.clear()
    fake_bfl.polls.extend(["Pending", status])

    outcome = await ask(engine_with(ledger, generator(fake_bfl, http, clock)), "a lighthouse", Intent.IMAGE)

    assert outcome.failure == f"{message} Nothing was charged."
    assert outcome.row("image").status == "refunded" and outcome.report.used == 0
    assert fake_bfl.requests("/media/sample.jpg") == []


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (
            Reply(401, {"detail": "Invalid key"}),
            "The image service rejected the bot's credentials (HTTP 401). "
            "An admin needs to check its API key.",
        ),
        (
            Reply(403, {"detail": "Forbidden"}),
            "The image service rejected the bot's credentials (HTTP 403). "
            "An admin needs to check its API key.",
        ),
        (
            Reply(402, {"detail": "Insufficient credits"}),
            "The image service account is out of credits. An admin needs to top it up.",
        ),
        (
            Reply(429, {"detail": "Too many active tasks"}, {"retry-after": "30"}),
            "The image service is busy right now (too many requests). Please try again in 30 s.",
        ),
        (
            Reply(502, "<html>Bad gateway</html>"),
            "The image service is having trouble (HTTP 502). Please try again in a few minutes.",
        ),
        (
            Reply(422, {"detail": "width must be a multiple of 32"}),
            # The provider's own words go to the logs only (issue 15, item 10).
            "The image service refused the request (HTTP 422). "
            "An admin can find its reason in the bot's logs.",
        ),
        (Reply(200, "{not json"), "The image service sent a reply I couldn't read."),
        (Reply(200, {"id": "job-1"}), "The image service sent a reply I couldn't read."),
    ],
    ids=["401", "403", "402", "429", "502", "422", "malformed", "no-polling-url"],
)
async def test_a_failed_submission_is_reported_once_and_never_resent(
    ledger: Ledger,
    fake_bfl: FakeBfl,
    http: httpx.AsyncClient,
    clock: InstantClock,
    reply: Reply,
    message: str,
) -> None:
    fake_bfl.submits.append(reply)

    outcome = await ask(engine_with(ledger, generator(fake_bfl, http, clock)), "a lighthouse", Intent.IMAGE)

    assert outcome.failure == f"{message} Nothing was charged."
    assert len(fake_bfl.requests("/v1/flux-pro-1.1")) == 1
    assert fake_bfl.requests("/v1/get_result") == []
    assert outcome.row("image").status == "refunded"


async def test_a_rate_limited_poll_waits_as_told_and_carries_on(
    ledger: Ledger, fake_bfl: FakeBfl, http: httpx.AsyncClient, clock: InstantClock
) -> None:
    fake_bfl.polls.clear()
    fake_bfl.polls.extend(
        ["Pending", Reply(429, {"detail": "slow down"}, {"retry-after": "3"}), Reply(503), "Ready"]
    )

    outcome = await ask(engine_with(ledger, generator(fake_bfl, http, clock)), "a lighthouse", Intent.IMAGE)

    assert outcome.failure is None and outcome.row("image").status == "charged"
    assert 3.0 in clock.sleeps
    assert len(fake_bfl.requests("/v1/flux-pro-1.1")) == 1


async def test_a_poll_failing_past_its_retries_is_refunded(
    ledger: Ledger, fake_bfl: FakeBfl, http: httpx.AsyncClient, clock: InstantClock
) -> None:
    fake_bfl.polls.clear()
    fake_bfl.polls.append(Reply(500, {"detail": "internal"}))

    outcome = await ask(engine_with(ledger, generator(fake_bfl, http, clock)), "a lighthouse", Intent.IMAGE)

    assert outcome.failure == (
        "The image service is having trouble (HTTP 500). Please try again in a few minutes. "
        "Nothing was charged."
    )
    assert len(fake_bfl.requests("/v1/get_result")) == POLICY.attempts
    assert outcome.row("image").status == "refunded"


async def test_a_malformed_poll_answer_is_refunded(
    ledger: Ledger, fake_bfl: FakeBfl, http: httpx.AsyncClient, clock: InstantClock
) -> None:
    fake_bfl.polls.clear()
    fake_bfl.polls.append(Reply(200, "<html>maintenance</html>"))

    outcome = await ask(engine_with(ledger, generator(fake_bfl, http, clock)), "a lighthouse", Intent.IMAGE)

    assert outcome.failure == "The image service sent a reply I couldn't read. Nothing was charged."
    assert outcome.row("image").status == "refunded"


async def test_an_image_never_ready_times_out_without_resubmitting(
    ledger: Ledger, fake_bfl: FakeBfl, http: httpx.AsyncClient, clock: InstantClock
) -> None:
    fake_bfl.polls.clear()
    fake_bfl.polls.append("Pending")
    started = clock.now()

    outcome = await ask(engine_with(ledger, generator(fake_bfl, http, clock)), "a lighthouse", Intent.IMAGE)

    assert outcome.failure == (
        "The image still wasn't ready after 120 s, so I stopped waiting. Nothing was charged."
    )
    assert clock.now() - started == pytest.approx(120)
    assert max(clock.sleeps) == 5.0 and len(fake_bfl.requests("/v1/flux-pro-1.1")) == 1
    assert outcome.row("image").status == "refunded"


@pytest.mark.parametrize("sample", ["expired.jpg", ""], ids=["expired-url", "missing-url"])
async def test_an_unavailable_sample_is_refunded(
    ledger: Ledger, fake_bfl: FakeBfl, http: httpx.AsyncClient, clock: InstantClock, sample: str
) -> None:
    fake_bfl.sample = sample  # not served: the fake answers 404 like an expired signed URL

    outcome = await ask(engine_with(ledger, generator(fake_bfl, http, clock)), "a lighthouse", Intent.IMAGE)

    assert outcome.failure is not None and outcome.failure.endswith("Nothing was charged.")
    assert "couldn't be downloaded" in outcome.failure
    assert outcome.row("image").status == "refunded"


async def test_a_ready_answer_without_a_sample_is_refunded(
    ledger: Ledger, fake_bfl: FakeBfl, http: httpx.AsyncClient, clock: InstantClock
) -> None:
    fake_bfl.polls.clear()
    fake_bfl.polls.append(Reply(200, {"id": "job-1", "status": "Ready", "result": {}}))

    outcome = await ask(engine_with(ledger, generator(fake_bfl, http, clock)), "a lighthouse", Intent.IMAGE)

    assert outcome.failure == "The image service finished without an image. Nothing was charged."


async def test_submission_yields_a_checkpoint_and_resume_polls_without_resubmitting(
    fake_bfl: FakeBfl, http: httpx.AsyncClient, clock: InstantClock
) -> None:
    request = Request(scope=SCOPE, user="u1", text="a lighthouse", intent=Intent.IMAGE)
    checkpoint = await until_checkpoint(generator(fake_bfl, http, clock).generate("a lighthouse", request))
    assert checkpoint.data == {"polling_url": fake_bfl.polling_url(), "seed": checkpoint.data["seed"]}
    assert checkpoint.data["seed"].isdigit()  # resumed, the image still shows its seed
    assert fake_bfl.requests("/v1/get_result") == []

    resumed = generator(fake_bfl, http, clock).resume(checkpoint.data, "a lighthouse", request)
    images = [part async for part in resumed if isinstance(part, Image)]

    assert [image.data for image in images] == [JPEG]
    assert len(fake_bfl.requests("/v1/flux-pro-1.1")) == 1 and len(fake_bfl.requests("/v1/get_result")) == 3
