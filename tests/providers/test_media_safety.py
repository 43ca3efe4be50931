"""What the bot fetches from a provider's answer: only the provider's own server or public https
hosts (each redirect checked again), credentials only to the configured origin, bodies capped in
size and checked to be the media they claim to be (issue 15, items 7 and 8)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import httpx
import openai
import pytest

from core.ledger import Ledger
from core.parts import Audio, Image, Intent
from core.providers import BflImageGenerator, OpenAIImageGenerator, SongGenerator, UdioApi
from core.providers.fetch import MIB, MediaPolicy, Origin, RefusedUrl, UrlGuard, is_public, resolve, sniff
from tests.fakes.fake_bfl import JPEG, KEY, FakeBfl
from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.fake_songs import KEY as SONG_KEY
from tests.fakes.fake_songs import MP3, FakeUdio
from tests.fakes.provider_server import Reply
from tests.providers.conftest import POLICY, InstantClock, ask, engine_with

REFUSED = "pointed me at an address I don't fetch from"


class Resolver:
    """A DNS stand-in: names to addresses, and the names it was asked about."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked.append(host)
        if host not in self.answers:
            raise OSError("name not known")
        return self.answers[host]


@pytest.fixture
async def internal() -> AsyncIterator[FakeBfl]:
    """Another server on the machine: what a hostile provider would like the bot to read."""
    fake = FakeBfl()
    await fake.start()
    fake.add_media("secret.jpg", JPEG, "image/jpeg")
    try:
        yield fake
    finally:
        await fake.close()


def bfl(
    fake: FakeBfl, http: httpx.AsyncClient, clock: InstantClock, media: MediaPolicy | None = None
) -> BflImageGenerator:
    return BflImageGenerator(
        http=http,
        clock=clock,
        api_url=fake.base_url,
        api_key=KEY,
        model="flux-pro-1.1",
        width=1024,
        height=768,
        timeout_s=120,
        cost=40_000,
        policy=POLICY,
        media=media or MediaPolicy(),
    )


def udio(
    fake: FakeUdio, http: httpx.AsyncClient, clock: InstantClock, media: MediaPolicy | None = None
) -> SongGenerator:
    api = UdioApi(
        http=http, clock=clock, api_url=fake.base_url, api_key=SONG_KEY, model="chirp-v3-5", policy=POLICY
    )
    return SongGenerator(
        api=api,
        http=http,
        clock=clock,
        poll_s=5,
        timeout_s=600,
        cost=50_000,
        policy=POLICY,
        media=media or MediaPolicy(),
    )


def ready(url: str) -> Reply:
    return Reply(body={"id": "job-1", "status": "Ready", "result": {"sample": url}})


# --- item 7: where the bot fetches from ---------------------------------------------------------


async def test_a_sample_on_another_local_server_is_refused_and_logged_by_host_only(
    ledger: Ledger,
    fake_bfl: FakeBfl,
    internal: FakeBfl,
    http: httpx.AsyncClient,
    clock: InstantClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake_bfl.polls.clear()
    fake_bfl.polls.append(ready(f"{internal.origin}/media/secret.jpg?sig=hush"))

    outcome = await ask(engine_with(ledger, bfl(fake_bfl, http, clock)), "a fox", Intent.IMAGE)

    assert outcome.failure is not None and REFUSED in outcome.failure
    assert outcome.failure.endswith("Nothing was charged.")
    assert not [part for part in outcome.parts if isinstance(part, Image)]
    assert internal.seen == [] and outcome.row("image").status == "refunded"
    assert "refused URL on host '127.0.0.1'" in caplog.text
    assert "secret.jpg" not in caplog.text and "hush" not in caplog.text


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::ffff:127.0.0.1]/x.jpg",
        "https://10.0.0.7/x.jpg",
        "file:///etc/passwd",
    ],
    ids=["metadata-http", "metadata-https", "mapped-loopback", "private", "file"],
)
async def test_metadata_and_private_addresses_are_refused_without_connecting(
    ledger: Ledger, fake_bfl: FakeBfl, http: httpx.AsyncClient, clock: InstantClock, url: str
) -> None:
    resolver = Resolver({})
    fake_bfl.polls.clear()
    fake_bfl.polls.append(ready(url))

    outcome = await ask(
        engine_with(ledger, bfl(fake_bfl, http, clock, MediaPolicy(resolver=resolver))), "a fox", Intent.IMAGE
    )

    assert outcome.failure is not None and REFUSED in outcome.failure
    assert resolver.asked == [] and outcome.row("image").status == "refunded"


async def test_a_redirect_from_the_provider_to_an_internal_host_is_refused(
    ledger: Ledger, fake_bfl: FakeBfl, internal: FakeBfl, http: httpx.AsyncClient, clock: InstantClock
) -> None:
    fake_bfl.polls.clear()
    fake_bfl.polls.append(ready(fake_bfl.add_redirect("moved.jpg", f"{internal.origin}/media/secret.jpg")))

    outcome = await ask(engine_with(ledger, bfl(fake_bfl, http, clock)), "a fox", Intent.IMAGE)

    assert outcome.failure is not None and REFUSED in outcome.failure
    assert internal.seen == [] and len(fake_bfl.requests("/media/moved.jpg")) == 1


async def test_a_redirect_within_the_provider_is_followed(
    ledger: Ledger, fake_bfl: FakeBfl, http: httpx.AsyncClient, clock: InstantClock
) -> None:
    fake_bfl.polls.clear()
    fake_bfl.polls.append(ready(fake_bfl.add_redirect("moved.jpg", "/media/sample.jpg", status=307)))

    outcome = await ask(engine_with(ledger, bfl(fake_bfl, http, clock)), "a fox", Intent.IMAGE)

    assert outcome.failure is None
    (image,) = [part for part in outcome.parts if isinstance(part, Image)]
    assert image.data == JPEG and len(fake_bfl.requests("/media/sample.jpg")) == 1


async def test_endless_redirects_stop(
    ledger: Ledger, fake_bfl: FakeBfl, http: httpx.AsyncClient, clock: InstantClock
) -> None:
    fake_bfl.polls.clear()
    fake_bfl.polls.append(ready(fake_bfl.add_redirect("loop.jpg", "/media/loop.jpg")))

    outcome = await ask(engine_with(ledger, bfl(fake_bfl, http, clock)), "a fox", Intent.IMAGE)

    assert outcome.failure is not None and "too many redirects" in outcome.failure
    assert len(fake_bfl.requests("/media/loop.jpg")) == 6


async def test_the_key_goes_only_to_the_configured_origin(
    ledger: Ledger, fake_bfl: FakeBfl, internal: FakeBfl, http: httpx.AsyncClient, clock: InstantClock
) -> None:
    # A polling URL on another server the operator allows: polled, but without the x-key.
    port = httpx.URL(internal.origin).port
    fake_bfl.submits.append(
        Reply(body={"id": "job-1", "polling_url": f"http://localhost:{port}/v1/get_result?id=job-1"})
    )
    media = MediaPolicy.of(allowed_hosts=["localhost"])

    outcome = await ask(engine_with(ledger, bfl(fake_bfl, http, clock, media)), "a fox", Intent.IMAGE)

    (submit,) = fake_bfl.requests("/v1/flux-pro-1.1")
    assert submit.headers["x-key"] == KEY
    polls = internal.requests("/v1/get_result")
    assert polls and all("x-key" not in {name.lower() for name in poll.headers} for poll in polls)
    assert outcome.failure is not None and outcome.row("image").status == "refunded"


async def test_a_polling_url_elsewhere_is_refused_unless_allowed(
    ledger: Ledger, fake_bfl: FakeBfl, internal: FakeBfl, http: httpx.AsyncClient, clock: InstantClock
) -> None:
    fake_bfl.submits.append(Reply(body={"id": "job-1", "polling_url": internal.polling_url()}))

    outcome = await ask(engine_with(ledger, bfl(fake_bfl, http, clock)), "a fox", Intent.IMAGE)

    assert outcome.failure is not None and REFUSED in outcome.failure
    assert internal.seen == []


async def test_media_allowed_hosts_lets_an_operator_trust_a_local_store(
    ledger: Ledger, fake_udio: FakeUdio, internal: FakeBfl, http: httpx.AsyncClient, clock: InstantClock
) -> None:
    internal.add_media("song.mp3", MP3, "audio/mpeg")
    port = httpx.URL(internal.origin).port
    fake_udio.media.pop("song.mp3")
    fake_udio.add_redirect("song.mp3", f"http://localhost:{port}/media/song.mp3")
    fake_udio.cover = ""

    refused = await ask(engine_with(ledger, udio(fake_udio, http, clock)), "a shanty", Intent.SONG)
    allowed_media = MediaPolicy.of(allowed_hosts=["LocalHost "])
    allowed = await ask(
        engine_with(ledger, udio(fake_udio, http, clock, allowed_media)), "a shanty", Intent.SONG
    )

    assert refused.failure is not None and REFUSED in refused.failure
    assert allowed.failure is None
    (audio,) = [part for part in allowed.parts if isinstance(part, Audio)]
    assert audio.data == MP3 and len(internal.requests("/media/song.mp3")) == 1


async def test_an_openai_image_url_elsewhere_is_refused(
    ledger: Ledger,
    fake_openai: FakeOpenAI,
    internal: FakeBfl,
    http: httpx.AsyncClient,
    clock: InstantClock,
) -> None:
    client = openai.AsyncOpenAI(
        api_key="sk-test", base_url=fake_openai.base_url, http_client=http, max_retries=0
    )
    fake_openai.images.append(
        Reply(body={"created": 1, "data": [{"url": f"{internal.origin}/media/secret.jpg"}]})
    )
    images = OpenAIImageGenerator(
        client=client,
        http=http,
        clock=clock,
        model="dall-e-3",
        quality="medium",
        width=1024,
        height=1024,
        timeout_s=60,
        cost=40_000,
        policy=POLICY,
    )

    outcome = await ask(engine_with(ledger, images), "a fox", Intent.IMAGE)

    assert outcome.failure is not None and REFUSED in outcome.failure and internal.seen == []


def guard(answers: dict[str, list[str]], *, regional: bool = False, allowed: Sequence[str] = ()) -> UrlGuard:
    media = MediaPolicy.of(allowed_hosts=allowed, resolver=Resolver(answers))
    return media.guard("https://api.bfl.ai/v1", service="image service", regional=regional)


@pytest.mark.parametrize(
    ("url", "answers", "allowed"),
    [
        ("https://cdn.example.com/a.jpg", {"cdn.example.com": ["93.184.216.34"]}, True),
        ("https://cdn.example.com/a.jpg", {"cdn.example.com": ["2606:2800:220:1:248:1893:25c8:1946"]}, True),
        ("http://cdn.example.com/a.jpg", {"cdn.example.com": ["93.184.216.34"]}, False),
        ("https://cdn.example.com/a.jpg", {"cdn.example.com": ["93.184.216.34", "10.1.2.3"]}, False),
        ("https://rebind.example.com/a.jpg", {"rebind.example.com": ["127.0.0.1"]}, False),
        ("https://v6.example.com/a.jpg", {"v6.example.com": ["fd00::1"]}, False),
        ("https://nx.example.com/a.jpg", {}, False),
        ("https://api.bfl.ai/v1/get_result", {}, True),
        ("https://api.bfl.ai:8443/v1/get_result", {}, False),
    ],
)
async def test_the_guard_allows_the_own_origin_and_public_https_only(
    url: str, answers: dict[str, list[str]], allowed: bool
) -> None:
    check = guard(answers).check(httpx.URL(url))
    if allowed:
        await check
    else:
        with pytest.raises(RefusedUrl):
            await check


def test_credentials_go_to_the_own_origin_and_for_bfl_its_regional_hosts() -> None:
    headers = {"x-key": KEY}
    strict, regional = guard({}), guard({}, regional=True)
    assert strict.credentials(httpx.URL("https://api.bfl.ai/v1/get_result?id=1"), headers) == headers
    assert strict.credentials(httpx.URL("https://api.us1.bfl.ai/v1/get_result"), headers) is None
    assert regional.credentials(httpx.URL("https://api.us1.bfl.ai/v1/get_result"), headers) == headers
    assert regional.credentials(httpx.URL("http://api.us1.bfl.ai/v1/get_result"), headers) is None
    assert regional.credentials(httpx.URL("https://evilbfl.ai/v1/get_result"), headers) is None
    assert regional.credentials(httpx.URL("https://cdn.example.com/x"), headers) is None
    assert Origin.of("https://API.bfl.ai/v1") == Origin.of("https://api.bfl.ai:443/other")


async def test_a_regional_host_must_still_resolve_publicly() -> None:
    with pytest.raises(RefusedUrl):
        await guard({"api.us1.bfl.ai": ["10.0.0.1"]}, regional=True).check(
            httpx.URL("https://api.us1.bfl.ai/x")
        )
    await guard({"api.us1.bfl.ai": ["34.1.2.3"]}, regional=True).check(httpx.URL("https://api.us1.bfl.ai/x"))


def test_public_means_globally_routable() -> None:
    assert is_public("93.184.216.34") and is_public("2606:4700::1")
    for address in ("127.0.0.1", "10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
                    "0.0.0.0", "224.0.0.1", "::1", "fe80::1", "fc00::1", "::ffff:10.0.0.1", "2002:7f00:1::",
                    "fe80::1%eth0", "not an address"):  # fmt: skip
        assert not is_public(address), address


async def test_the_default_resolver_asks_the_system_without_blocking() -> None:
    addresses = await resolve("localhost", 80)
    assert addresses and not any(is_public(address) for address in addresses)


# --- item 8: how much, and what ----------------------------------------------------------------


async def test_a_song_that_never_ends_is_cut_off_at_the_cap(
    ledger: Ledger, fake_udio: FakeUdio, http: httpx.AsyncClient, clock: InstantClock
) -> None:
    fake_udio.media.pop("song.mp3")
    fake_udio.add_endless("song.mp3", MP3, "audio/mpeg")

    outcome = await ask(
        engine_with(ledger, udio(fake_udio, http, clock, MediaPolicy.of(max_mb=1))), "a shanty", Intent.SONG
    )

    assert outcome.failure is not None and "larger than the 1 MB limit" in outcome.failure
    assert not [part for part in outcome.parts if isinstance(part, Audio)]
    assert outcome.row("song").status == "refunded"
    assert fake_udio.streamed < 8 * MIB  # stopped reading soon after the cap


async def test_a_declared_length_over_the_cap_is_refused_before_reading(
    ledger: Ledger, fake_bfl: FakeBfl, http: httpx.AsyncClient, clock: InstantClock
) -> None:
    fake_bfl.polls.clear()
    fake_bfl.polls.append(ready(fake_bfl.add_endless("huge.jpg", JPEG, "image/jpeg", declared=2 * MIB)))

    outcome = await ask(
        engine_with(ledger, bfl(fake_bfl, http, clock, MediaPolicy.of(max_mb=1))), "a fox", Intent.IMAGE
    )

    assert outcome.failure is not None and "larger than the 1 MB limit" in outcome.failure
    assert len(fake_bfl.requests("/media/huge.jpg")) == 1  # not retried


async def test_a_sample_that_is_not_an_image_is_never_posted(
    ledger: Ledger, fake_bfl: FakeBfl, http: httpx.AsyncClient, clock: InstantClock
) -> None:
    fake_bfl.add_media("sample.jpg", b"<html>ssh-rsa AAAA internal page</html>", "image/jpeg")

    outcome = await ask(engine_with(ledger, bfl(fake_bfl, http, clock)), "a fox", Intent.IMAGE)

    assert outcome.failure == "The image service sent something that isn't an image as the image, so I " \
        "didn't post it. Nothing was charged."  # fmt: skip
    assert not [part for part in outcome.parts if isinstance(part, Image)]


async def test_a_song_that_is_not_audio_is_refused_and_a_bad_cover_only_skipped(
    ledger: Ledger, fake_udio: FakeUdio, http: httpx.AsyncClient, clock: InstantClock
) -> None:
    fake_udio.add_media("cover.jpg", b"GIF89a not allowed", "image/jpeg")
    with_bad_cover = await ask(engine_with(ledger, udio(fake_udio, http, clock)), "a shanty", Intent.SONG)
    fake_udio.add_media("song.mp3", b'{"error": "oops"}', "audio/mpeg")
    not_audio = await ask(engine_with(ledger, udio(fake_udio, http, clock)), "a shanty", Intent.SONG)

    (audio,) = [part for part in with_bad_cover.parts if isinstance(part, Audio)]
    assert audio.data == MP3 and audio.cover is None
    assert not_audio.failure is not None and "isn't audio" in not_audio.failure
    assert not [part for part in not_audio.parts if isinstance(part, Audio)]


@pytest.mark.parametrize(
    ("data", "kind", "mime_type"),
    [
        (b"\x89PNG\r\n\x1a\n....", "image", "image/png"),
        (b"\xff\xd8\xff\xe0....", "image", "image/jpeg"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image", "image/webp"),
        (b"GIF89a", "image", None),
        (b"ID3\x04\x00....", "audio", "audio/mpeg"),
        (b"\xff\xfb\x90\x00....", "audio", "audio/mpeg"),
        (b"\xff\xf1\x50\x80....", "audio", None),  # ADTS AAC, not MPEG audio
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "audio", "audio/wav"),
        (b"OggS\x00\x02....", "audio", "audio/ogg"),
        (b"\x00\x00\x00\x20ftypM4A \x00\x00", "audio", "audio/mp4"),
        (b"\xff\xd8\xff\xe0....", "audio", None),
        (b"<html>", "audio", None),
    ],
)
def test_media_types_come_from_magic_bytes(data: bytes, kind: str, mime_type: str | None) -> None:
    assert sniff(data, kind) == mime_type  # type: ignore[arg-type]
