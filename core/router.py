"""Decide what a mention asks for: cheap keyword rules first, a paid classifier only when unsure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Protocol

from core.parts import Intent

RouteSource = Literal["command", "rule", "classifier", "fallback", "resumed"]


@dataclass(frozen=True, slots=True)
class Route:
    intent: Intent
    prompt: str
    source: RouteSource


@dataclass(frozen=True, slots=True)
class Classification:
    """A classifier's answer, and what the call actually cost in micro-dollars."""

    intent: Intent
    prompt: str
    cost: int


class Classifier(Protocol):
    """An LLM (or other) intent classifier, constrained to the ``Intent`` values."""

    demo: bool

    def estimate(self, text: str) -> int:
        """Micro-dollars to reserve for one classification."""
        ...

    async def classify(self, text: str) -> Classification:
        """Classify; raise on any failure or answer outside the known intents."""
        ...


_GREETING = re.compile(
    r"^(hi|hello|hey|hiya|yo|howdy|thanks|thank you|thx|good (morning|afternoon|evening|night)|"
    r"gm|bye|goodbye)\b",
    re.IGNORECASE,
)
_QUESTION = re.compile(
    r"^(what|why|how|who|whom|whose|when|where|which|is|are|was|were|does|do|did|should|"
    r"shall|may|might|have|has)\b",
    re.IGNORECASE,
)
_POLITE = r"(?:(?:please|pls|can|could|would|will)\s+(?:you\s+)?)*"
_KEYWORDS: dict[Intent, re.Pattern[str]] = {
    Intent.IMAGE: re.compile(
        r"\b(draw|drawing|paint|painting|picture|image|illustrat\w*|sketch|photo|render|portrait|"
        r"wallpaper|logo)\b",
        re.IGNORECASE,
    ),
    Intent.SONG: re.compile(
        r"\b(song|songs|lyrics|compose|melody|sing|tune|ballad|shanty|anthem|jingle|lullaby)\b",
        re.IGNORECASE,
    ),
    Intent.RESEARCH: re.compile(r"\b(research|paper|report|survey|literature review)\b", re.IGNORECASE),
}
_RECIPIENT = r"(?:(?:me|us)\s+)?"
_PREFIXES: dict[Intent, re.Pattern[str]] = {
    Intent.IMAGE: re.compile(
        rf"^{_POLITE}(?:draw|paint|sketch|illustrate|render|make|create|generate|give|show)\s+{_RECIPIENT}"
        r"(?:(?:a|an|some)\s+(?:image|picture|drawing|painting|illustration|sketch|photo)s?\s+(?:of\s+)?)?",
        re.IGNORECASE,
    ),
    Intent.SONG: re.compile(
        rf"^{_POLITE}(?:write|compose|make|create|generate|sing|give)\s+{_RECIPIENT}", re.IGNORECASE
    ),
    Intent.RESEARCH: re.compile(
        rf"^{_POLITE}(?:research|investigate|write|do|make|prepare)\s+{_RECIPIENT}"
        r"(?:(?:a|an|some)\s+(?:research\s+)?(?:paper|report|survey)\s+)?(?:(?:on|about|into|of)\s+)?",
        re.IGNORECASE,
    ),
}


def clean_prompt(intent: Intent, text: str) -> str:
    """Drop the request phrasing ("please draw me a picture of") and keep the subject."""
    text = " ".join(text.split())
    prefix = _PREFIXES.get(intent)
    cleaned = prefix.sub("", text, count=1).strip(" ,.:;!") if prefix else text
    return cleaned or text


def route_by_rules(text: str) -> Route | None:
    """A confident route from keywords alone, or ``None`` when a classifier should decide."""
    text = " ".join(text.split())
    if _GREETING.match(text) and len(text.split()) <= 6:
        return Route(Intent.CHAT, text, "rule")
    if _QUESTION.match(text):
        return None
    matched = [intent for intent, pattern in _KEYWORDS.items() if pattern.search(text)]
    if len(matched) != 1:
        return None
    return Route(matched[0], clean_prompt(matched[0], text), "rule")
