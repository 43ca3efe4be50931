"""Offline demo generators: real PNGs, real WAVs and streamed markdown, with no keys and no network."""

from core.demo.image import DemoImageGenerator
from core.demo.song import DemoSongGenerator
from core.demo.text import DemoChatGenerator, DemoResearchGenerator, DemoSummaryGenerator

__all__ = [
    "DemoChatGenerator",
    "DemoImageGenerator",
    "DemoResearchGenerator",
    "DemoSongGenerator",
    "DemoSummaryGenerator",
]
