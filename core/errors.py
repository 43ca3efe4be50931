"""Errors generators raise; the engine turns each into a ``Failure`` part a person can act on."""

from __future__ import annotations


class GenerationError(Exception):
    """A generation that did not produce a result.

    ``user_message`` is shown to the person who asked; the exception text stays in the logs.
    ``charge`` is true when the provider billed the work anyway (rare: most failures are refunded).
    """

    def __init__(self, user_message: str, *, detail: str = "", charge: bool = False) -> None:
        super().__init__(detail or user_message)
        self.user_message = user_message
        self.charge = charge


class ModerationError(GenerationError):
    """The provider refused the prompt or its output on content grounds. Never charged."""


class ProviderUnavailable(GenerationError):
    """The provider is down, overloaded, out of credits or rejected our credentials."""
