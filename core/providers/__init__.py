"""Real providers behind the generator protocol: OpenAI-compatible text, Flux and OpenAI images, songs.

Each name is imported from its module on first use, so code that needs only ``core.providers.pricing``
(the settings do) does not load the OpenAI SDK, which takes most of a second to import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.providers.bfl import BflImageGenerator
    from core.providers.classifier import ClassifierError, OpenAIClassifier
    from core.providers.http import RetryPolicy
    from core.providers.openai_image import OpenAIImageGenerator
    from core.providers.openai_text import OpenAITextGenerator, TextModel, chat_generator, research_generator
    from core.providers.pricing import TokenPrice
    from core.providers.songs import SongApi, SongGenerator, SunoApi, UdioApi
    from core.providers.summary import OpenAISummaryGenerator

_MODULES = {
    "BflImageGenerator": "bfl",
    "ClassifierError": "classifier",
    "OpenAIClassifier": "classifier",
    "OpenAIImageGenerator": "openai_image",
    "OpenAISummaryGenerator": "summary",
    "OpenAITextGenerator": "openai_text",
    "RetryPolicy": "http",
    "SongApi": "songs",
    "SongGenerator": "songs",
    "SunoApi": "songs",
    "TextModel": "openai_text",
    "TokenPrice": "pricing",
    "UdioApi": "songs",
    "chat_generator": "openai_text",
    "research_generator": "openai_text",
}

__all__ = [
    "BflImageGenerator",
    "ClassifierError",
    "OpenAIClassifier",
    "OpenAIImageGenerator",
    "OpenAISummaryGenerator",
    "OpenAITextGenerator",
    "RetryPolicy",
    "SongApi",
    "SongGenerator",
    "SunoApi",
    "TextModel",
    "TokenPrice",
    "UdioApi",
    "chat_generator",
    "research_generator",
]


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
