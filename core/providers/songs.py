"""Songs from Suno-style APIs: submit once, poll until a clip is complete, download audio and cover.

Two wire shapes share one polling loop: the hosted udioapi.pro shape (``/generate``, ``/feed``) and
the self-hosted suno-api shape (``/api/generate``, ``/api/get``).

A song that is still unfinished at ``SONG_TIMEOUT_S`` is not resubmitted, and it is refunded: the
person got nothing. The vendor may still bill it, so the job id is logged for the operator.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from core.clock import Clock
from core.errors import GenerationError, ModerationError
from core.filenames import slug
from core.parts import Audio, Checkpoint, GeneratorPart, Image, Intent, Request, Status
from core.providers.fetch import DEFAULT_MEDIA, MediaKind, MediaPolicy, UrlGuard
from core.providers.http import Download, RetryPolicy, download, extension, poll, read_json, submit_once

log = logging.getLogger(__name__)

SERVICE = "song service"
_MODERATION_WORDS = ("moderat", "policy", "inappropriate", "sensitive", "banned")


@dataclass(frozen=True, slots=True, kw_only=True)
class Clip:
    """One finished take, as the song API describes it."""

    audio_url: str
    image_url: str = ""
    title: str = ""
    lyrics: str = ""
    duration_s: float | None = None


@dataclass(frozen=True, slots=True)
class Progress:
    """One poll's news: still working (``stage``), finished (``clip``) or failed (``failure``)."""

    stage: str
    clip: Clip | None = None
    failure: str | None = None


class SongApi(Protocol):
    """One vendor's wire shape. ``submit`` is paid and sent once; ``check`` is idempotent."""

    base_url: str
    """The configured ``SONG_API_URL``: clips are downloaded from its origin or public https hosts."""

    async def submit(self, prompt: str) -> str:
        """Start a song; return the job reference to poll."""
        ...

    async def check(self, job: str, *, deadline: float) -> Progress: ...


class SongGenerator:
    """Polls a ``SongApi`` every ``poll_s`` up to ``timeout_s``, then delivers the first clip."""

    intent = Intent.SONG
    demo = False

    def __init__(
        self,
        *,
        api: SongApi,
        http: httpx.AsyncClient,
        clock: Clock,
        poll_s: float,
        timeout_s: float,
        cost: int,
        policy: RetryPolicy,
        media: MediaPolicy = DEFAULT_MEDIA,
    ) -> None:
        self._api = api
        self._http = http
        self._clock = clock
        self._poll_s = poll_s
        self._timeout_s = timeout_s
        self._cost = cost
        self._policy = policy
        self._guard: UrlGuard = media.guard(api.base_url, service=SERVICE)

    def estimate(self, prompt: str) -> int:
        return self._cost

    async def generate(self, prompt: str, request: Request) -> AsyncIterator[GeneratorPart]:
        yield Status("Sending to the song service…")
        job = await self._api.submit(prompt)
        yield Checkpoint({"job": job})
        async for part in self._follow(job, prompt):
            yield part

    def resume(
        self, checkpoint: Mapping[str, str], prompt: str, request: Request
    ) -> AsyncIterator[GeneratorPart]:
        """Pick up a submitted song after a restart: poll it again, never resubmit."""
        return self._follow(checkpoint["job"], prompt)

    async def _follow(self, job: str, prompt: str) -> AsyncIterator[GeneratorPart]:
        """Poll until a take is complete (or the time is up), then download and deliver it."""
        started = self._clock.now()
        deadline = started + self._timeout_s
        stage = "Queued"
        while True:
            elapsed = self._clock.now() - started
            yield Status(f"{stage}… {_duration(elapsed)}")
            if elapsed >= self._timeout_s:
                log.warning("song job %s unfinished after %.0f s; refunded, not resubmitted", job, elapsed)
                raise GenerationError(
                    f"The song still wasn't finished after {_duration(self._timeout_s)}, so I stopped "
                    "waiting. I haven't resubmitted it.",
                    detail=f"song job {job} timed out at stage {stage!r}",
                )
            await self._clock.sleep(min(self._poll_s, max(0.0, deadline - self._clock.now())))
            progress = await self._api.check(job, deadline=deadline)
            if progress.failure is not None:
                raise _song_failure(progress.failure, job)
            if progress.clip is not None:
                break
            stage = progress.stage
        clip = progress.clip
        yield Status("Downloading the song…")
        audio = await self._download(clip.audio_url, what="song", kind="audio")
        title = clip.title.strip() or prompt[:80]
        yield Audio(
            data=audio.data,
            filename=f"{slug(title)}.{extension(audio.mime_type, 'mp3')}",
            mime_type=audio.mime_type,
            title=title,
            prompt=prompt,
            lyrics=clip.lyrics.strip(),
            duration_s=clip.duration_s,
            cover=await self._cover(clip, title),
        )

    async def _cover(self, clip: Clip, title: str) -> Image | None:
        """The clip's cover art, or ``None``: a missing cover never costs the person their song."""
        if not clip.image_url:
            return None
        try:
            image = await self._download(clip.image_url, what="cover", kind="image")
        except GenerationError as error:
            log.info("song cover skipped: %s", error)
            return None
        return Image(
            data=image.data,
            filename=f"{slug(title)}-cover.{extension(image.mime_type, 'jpg')}",
            mime_type=image.mime_type,
            prompt=title,
            title=f"Cover art: {title}"[:200],
        )

    async def _download(self, url: str, *, what: str, kind: MediaKind) -> Download:
        return await download(
            self._http,
            url,
            clock=self._clock,
            policy=self._policy,
            service=SERVICE,
            what=what,
            guard=self._guard,
            kind=kind,
        )


def _song_failure(message: str, job: str) -> GenerationError:
    """The service's own reason goes to the logs only: people see a short message."""
    detail = f"song job {job}: {message[:500]}"
    if any(word in message.lower() for word in _MODERATION_WORDS):
        return ModerationError("The song service declined this song on content grounds.", detail=detail)
    return GenerationError("The song service couldn't make this song.", detail=detail)


def _duration(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole} s" if whole < 120 else f"{whole // 60} min {whole % 60:02d} s"


# --- wire shapes ---------------------------------------------------------------------------------


class _SongHttp:
    """Submission and polling plumbing both wire shapes share."""

    def __init__(
        self, *, http: httpx.AsyncClient, clock: Clock, api_url: str, api_key: str | None, policy: RetryPolicy
    ) -> None:
        self._http = http
        self._clock = clock
        self.base_url = api_url
        self._guard = DEFAULT_MEDIA.guard(api_url, service=SERVICE)
        self._base = api_url.rstrip("/")
        self._headers = {"accept": "application/json"}
        if api_key:
            self._headers["authorization"] = f"Bearer {api_key}"
        self._policy = policy

    async def _post(self, path: str, body: Mapping[str, object]) -> httpx.Response:
        return await submit_once(
            self._http, f"{self._base}{path}", body=body, headers=self._headers, service=SERVICE
        )

    async def _get(self, path: str, params: Mapping[str, str], deadline: float) -> httpx.Response:
        return await poll(
            self._http,
            f"{self._base}{path}",
            clock=self._clock,
            policy=self._policy,
            service=SERVICE,
            deadline=deadline,
            guard=self._guard,
            headers=self._headers,
            params=params,
        )


class UdioApi(_SongHttp):
    """The hosted shape: ``POST /generate`` → ``workId``; ``GET /feed?workId=`` → ``type`` + clips."""

    _STAGES: Mapping[str, str] = {
        "new": "Queued",
        "text": "Lyrics written, composing",
        "first": "First take ready, finishing",
    }

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        clock: Clock,
        api_url: str,
        api_key: str,
        model: str,
        policy: RetryPolicy,
    ) -> None:
        super().__init__(http=http, clock=clock, api_url=api_url, api_key=api_key, policy=policy)
        self._model = model

    async def submit(self, prompt: str) -> str:
        # Inspiration mode: the prompt describes the song and the service writes the lyrics.
        body = {"gpt_description_prompt": prompt, "model": self._model, "make_instrumental": False}
        answer = read_json(await self._post("/generate", body), service=SERVICE, shape=dict)
        job = answer.get("workId")
        if answer.get("code", 200) != 200 or not isinstance(job, str | int) or not str(job):
            raise GenerationError(
                "The song service refused the request.", detail=f"udioapi /generate answered {answer}"[:500]
            )
        return str(job)

    async def check(self, job: str, *, deadline: float) -> Progress:
        answer = read_json(await self._get("/feed", {"workId": job}, deadline), service=SERVICE, shape=dict)
        nested = answer.get("data")  # the v2 feed wraps the same fields in "data"
        feed = nested if isinstance(nested, dict) else answer
        kind = str(feed.get("type") or "new")
        clips = [clip for clip in feed.get("response_data") or [] if isinstance(clip, dict)]
        for clip in clips:
            failure = clip.get("fail_message") or clip.get("error_message")
            if failure:
                return Progress(kind, failure=str(failure))
        if kind.lower() in ("error", "failed", "fail"):
            return Progress(kind, failure=str(feed.get("message") or answer.get("message") or ""))
        if kind.lower() in ("complete", "success"):
            finished = next((clip for clip in clips if clip.get("audio_url")), None)
            if finished is None:
                return Progress(kind, failure="it finished without any audio")
            return Progress(kind, clip=_clip(finished, lyrics_key="prompt"))
        return Progress(self._STAGES.get(kind, "Composing"))


class SunoApi(_SongHttp):
    """The self-hosted suno-api shape: ``POST /api/generate`` → clips; ``GET /api/get?ids=``."""

    _STAGES: Mapping[str, str] = {
        "submitted": "Submitted",
        "queued": "Queued",
        "streaming": "Composing",
    }

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        clock: Clock,
        api_url: str,
        api_key: str | None,
        model: str,
        policy: RetryPolicy,
    ) -> None:
        super().__init__(http=http, clock=clock, api_url=api_url, api_key=api_key, policy=policy)
        self._model = model

    async def submit(self, prompt: str) -> str:
        body = {"prompt": prompt, "make_instrumental": False, "model": self._model, "wait_audio": False}
        clips = read_json(await self._post("/api/generate", body), service=SERVICE, shape=list)
        ids = [str(clip["id"]) for clip in clips if isinstance(clip, dict) and clip.get("id")]
        if not ids:
            raise GenerationError(
                f"The {SERVICE} sent a reply I couldn't read.", detail=f"no clip ids in {clips!r}"[:500]
            )
        return ",".join(ids)

    async def check(self, job: str, *, deadline: float) -> Progress:
        clips = [
            clip
            for clip in read_json(
                await self._get("/api/get", {"ids": job}, deadline), service=SERVICE, shape=list
            )
            if isinstance(clip, dict)
        ]
        # Only "complete" is final: while "streaming" the audio_url is a live stream.
        finished = next(
            (clip for clip in clips if clip.get("status") == "complete" and clip.get("audio_url")), None
        )
        if finished is not None:
            return Progress("complete", clip=_clip(finished, lyrics_key="lyric"))
        if clips and all(clip.get("status") == "error" for clip in clips):
            return Progress("error", failure=str(clips[0].get("error_message") or ""))
        status = str(clips[0].get("status")) if clips else "submitted"
        return Progress(self._STAGES.get(status, "Composing"))


def _clip(raw: Mapping[str, Any], *, lyrics_key: str) -> Clip:
    duration = raw.get("duration")
    try:
        seconds = float(duration) if duration not in (None, "") else None
    except (TypeError, ValueError):
        seconds = None
    return Clip(
        audio_url=str(raw.get("audio_url") or ""),
        image_url=str(raw.get("image_url") or ""),
        title=str(raw.get("title") or ""),
        lyrics=str(raw.get(lyrics_key) or ""),
        duration_s=seconds,
    )
