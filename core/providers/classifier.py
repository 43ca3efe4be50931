"""The router's paid fallback: an LLM asked, through a strict JSON schema, which intent a mention has."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import openai
from openai.types.chat import ChatCompletionMessageParam
from pydantic import BaseModel, ConfigDict

from core.history import transcript
from core.parts import Intent, Turn
from core.providers.failures import openai_failure
from core.providers.openai_text import TextModel
from core.router import CLASSIFIED_INTENTS, Classification

INSTRUCTIONS = """\
You route messages sent to a chat bot that can: draw an image (image), compose a song with lyrics
(song), write a short research paper (research), or just talk (chat).
Pick "image", "song" or "research" only when the person clearly asks for that piece of work.
Greetings, thanks, questions, opinions and everything else are "chat".
Also return the prompt: the subject of the request without the request phrasing (for "could you
paint me a fox in the snow?" the prompt is "a fox in the snow"); for chat, the message unchanged.
When the message follows up on the conversation shown ("another one", "make it longer", "now a
song about that"), decide from the conversation and write a prompt that stands on its own: name the
subject instead of "that" or "it" (after an image of a red fox, "another one" is image "a red fox",
and "now a song about that" is song "a song about a red fox")."""

HISTORY_TURNS = 8
"""The newest turns the classifier reads: enough for a follow-up's subject, cheap to send."""
HISTORY_TURN_CHARS = 400

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "intent": {"type": "string", "enum": [intent.value for intent in CLASSIFIED_INTENTS]},
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

    async def classify(self, text: str, history: Sequence[Turn] = ()) -> Classification:
        """Ask the model, showing it the newest turns of ``history``; raise ``ClassifierError`` on
        an unusable answer, or a ``GenerationError`` (whose text quotes no provider) on a failed call."""
        messages: list[ChatCompletionMessageParam] = [{"role": "system", "content": INSTRUCTIONS}]
        if history:
            shown = transcript(history[-HISTORY_TURNS:], per_turn_chars=HISTORY_TURN_CHARS)
            messages.append({"role": "system", "content": f"The conversation so far, oldest first:\n{shown}"})
        messages.append({"role": "user", "content": text})
        contents = [str(message.get("content") or "") for message in messages]
        try:
            response = await self._client.chat.completions.create(
                model=self._model.name,
                messages=messages,
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": "route", "strict": True, "schema": SCHEMA},
                },
                max_completion_tokens=self._model.output_limit(*contents),
            )
        except openai.OpenAIError as error:
            # The SDK's error text quotes the server's, which may quote the key; the engine writes
            # a failed classifier's error into its refund note.
            raise openai_failure("classifier", error) from error
        content = response.choices[0].message.content if response.choices else None
        if not content:
            raise ClassifierError("the classifier returned no content")
        try:
            answer = _Answer.model_validate_json(content)
        except ValueError as error:
            raise ClassifierError(f"unusable classifier answer {content[:200]!r}") from error
        if answer.intent not in CLASSIFIED_INTENTS:
            raise ClassifierError(f"the classifier chose {answer.intent.value!r}, which it may not")
        cost = self._model.charge(response.usage, *contents, written=content)
        return Classification(answer.intent, answer.prompt, cost)
