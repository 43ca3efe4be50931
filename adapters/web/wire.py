"""OpenAI's wire format, as far as this API speaks it: request bodies validated by pydantic, and the
response bodies the OpenAPI docs describe."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# OpenAI clients send many optional fields this bot has no use for (``logprobs``, ``seed`` …):
# unknown fields are accepted and ignored rather than refused, as OpenAI-compatible servers do.
LENIENT = ConfigDict(extra="allow")


class TextPart(BaseModel):
    model_config = LENIENT
    type: Literal["text"]
    text: str


class ImagePart(BaseModel):
    model_config = LENIENT
    type: Literal["image_url"]
    image_url: dict[str, Any]


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class Message(BaseModel):
    model_config = LENIENT
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = None
    name: str | None = None


class StreamOptions(BaseModel):
    model_config = LENIENT
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """``POST /v1/chat/completions``. ``max_tokens`` (or ``max_completion_tokens``) caps the
    answer and what is reserved for it, within the operator's allowance (``CHAT_COST_USD``,
    ``RESEARCH_COST_USD``); ``temperature`` is passed to the text model. The question's
    ``image_url`` parts (``data:`` URLs) go to a vision-capable chat model. ``user`` is ignored:
    the key's name is the user."""

    model_config = LENIENT
    model: str
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: Annotated[int, Field(ge=1, le=1)] = 1
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    user: str | None = None


class ImageRequest(BaseModel):
    """``POST /v1/images/generations``. ``size`` must be one OpenAI knows; the image is drawn at
    the operator's ``IMAGE_WIDTH`` × ``IMAGE_HEIGHT``. ``model``, ``quality``, ``style`` and
    ``user`` are ignored."""

    model_config = LENIENT
    prompt: Annotated[str, Field(min_length=1)]
    n: Annotated[int, Field(ge=1, le=4)] = 1
    size: (
        Literal["256x256", "512x512", "1024x1024", "1792x1024", "1024x1792", "1536x1024", "1024x1536", "auto"]
        | None
    ) = None
    response_format: Literal["url", "b64_json"] = "url"
    model: str | None = None


# --- responses (for the OpenAPI docs; the streaming path writes its chunks directly) ----------


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class Model(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Model]


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str
    refusal: None = None


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop"] = "stop"
    logprobs: None = None


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_usd: float
    """Not OpenAI's: what the ledger charged for this answer (tokens are estimates)."""


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: CompletionUsage


class ImageData(BaseModel):
    url: str | None = None
    b64_json: str | None = None
    revised_prompt: str | None = None


class ImagesResponse(BaseModel):
    created: int
    data: list[ImageData]


class SessionEvent(BaseModel):
    kind: str
    text: str
    created_at: str
    request_id: str
    intent: str | None = None


class Session(BaseModel):
    id: str
    object: Literal["session"] = "session"
    events: list[SessionEvent]
    summary: str | None = None
