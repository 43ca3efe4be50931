"""Keyword rules: confident only when one intent is clearly asked for; else the classifier decides."""

from __future__ import annotations

import pytest

from core.parts import Intent
from core.router import clean_prompt, route_by_rules


@pytest.mark.parametrize(
    ("text", "intent", "prompt"),
    [
        ("draw a lighthouse at dusk", Intent.IMAGE, "a lighthouse at dusk"),
        ("please paint me a picture of a red fox", Intent.IMAGE, "a red fox"),
        ("can you sketch a cat wearing a hat", Intent.IMAGE, "a cat wearing a hat"),
        ("write me a song about the sea", Intent.SONG, "a song about the sea"),
        ("compose a lullaby for my daughter", Intent.SONG, "a lullaby for my daughter"),
        ("research the history of the transistor", Intent.RESEARCH, "the history of the transistor"),
        ("write a report on solar panels", Intent.RESEARCH, "solar panels"),
        ("hi", Intent.CHAT, "hi"),
        ("thanks, that was great!", Intent.CHAT, "thanks, that was great!"),
    ],
)
def test_confident_rules(text: str, intent: Intent, prompt: str) -> None:
    route = route_by_rules(text)
    assert route is not None
    assert (route.intent, route.prompt, route.source) == (intent, prompt, "rule")


@pytest.mark.parametrize(
    "text",
    [
        "what is a good name for a song?",  # a question that mentions a keyword
        "how do transistors work",  # a plain question
        "draw me a song",  # two intents at once
        "tell me about lighthouses",  # no keyword at all
        "write a research paper with a picture in it",
    ],
)
def test_unsure_texts_are_left_to_the_classifier(text: str) -> None:
    assert route_by_rules(text) is None


def test_cleaning_never_leaves_an_empty_prompt() -> None:
    assert clean_prompt(Intent.IMAGE, "draw") == "draw"
    assert clean_prompt(Intent.CHAT, "  spaced   out  ") == "spaced out"
