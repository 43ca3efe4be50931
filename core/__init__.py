"""Platform-neutral core: routing, generators, the budget ledger and the streaming renderer."""

from core.engine import Engine
from core.errors import GenerationError, ModerationError, ProviderUnavailable
from core.generator import Generator
from core.ledger import BudgetReport, Hold, Ledger, Refusal
from core.parts import (
    Audio,
    Failure,
    GeneratorPart,
    Image,
    Intent,
    Media,
    Part,
    Request,
    Scope,
    Status,
    TextDelta,
    Usage,
)
from core.render import MessageState, Surface, View, render
from core.router import Classification, Classifier, Route

__all__ = [
    "Audio",
    "BudgetReport",
    "Classification",
    "Classifier",
    "Engine",
    "Failure",
    "GenerationError",
    "Generator",
    "GeneratorPart",
    "Hold",
    "Image",
    "Intent",
    "Ledger",
    "Media",
    "MessageState",
    "ModerationError",
    "Part",
    "ProviderUnavailable",
    "Refusal",
    "Request",
    "Route",
    "Scope",
    "Status",
    "Surface",
    "TextDelta",
    "Usage",
    "View",
    "render",
]
