"""The one protocol every generator (demo or real, image, song or text) implements."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Protocol, runtime_checkable

from core.parts import GeneratorPart, Intent, Request


class Generator(Protocol):
    """Turns a cleaned prompt into parts.

    ``estimate`` is what the engine reserves before ``generate`` runs. A generator that knows its
    real cost (tokens used) yields ``Usage``; otherwise the estimate is charged on success. Failures
    are raised as ``core.errors.GenerationError`` so the engine can refund and explain.
    """

    intent: Intent
    demo: bool
    """True for offline demo generators; their ledger rows are marked as demo."""

    def estimate(self, prompt: str) -> int:
        """Micro-dollars to reserve for this prompt: the worst case the generator can spend."""
        ...

    def generate(self, prompt: str, request: Request) -> AsyncIterator[GeneratorPart]:
        """Stream the result. Long jobs yield ``Status`` while they wait."""
        ...


@runtime_checkable
class Resumable(Protocol):
    """A generator whose paid jobs can be picked up after a restart from their ``Checkpoint``."""

    def resume(
        self, checkpoint: Mapping[str, str], prompt: str, request: Request
    ) -> AsyncIterator[GeneratorPart]:
        """Continue the job the checkpoint names (poll, download, yield the result); never resubmit."""
        ...


@runtime_checkable
class RequestAware(Protocol):
    """A generator whose reservation and acceptance depend on the whole request (its attachments,
    the asker's ``max_tokens``), not only the prompt."""

    def estimate_for(self, prompt: str, request: Request) -> int:
        """Micro-dollars to reserve for ``request``; used instead of ``estimate``."""
        ...

    def refusal(self, request: Request) -> str | None:
        """Why ``request`` can't be served (e.g. an image for a model that can't see), before
        anything is reserved; ``None`` when it can."""
        ...
