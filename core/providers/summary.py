"""Summaries of a conversation (``/summary``) from an OpenAI-compatible model, charged like research."""

from __future__ import annotations

import openai
from openai.types.chat import ChatCompletionMessageParam

from core.errors import GenerationError
from core.history import DEFAULT_HISTORY_TOKENS, Window, transcript
from core.parts import Intent, Request
from core.providers.openai_text import OpenAITextGenerator, TextModel

SUMMARY_INSTRUCTIONS = """\
You summarize a conversation between people and a chat bot, for someone who missed it. Write a
short Markdown summary: what was asked, what the bot answered or made (images, songs, papers),
what was decided and what is still open. Five bullet points at most; no preamble. Refer to people
by the ids given. Do not continue the conversation or answer its questions yourself."""


class OpenAISummaryGenerator(OpenAITextGenerator):
    """Streams a summary of ``request.history``; the prompt, if any, says what to focus on."""

    def __init__(
        self, *, client: openai.AsyncOpenAI, model: TextModel, history_tokens: int = DEFAULT_HISTORY_TOKENS
    ) -> None:
        super().__init__(
            client=client,
            intent=Intent.SUMMARY,
            model=model,
            instructions=SUMMARY_INSTRUCTIONS,
            history_tokens=history_tokens,
        )

    def fit(self, prompt: str, request: Request) -> tuple[Window, list[ChatCompletionMessageParam]]:
        """As for any answer, but a summary of none of the conversation is refused (and refunded)."""
        window, messages = super().fit(prompt, request)
        if request.history and not window.turns:
            raise GenerationError(
                "One summary's allowance is too small to read this conversation with this model. "
                "An admin can raise RESEARCH_COST_USD.",
                detail=f"{self.model.name}: no turn fits the allowance {self.model.allowance}",
            )
        return window, messages

    def messages(self, prompt: str, request: Request, window: Window) -> list[ChatCompletionMessageParam]:
        """The conversation as one transcript to read, not as turns to continue."""
        lines = ["The conversation, oldest first:"]
        notice = window.notice()
        if notice:
            lines.append(f"({notice})")
        lines.append(transcript(window.turns))
        if prompt:
            lines.append(f"\nFocus the summary on: {prompt}")
        return [
            {"role": "system", "content": SUMMARY_INSTRUCTIONS},
            {"role": "user", "content": "\n".join(lines)},
        ]
