"""Errors generators raise; the engine turns each into a ``Failure`` part a person can act on."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


class GenerationError(Exception):
    """A generation that did not produce a result.

    ``user_message`` is shown to the person who asked, and it is all ``str()`` and ``repr()`` ever
    show, so refund notes and job rows built from the error cannot carry a provider's raw answer
    (which may quote a key). ``detail`` is that raw text: it is logged when the error is made,
    through the process's logging handlers and so through their secret redactor, and nowhere else.
    ``charge`` is true when the provider billed the work anyway (rare: most failures are refunded).
    """

    def __init__(self, user_message: str, *, detail: str = "", charge: bool = False) -> None:
        super().__init__(user_message)
        self.user_message = user_message
        self.detail = detail
        self.charge = charge
        if detail:
            log.warning("%s: %s (%s)", type(self).__name__, user_message, detail)

    def __str__(self) -> str:
        return self.user_message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.user_message!r})"


class ModerationError(GenerationError):
    """The provider refused the prompt or its output on content grounds. Never charged."""


class ProviderUnavailable(GenerationError):
    """The provider is down, overloaded, out of credits or rejected our credentials."""
