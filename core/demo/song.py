"""A demo song: a short melody synthesised from the prompt into a real, playable WAV file."""

from __future__ import annotations

import array
import asyncio
import io
import math
import wave
from collections.abc import AsyncIterator

from core.clock import Clock, SystemClock
from core.demo.image import seeded_random
from core.filenames import slug
from core.parts import Audio, GeneratorPart, Intent, Operation, Request, Status

SAMPLE_RATE = 22_050
BEAT_S = 0.3
# A major pentatonic scale over two octaves, in Hz: every random walk over it sounds pleasant.
SCALE = [261.63, 293.66, 329.63, 392.00, 440.00, 523.25, 587.33, 659.25, 783.99, 880.00]


def synthesize_wav(prompt: str, *, beats: int = 24, take: str = "") -> bytes:
    """A melody of ``beats`` notes over a bass drone, 16-bit mono WAV; same prompt (and ``take``),
    same tune."""
    rng = seeded_random(prompt + (f"\x00{take}" if take else ""))
    step = rng.randrange(len(SCALE))
    samples = array.array("h")
    note_len = int(SAMPLE_RATE * BEAT_S)
    for beat in range(beats):
        step = min(len(SCALE) - 1, max(0, step + rng.choice((-2, -1, 1, 1, 2))))
        melody, bass = SCALE[step], SCALE[(beat // 4 * 3) % 5] / 2
        for n in range(note_len):
            t = n / SAMPLE_RATE
            envelope = min(1.0, n / 300) * math.exp(-3.0 * t / BEAT_S)
            value = 0.45 * envelope * math.sin(2 * math.pi * melody * t)
            value += 0.2 * math.sin(2 * math.pi * bass * t) * (1 - n / note_len / 2)
            samples.append(int(max(-1.0, min(1.0, value)) * 32000))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(samples.tobytes())
    return buffer.getvalue()


def demo_lyrics(prompt: str) -> str:
    subject = prompt.strip().rstrip(".!?") or "the song"
    return (
        f"[Verse]\nOh {subject}, you're on my mind,\nA demo tune of the simplest kind.\n\n"
        f"[Chorus]\nSing it loud and sing it free,\n{subject.capitalize()}, a song for you and me.\n\n"
        "(Demo lyrics: set SONG_API_KEY for real songs.)"
    )


class DemoSongGenerator:
    """A placeholder song, free: the bot builds it without a cost. ``cost`` lets a test stand it
    in for a paid provider."""

    intent = Intent.SONG
    demo = True

    def __init__(self, *, cost: int = 0, delay_s: float = 0.5, clock: Clock | None = None) -> None:
        self._cost = cost
        self._delay_s = delay_s
        self._clock = clock or SystemClock()

    def estimate(self, prompt: str) -> int:
        return self._cost

    async def generate(self, prompt: str, request: Request) -> AsyncIterator[GeneratorPart]:
        started = self._clock.now()
        for stage in ("Queued (demo)", "Writing lyrics (demo)", "Composing (demo)"):
            yield Status(f"{stage}… {self._clock.now() - started:.0f} s")
            await self._clock.sleep(self._delay_s)
        another = request.studio is not None and request.studio.operation is Operation.ANOTHER
        data = await asyncio.to_thread(synthesize_wav, prompt, take=request.id if another else "")
        title = f"Demo song: {prompt}"[:100]
        yield Audio(
            data=data,
            filename=f"{slug(prompt)}.wav",
            mime_type="audio/wav",
            title=title,
            prompt=prompt,
            lyrics=demo_lyrics(prompt),
            duration_s=24 * BEAT_S,
        )
