"""Research papers and chat answers streamed from any OpenAI-compatible chat-completions server.

Charging: the engine reserves the configured per-answer allowance (``RESEARCH_COST_USD``,
``CHAT_COST_USD``). Before each call the output is capped (``max_completion_tokens``) at what the
allowance still buys after a realistic estimate of the input tokens (``pricing.estimated_tokens``).
The cost is computed from the usage the server reports and never charged above the reservation.
Without a usage report (a cut stream, a server that ignores ``include_usage``) the cost is
estimated from the text; without a price for the model, the allowance is charged as a flat fee.

History: the request's earlier turns are sent as chat messages before the prompt, the newest that
fit both ``history_tokens`` (``HISTORY_TOKENS``) and the allowance: the answer keeps room for a
useful length (``USEFUL_ANSWER_TOKENS``, or half of what the allowance buys when it is tight) and
the history gets the rest, oldest turns left out first; the question is always kept. When older
turns are left out, the model is told so and the person sees it in a progress line.
``allowance_warning`` tells the operator at start-up when an allowance is too small for the model.

Bad answers: a server that ignores ``stream: true`` and sends one JSON completion is read as one
chunk; a stream that ends without ``[DONE]`` or a ``finish_reason`` is treated as cut off; an
answer without any text is refunded with a message saying so.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import math
import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import httpx
import openai
from openai.types import CompletionUsage
from openai.types.chat import ChatCompletionContentPartParam, ChatCompletionMessageParam

from core.attachments import file_block
from core.errors import GenerationError, ModerationError
from core.history import DEFAULT_HISTORY_TOKENS, Window, fit_history, multiple_speakers, turn_text
from core.money import format_usd
from core.parts import (
    GeneratorPart,
    ImageAttachment,
    Intent,
    Request,
    Status,
    TextAttachment,
    TextDelta,
    Usage,
)
from core.providers.failures import openai_failure
from core.providers.pricing import TokenPrice, estimated_tokens

log = logging.getLogger(__name__)

SERVICE = "text service"
MIN_OUTPUT_TOKENS = 64
USEFUL_ANSWER_TOKENS = {Intent.CHAT: 300, Intent.RESEARCH: 1500, Intent.SUMMARY: 300}
"""The answer length each service keeps room for before earlier turns are added, and which the
start-up check expects an allowance to pay for."""
TYPICAL_QUESTION = "x" * 200
"""The question the start-up check prices: a couple of sentences."""
NOTICE_TOKENS = 32
"""Room for the note telling the model that earlier turns were left out."""

RESEARCH_INSTRUCTIONS = """\
You write short, well-structured research papers in Markdown for a team chat.
Structure, with nothing before it:
# <Title>
**Abstract.** <one paragraph>
## Introduction, then three to five ## sections on the substance, then ## Conclusion
## References: a numbered list of real, checkable sources (authors, title, venue or publisher, year).
Cite them in the text as [1], [2]. Only list sources you are confident exist; if you know none,
say so under References instead of inventing any. Be accurate, concrete and concise."""

CHAT_INSTRUCTIONS = """\
You are a friendly, knowledgeable assistant in a Discord or Slack chat. Answer concisely in
Markdown. If someone wants a picture, a song or a research paper, you may mention the /imagine,
/song and /research commands."""


VisionSetting = Literal["auto", "on", "off"]
IMAGE_TOKENS = 1105
"""What one attached image is counted as when capping the answer: OpenAI's high-detail price of a
large image (four tiles and the base). Actual usage, when reported, is what gets charged."""
_IMAGE_AS_TEXT = "x" * (IMAGE_TOKENS * 4)
"""Stands in for an image where token estimates read text (four characters a token)."""
VISION_MODELS = re.compile(
    r"^(?:.*/)?(?:gpt-4o|gpt-4\.1|gpt-4\.5|gpt-4-turbo|gpt-5|chatgpt-4o|o1(?!-mini)|o3(?!-mini)|o4-mini|"
    r"claude-|gemini|pixtral|llava|bakllava|moondream|minicpm-v|grok-.*vision)"
    r"|vision|[-_]vl\b|[-_]vl[-_]",
    re.IGNORECASE,
)
"""``CHAT_VISION=auto``: model names that take ``image_url`` parts (OpenAI's GPT-4o, 4.1, 5 and o
series; Claude, Gemini, Pixtral, LLaVA-style and ``*-vision``/``*-vl`` open models)."""


def sees_images(model: str, setting: VisionSetting = "auto") -> bool:
    """Whether ``model`` is sent attached images: ``on``/``off`` say so, ``auto`` asks ``VISION_MODELS``."""
    if setting != "auto":
        return setting == "on"
    return VISION_MODELS.search(model) is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class TextModel:
    """A chat-completions model and how it is paid for."""

    name: str
    price: TokenPrice | None
    """``None`` when no price is configured: the allowance is then charged as a flat fee."""
    allowance: int
    """Micro-dollars reserved per call: the most one call may cost."""
    max_output_tokens: int
    """A cap on the answer's length whatever the allowance would buy."""

    def output_limit(self, *messages: str) -> int:
        """The largest ``max_completion_tokens`` that keeps the call within the allowance."""
        if self.price is None:
            return self.max_output_tokens
        affordable = self.price.affordable_output(self.allowance, estimated_tokens(*messages))
        return min(self.max_output_tokens, affordable)

    def input_room(self, *messages: str, answer_tokens: int) -> int:
        """Tokens of input the allowance still pays for besides ``messages`` when ``answer_tokens``
        of answer must stay affordable."""
        if self.price is None:
            return 1 << 31
        left = self.allowance * 1_000_000 - min(answer_tokens, self.max_output_tokens) * self.price.output
        left -= estimated_tokens(*messages) * self.price.input
        if left <= 0:
            return 0
        return left // self.price.input if self.price.input else 1 << 31

    def charge(self, usage: CompletionUsage | None, *messages: str, written: str) -> int:
        """The actual cost from ``usage``, else an estimate from the text; never above the allowance."""
        if self.price is None:
            return self.allowance
        if usage is None:
            cost = self.price.cost(estimated_tokens(*messages), estimated_tokens(written))
        else:
            cost = self.price.cost(usage.prompt_tokens, usage.completion_tokens)
        if cost > self.allowance:
            # Only a server that ignored max_completion_tokens gets here; the person was promised
            # no more than the reservation.
            log.warning(
                "%s cost %d exceeds its allowance %d; charging the allowance", self.name, cost, self.allowance
            )
            return self.allowance
        return cost


class OpenAITextGenerator:
    """Streams an answer from ``chat.completions`` and reports its token cost as ``Usage``."""

    demo = False

    def __init__(
        self,
        *,
        client: openai.AsyncOpenAI,
        intent: Intent,
        model: TextModel,
        instructions: str,
        history_tokens: int = DEFAULT_HISTORY_TOKENS,
        vision: VisionSetting = "off",
    ) -> None:
        self.intent = intent
        self._client = client
        self._model = model
        self._instructions = instructions
        self._history_tokens = history_tokens
        self._vision = vision
        self.sees_images = sees_images(model.name, vision)

    @property
    def model(self) -> TextModel:
        return self._model

    @property
    def instructions(self) -> str:
        return self._instructions

    @property
    def answer_tokens(self) -> int:
        """The answer length kept affordable before earlier turns are added."""
        return min(USEFUL_ANSWER_TOKENS.get(self.intent, 300), self._model.max_output_tokens)

    def messages(self, prompt: str, request: Request, window: Window) -> list[ChatCompletionMessageParam]:
        """Instructions, a note if earlier turns were left out, the turns that fit, then the prompt."""
        messages: list[ChatCompletionMessageParam] = [{"role": "system", "content": self._instructions}]
        notice = window.notice()
        if notice:
            messages.append({"role": "system", "content": notice})
        named = multiple_speakers(window.turns, request.user)
        for turn in window.turns:
            if turn.role == "assistant":
                messages.append({"role": "assistant", "content": turn_text(turn)})
            else:
                text = f"<{turn.author}> {turn_text(turn)}" if named else turn_text(turn)
                messages.append({"role": "user", "content": text})
        question = f"<{request.user}> {prompt}" if named else prompt
        messages.append(self._question(question, request))
        return messages

    def _question(self, text: str, request: Request) -> ChatCompletionMessageParam:
        """The asker's message: the text, attached text files after it, and attached images as
        ``image_url`` parts (data URLs) for a model that sees them."""
        files = [file_block(item) for item in request.attachments if isinstance(item, TextAttachment)]
        text = "\n\n".join([text, *files])
        images = [item for item in request.attachments if isinstance(item, ImageAttachment)]
        if not images or not self.sees_images:
            return {"role": "user", "content": text}
        parts: list[ChatCompletionContentPartParam] = [{"type": "text", "text": text}]
        parts.extend({"type": "image_url", "image_url": {"url": data_url(image)}} for image in images)
        return {"role": "user", "content": parts}

    def refusal(self, request: Request) -> str | None:
        """Why ``request`` can't be answered here before anything is reserved: attached images
        for a model that doesn't see them."""
        if self.sees_images or not any(isinstance(item, ImageAttachment) for item in request.attachments):
            return None
        if self._vision == "off":
            why = "looking at images is switched off on this bot (`CHAT_VISION=off`)"
        else:
            why = f"the chat model here ({self._model.name}) can't see images"
        return f"I can't look at the attached image: {why}. Ask in words instead. Nothing was charged."

    def estimate(self, prompt: str) -> int:
        return self._model.allowance

    def estimate_for(self, prompt: str, request: Request) -> int:
        """What to reserve for ``request``: the allowance, or less when the asker capped the answer
        (``max_tokens``) and the model has a price."""
        return self._model_for(prompt, request).allowance

    def _model_for(self, prompt: str, request: Request) -> TextModel:
        """The model as this request may use it: its answer capped at the asker's ``max_tokens``,
        and its allowance at what that answer and the (generously estimated) input can cost."""
        cap = request.answer.max_tokens if request.answer is not None else None
        if cap is None:
            return self._model
        capped = replace(self._model, max_output_tokens=min(cap, self._model.max_output_tokens))
        if capped.price is None:
            return capped
        _, messages = self.fit(prompt, request)
        input_tokens = math.ceil(estimated_tokens(*_contents(messages)) * 1.25)
        allowance = min(capped.allowance, capped.price.cost(input_tokens, capped.max_output_tokens))
        return replace(capped, allowance=allowance)

    def fit(self, prompt: str, request: Request) -> tuple[Window, list[ChatCompletionMessageParam]]:
        """The earlier turns this answer can afford, and the messages sent with them.

        The answer keeps room for ``answer_tokens`` (or half of what the allowance buys without
        any history, when that is less); the newest turns that fit the rest are sent.
        """
        alone = Window((), len(request.history))
        messages = self.messages(prompt, request, alone)
        if not request.history:
            return alone, messages
        fixed = _contents(messages)
        keep = min(self.answer_tokens, max(MIN_OUTPUT_TOKENS, self._model.output_limit(*fixed) // 2))
        room = self._model.input_room(*fixed, answer_tokens=keep) - NOTICE_TOKENS
        window = fit_history(request.history, max_tokens=max(0, min(self._history_tokens, room)))
        messages = self.messages(prompt, request, window)
        # fit_history counts tokens its own way: leave out more of the oldest turns if still needed.
        while window.turns and self._model.output_limit(*_contents(messages)) < keep:
            window = Window(window.turns[1:], window.left_out + 1)
            messages = self.messages(prompt, request, window)
        return window, messages

    async def generate(self, prompt: str, request: Request) -> AsyncIterator[GeneratorPart]:
        model = self._model_for(prompt, request)
        async for part in self._with_model(model)._generate(prompt, request):
            yield part

    def _with_model(self, model: TextModel) -> OpenAITextGenerator:
        if model is self._model:
            return self
        return OpenAITextGenerator(
            client=self._client,
            intent=self.intent,
            model=model,
            instructions=self._instructions,
            history_tokens=self._history_tokens,
            vision=self._vision,
        )

    async def _generate(self, prompt: str, request: Request) -> AsyncIterator[GeneratorPart]:
        window, messages = self.fit(prompt, request)
        contents = _contents(messages)
        limit = self._model.output_limit(*contents)
        if limit < min(MIN_OUTPUT_TOKENS, self._model.max_output_tokens):
            raise GenerationError(
                "That prompt is too long to answer within the allowance for one answer. Please shorten it.",
                detail=f"only {limit} output tokens affordable",
            )
        if window.left_out and not window.turns:
            yield Status(
                "Answering the question alone: this answer's allowance leaves no room for earlier turns…"
            )
        else:
            status = window.status()
            if status:
                yield Status(status)
        written: list[str] = []
        usage: CompletionUsage | None = None
        finish: str | None = None
        done = False
        try:
            # The SDK's client sends the request (base URL, auth, retries, status errors) but the
            # typed ``chat.completions.create`` is skipped: validating these plain parameters against
            # its TypedDicts and building a model per chunk took most of the CPU of an answer.
            body: dict[str, object] = {
                "model": self._model.name,
                "messages": messages,
                "stream": True,
                "stream_options": {"include_usage": True},
                "max_completion_tokens": limit,
            }
            if request.answer is not None and request.answer.temperature is not None:
                body["temperature"] = request.answer.temperature
            stream = await self._client.post(
                "/chat/completions",
                cast_to=httpx.Response,
                body=body,
                stream=True,
                stream_cls=openai.AsyncStream[httpx.Response],
            )
            async with _closing(stream) as response:
                async for chunk in _chunks(response):
                    if chunk is None:
                        done = True
                        break
                    if chunk.get("error"):
                        raise _stream_error(chunk["error"], response.request)
                    usage = _usage(chunk.get("usage")) or usage
                    for choice in chunk.get("choices") or ():
                        finish = choice.get("finish_reason") or finish
                        text = (choice.get("delta") or {}).get("content")
                        if text:
                            written.append(text)
                            yield TextDelta(text)
            if not done and finish is None:
                raise IncompleteStream("the stream ended without [DONE] or a finish_reason")
        except (openai.OpenAIError, httpx.HTTPError, ValueError, IncompleteStream) as error:
            failure = openai_failure(SERVICE, error) if isinstance(error, openai.OpenAIError) else None
            if not written or isinstance(failure, ModerationError):
                raise failure or GenerationError(
                    f"The {SERVICE} sent a broken reply ({type(error).__name__}).", detail=repr(error)
                ) from error
            cost = self._model.charge(None, *contents, written="".join(written))
            yield Usage(cost)
            raise GenerationError(
                f"The {SERVICE}'s answer broke off mid-way ({type(error).__name__}), so the text above is "
                f"incomplete. It was charged at an estimated {format_usd(cost)} for what was written.",
                detail=repr(error),
                charge=True,
            ) from error
        if finish == "content_filter":
            raise ModerationError(f"The {SERVICE} stopped this answer on content grounds.")
        if not "".join(written).strip():
            raise GenerationError(
                f"The {SERVICE} sent an empty answer. Please try again, or rephrase the question.",
                detail=f"{self._model.name}: no text; finish_reason {finish!r}, usage {usage}",
            )
        if finish == "length":
            yield TextDelta("\n\n_(Cut short: this is as long as one answer can be.)_")
        if usage is None:
            log.info("%s reported no usage; charging an estimate", self._model.name)
        yield Usage(self._model.charge(usage, *contents, written="".join(written)))


class IncompleteStream(Exception):
    """The answer's stream closed without saying it was finished."""


def allowance_warning(generator: object, *, variable: str) -> str | None:
    """A start-up warning naming ``variable`` when one answer's allowance cannot pay for the
    instructions, a short question and a useful answer (``USEFUL_ANSWER_TOKENS``) on the
    generator's model; ``None`` when it can, when the model has no price (a flat fee), or for a
    generator that is not an ``OpenAITextGenerator``."""
    if not isinstance(generator, OpenAITextGenerator):
        return None
    model = generator.model
    if model.price is None:
        return None
    needed = model.price.cost(
        estimated_tokens(generator.instructions, TYPICAL_QUESTION), generator.answer_tokens
    )
    if needed <= model.allowance:
        return None
    return (
        f"{variable}={format_usd(model.allowance)} can't pay for a useful answer on {model.name}: "
        f"a short question and {generator.answer_tokens} tokens of answer cost {format_usd(needed)}. "
        "Answers will be cut short, with little or none of the conversation's earlier turns; set "
        f"{variable} to at least {format_usd(needed)}, or {format_usd(2 * needed)} to leave room for them."
    )


def research_generator(
    client: openai.AsyncOpenAI, model: TextModel, *, history_tokens: int = DEFAULT_HISTORY_TOKENS
) -> OpenAITextGenerator:
    """Research papers: title, abstract, sections and references, streamed."""
    return OpenAITextGenerator(
        client=client,
        intent=Intent.RESEARCH,
        model=model,
        instructions=RESEARCH_INSTRUCTIONS,
        history_tokens=history_tokens,
    )


def chat_generator(
    client: openai.AsyncOpenAI,
    model: TextModel,
    *,
    history_tokens: int = DEFAULT_HISTORY_TOKENS,
    vision: VisionSetting = "auto",
) -> OpenAITextGenerator:
    """Plain conversation: greetings, questions, anything that is not a paid media request; attached
    images are looked at when ``vision`` (``CHAT_VISION``) allows it for the model."""
    return OpenAITextGenerator(
        client=client,
        intent=Intent.CHAT,
        model=model,
        instructions=CHAT_INSTRUCTIONS,
        history_tokens=history_tokens,
        vision=vision,
    )


def data_url(image: ImageAttachment) -> str:
    """The image inline, as OpenAI-compatible servers take it: ``data:image/png;base64,…``."""
    return f"data:{image.mime_type};base64,{base64.b64encode(image.data).decode('ascii')}"


async def server_sent_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """The data of each server-sent event: its ``data:`` lines joined, comments and other fields skipped."""
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
        elif line.startswith("data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield "\n".join(data)


async def _chunks(response: httpx.Response) -> AsyncIterator[dict[str, Any] | None]:
    """The stream's chunks, then ``None`` for ``[DONE]``. A server that ignored ``stream: true``
    and answered one JSON completion is read as a single chunk followed by ``[DONE]``."""
    if "text/event-stream" in response.headers.get("content-type", ""):
        events = server_sent_data(_lines(response))
    else:
        body = (await response.aread()).decode(errors="replace")
        if not any(line.startswith("data:") for line in body.splitlines()):
            yield _completion_chunk(json.loads(body))
            yield None
            return
        events = server_sent_data(_async_lines(body))
    async for data in events:
        if data.startswith("[DONE]"):
            yield None
            return
        chunk = json.loads(data)
        if not isinstance(chunk, dict):
            raise ValueError(f"a stream chunk is not an object: {data[:100]!r}")
        yield chunk


def _completion_chunk(body: object) -> dict[str, Any]:
    """A ``chat.completion`` body in the shape of one stream chunk (message → delta)."""
    if not isinstance(body, dict):
        raise ValueError(f"the answer is not a JSON object: {str(body)[:100]!r}")
    choices = []
    for choice in body.get("choices") or ():
        if isinstance(choice, dict):
            message = choice.get("message") or {}
            content = message.get("content") if isinstance(message, dict) else None
            choices.append({"delta": {"content": content}, "finish_reason": choice.get("finish_reason")})
    return {"choices": choices, "usage": body.get("usage"), "error": body.get("error")}


def _lines(response: httpx.Response) -> AsyncIterator[str]:
    """The body's lines: from a stream that reads them itself (``bot.shared_http.AiohttpBody``),
    else through httpx's decoders (four async generators and a decoder per chunk)."""
    own_lines: Callable[[], AsyncIterator[str]] | None = getattr(response.stream, "lines", None)
    return own_lines() if own_lines is not None else response.aiter_lines()


async def _async_lines(text: str) -> AsyncIterator[str]:
    for line in text.splitlines():
        yield line


@contextlib.asynccontextmanager
async def _closing(
    stream: openai.AsyncStream[httpx.Response] | httpx.Response,
) -> AsyncIterator[httpx.Response]:
    """The streamed HTTP response, closed afterwards. A server that answers without
    ``text/event-stream`` gets its response back as it is, and it is read the same way."""
    response = stream.response if isinstance(stream, openai.AsyncStream) else stream
    try:
        yield response
    finally:
        await response.aclose()


def _usage(report: object) -> CompletionUsage | None:
    """The token counts of a chunk's usage report, if it carries them."""
    if not isinstance(report, dict):
        return None
    prompt, completion = report.get("prompt_tokens"), report.get("completion_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    total = prompt + completion
    return CompletionUsage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=total)


def _stream_error(error: object, request: httpx.Request) -> openai.APIError:
    """An error the server sent inside the stream, as the SDK would raise it."""
    message = error.get("message") if isinstance(error, dict) else None
    return openai.APIError(
        message if isinstance(message, str) and message else "An error occurred during streaming",
        request,
        body=error,
    )


def _contents(messages: Sequence[ChatCompletionMessageParam]) -> list[str]:
    """Each message's text for token estimates; an image part counts as ``IMAGE_TOKENS``."""
    contents: list[str] = []
    for message in messages:
        content = message.get("content") or ""
        if isinstance(content, str):
            contents.append(content)
            continue
        for part in content:
            is_text = isinstance(part, dict) and part.get("type") == "text"
            contents.append(str(part.get("text", "")) if is_text else _IMAGE_AS_TEXT)
    return contents
