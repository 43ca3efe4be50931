"""Real providers behind the generator protocol: OpenAI-compatible text, Flux and OpenAI images, songs."""

from core.providers.bfl import BflImageGenerator
from core.providers.classifier import ClassifierError, OpenAIClassifier
from core.providers.http import RetryPolicy
from core.providers.openai_image import OpenAIImageGenerator
from core.providers.openai_text import OpenAITextGenerator, TextModel, chat_generator, research_generator
from core.providers.pricing import TokenPrice
from core.providers.songs import SongApi, SongGenerator, SunoApi, UdioApi
from core.providers.summary import OpenAISummaryGenerator

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
