"""Decide what a mention asks for: cheap keyword rules first, a paid classifier only when unsure."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from core.history import last_media
from core.parts import Attachment, ImageAttachment, Intent, Turn

RouteSource = Literal["command", "rule", "classifier", "context", "fallback", "resumed"]

CLASSIFIED_INTENTS = (Intent.IMAGE, Intent.SONG, Intent.RESEARCH, Intent.CHAT)
"""What a classifier may answer: summaries are only asked for explicitly (command or rule)."""


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

    async def classify(self, text: str, history: Sequence[Turn] = ()) -> Classification:
        """Classify ``text``, reading ``history`` (the conversation's earlier turns, oldest first)
        to resolve follow-ups like "another one" or "now a song about that" into a full prompt.
        Raise on any failure or answer outside ``CLASSIFIED_INTENTS``."""
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
_REFERS_BACK = re.compile(
    r"\b(?:about|of|on|for|from|like|into|with)\s+(?:that|this|it|them|those|these)\s*[.!?]*$"
    r"|\b(?:make|do|turn|redo|draw|paint|sing|write)\s+(?:it|that|this|them)\b"
    r"|\b(?:another|one more|again|the same|longer|shorter|instead)\b",
    re.IGNORECASE,
)
"""Follow-ups whose subject is earlier in the conversation: rules can't know it, so they pass."""
_SUMMARY = re.compile(
    rf"^{_POLITE}(?:summari[sz]e|recap|sum up|tl;?dr)\b.*\b(?:thread|conversation|chat|discussion|so far)\b",
    re.IGNORECASE,
)
_FILLER = re.compile(
    r"^(?:(?:ok|okay|now|and|then|great|nice|cool|thanks|please|pls|so)\b[\s,!.]*)+", re.IGNORECASE
)
_FILLER_WORDS = frozenset(
    {"ok", "okay", "now", "and", "then", "great", "nice", "cool", "thanks", "please", "pls", "so"}
)
_REPEATS = frozenset(
    {
        "another",
        "another one",
        "one more",
        "again",
        "do it again",
        "once more",
        "same again",
        "more",
        "make another",
        "make another one",
    }
)
_ABOUT_THAT = re.compile(r"\b(about|of|on|for)\s+(?:that|this|it|them)\s*[.!?]*$", re.IGNORECASE)
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
    if _SUMMARY.match(text):
        return Route(Intent.SUMMARY, "", "rule")
    if _QUESTION.match(text) or _REFERS_BACK.search(text):
        return None
    matched = [intent for intent, pattern in _KEYWORDS.items() if pattern.search(text)]
    if len(matched) != 1:
        return None
    return Route(matched[0], clean_prompt(matched[0], text), "rule")


def route_follow_up(text: str, history: Sequence[Turn]) -> Route | None:
    """A deterministic reading of the commonest follow-ups, for when no classifier can read the
    conversation: "another one" or "again" repeats the last media, and "a song about that" makes
    the named kind of work about the last topic. ``None`` when ``text`` is neither."""
    text = " ".join(text.split())
    if _bare(text) in _REPEATS:
        repeated = last_media(history)
        return Route(repeated[0], repeated[1], "context") if repeated else None
    about = _ABOUT_THAT.search(text)
    if about is None:
        return None
    matched = [intent for intent, pattern in _KEYWORDS.items() if pattern.search(text)]
    topic = last_topic(history)
    if len(matched) != 1 or topic is None:
        return None
    filled = _FILLER.sub("", f"{text[: about.start()]}{about.group(1)} {topic}").strip()
    return Route(matched[0], clean_prompt(matched[0], filled), "context")


def last_topic(history: Sequence[Turn]) -> str | None:
    """What the conversation was last about: the newest media's prompt, or else the newest user
    message that names its own subject (cleaned of request phrasing)."""
    for turn in reversed(history):
        if turn.role == "assistant":
            repeated = last_media([turn])
            if repeated is not None:
                return repeated[1]
            continue
        text = " ".join(turn.text.split())
        if not text or _REFERS_BACK.search(text) or _bare(text) in _REPEATS:
            continue
        ruled = route_by_rules(text)
        return ruled.prompt if ruled is not None and ruled.intent is not Intent.SUMMARY else text
    return None


def _bare(text: str) -> str:
    """The words of ``text`` without punctuation or politeness around them: "Again, please!" → "again"."""
    words = re.sub(r"[^\w\s]", " ", text.lower()).split()
    while words and words[0] in _FILLER_WORDS:
        words.pop(0)
    while words and words[-1] in _FILLER_WORDS:
        words.pop()
    return " ".join(words)


_EDIT = re.compile(
    rf"^{_POLITE}(?:make|turn|change|convert|edit|add|remove|erase|replace|put|redraw|repaint|restyle|"
    r"transform|recolou?r|colou?ri[sz]e|stylize|stylise|give|paint|draw|sketch|render|swap|fix|enhance)\b"
    r"|\b(?:in the style of|as an? \w+ (?:painting|drawing|sketch)|watercolou?r|oil painting|pixel art|"
    r"anime style|cartoon style)\b",
    re.IGNORECASE,
)
"""An instruction to change an attached picture ("make this a watercolour", "add a hat")."""


ATTACHED_ALONE = "Describe the attached file briefly."
"""The question a mention with a file and no words asks."""


def route_attached(text: str, attachments: Sequence[Attachment]) -> Route:
    """The route of a message with files attached, by rule alone (a classifier can't see them).

    An image with an instruction to change it is an image edit: ``Intent.IMAGE`` with the image
    kept on the request as the input picture. An image with anything else (a question, "describe
    this") goes to chat, which looks at it. Text files go to research when the words ask for a
    paper, else to chat, which reads them.
    """
    text = " ".join(text.split())
    if not text:  # only a file: say what it is
        return Route(Intent.CHAT, ATTACHED_ALONE, "rule")
    if any(isinstance(item, ImageAttachment) for item in attachments) and _EDIT.search(text):
        return Route(Intent.IMAGE, text, "rule")
    ruled = route_by_rules(text)
    if ruled is not None and ruled.intent is Intent.RESEARCH:
        return ruled
    return Route(Intent.CHAT, text, "rule")
