"""The router's paid fallback: an LLM asked, through a strict JSON schema, which intent a mention has."""

from __future__ import annotations

from typing import Any

import openai
from pydantic import BaseModel, ConfigDict

from core.parts import Intent
from core.providers.openai_text import TextModel
from core.router import Classification

INSTRUCTIONS = """\
You route messages sent to a chat bot that can: draw an image (image), compose a song with lyrics
(song), write a short research paper (research), or just talk (chat).
Pick "image", "song" or "research" only when the person clearly asks for that piece of work.
Greetings, thanks, questions, opinions and everything else are "chat".
Also return the prompt: the subject of the request without the request phrasing (for "could you
paint me a fox in the snow?" the prompt is "a fox in the snow"); for chat, the message unchanged."""

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "intent": {"type": "string", "enum": [intent.value for intent in Intent]},
        "prompt": {"type": "string"},
    },
    "required": ["intent", "prompt"],
    "additionalProperties": False,
}


class ClassifierError(Exception):
    """The classifier answered, but not with one of the known intents and a prompt."""


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    intent: Intent
    prompt: str


class OpenAIClassifier:
    """Implements ``core.router.Classifier`` with chat completions and structured output."""

    demo = False

    def __init__(self, *, client: openai.AsyncOpenAI, model: TextModel) -> None:
        self._client = client
        self._model = model

    def estimate(self, text: str) -> int:
        return self._model.allowance

    async def classify(self, text: str) -> Classification:
        """Ask the model; raise ``ClassifierError`` (or the SDK's error) on anything unusable."""
        response = await self._client.chat.completions.create(
            model=self._model.name,
            messages=[{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": text}],
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "route", "strict": True, "schema": SCHEMA},
            },
            max_completion_tokens=self._model.output_limit(INSTRUCTIONS, text),
        )
        content = response.choices[0].message.content if response.choices else None
        if not content:
            raise ClassifierError("the classifier returned no content")
        try:
            answer = _Answer.model_validate_json(content)
        except ValueError as error:
            raise ClassifierError(f"unusable classifier answer {content[:200]!r}") from error
        cost = self._model.charge(response.usage, INSTRUCTIONS, text, written=content)
        return Classification(answer.intent, answer.prompt, cost)
